"""Export a statically gated model as a smaller plain s2t model, its off modules removed.

    speechkit prune-export --model exp/prune_static/model_avg.pt --budget 0.5 --out exp/prune_static/packed_b0.5

``--model``: a gated model (``task: prune``) with ``model.gate_mode: static`` (its gates
depend on the budget alone) or ``none``; a checkpoint, packed directory or zoo name. The
modules whose gate is off at ``--budget`` are left out of the packed model
(``model.pruned_modules`` in its config), so they are neither stored nor computed: it loads,
decodes and packs like any other s2t model and computes what the gated model computes at that
budget. A model with FFN channel-group gates (``model.gate_ffn_groups``) keeps the on groups'
channels of an FFN with some groups off as a narrower FFN (``model.ffn_widths``). Prints the
parameter counts and file sizes before and after.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from speechkit.config import ConfigError

logger = logging.getLogger("speechkit.bin.prune_export")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="gated model: checkpoint, packed dir, zoo name")
    p.add_argument("--budget", type=float, required=True, help="fraction of FLOPs kept, [0, 1]")
    p.add_argument("--out", required=True, help="output directory (a packed s2t model)")
    args = p.parse_args(argv)
    from speechkit import zoo
    from speechkit.pretrained import load_pretrained, save_pretrained

    pre = zoo.load(args.model)
    if pre.model_type != "gated_s2t":
        logger.error("%s is a %s model, not a gated one (task: prune)", args.model, pre.model_type)
        return 2
    try:
        small = pre.model.export_static(args.budget)
    except (ValueError, ConfigError) as e:
        logger.error("%s", e)
        return 2
    out = save_pretrained(small, pre.tokenizer, pre.features, args.out,
                          source=f"{args.model} at budget {args.budget}", tasks=pre.tasks)  # fmt: skip
    load_pretrained(out)  # checksums and weights load before reporting success
    before = sum(
        v.numel() for k, v in pre.model.state_dict().items() if not k.startswith("predictor.")
    )
    after = sum(v.numel() for v in small.state_dict().values())
    size = (Path(out) / "model.pt").stat().st_size
    removed = small.cfg.pruned_modules
    print(f"removed {len(removed)} modules at budget {args.budget}: {', '.join(removed) or '-'}")
    if small.cfg.ffn_widths:
        narrowed = ", ".join(f"{k} ({v})" for k, v in small.cfg.ffn_widths.items())
        print(f"narrower FFNs (hidden channels kept): {narrowed}")
    print(f"parameters: {before / 1e6:.3f}M -> {after / 1e6:.3f}M ({after / before:.1%}); "
          f"model.pt {size / 1e6:.2f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
