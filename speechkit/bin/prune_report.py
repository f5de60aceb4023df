"""The RESULTS table and gate-usage pictures of the pruning arms (``speechkit prune-arms report``).

Reads, per arm and seed (``EXP/<arm>/s<seed>``, written by ``speechkit prune-arms decode`` and
``bench``): ``decode_<test>/scores.json`` (``speechkit score``), ``decode_<test>/
decode_stats.json`` (GFLOPs and sparsity under ``gates``) and ``bench_test_seen.json``
(``speechkit bench prune``). One row per arm (the language arms a second row decoded with the
oracle language), the mean over seeds with [min, max] where they differ. Columns: English
WER and en->X BLEU (mean of the directions; cased sacreBLEU) on test_seen and test_novel, X->en
BLEU, GFLOPs per item (encoder / decoder), achieved sparsity (FLOP-weighted, gated modules),
RTFx of the gated and full models at batch 1 and batched, measured interleaved.

Pictures (``gates_<arm>.png`` beside the results file): the keep rate of each gated module
(rows: module kind, columns: layer) per spoken language, from ``gates.jsonl`` of test_seen; an
FFN gated per channel group shows the mean over its groups.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from speechkit.report import provenance_lines, update_markdown

__all__ = ["gate_usage", "write_report"]

TITLE = "Context-driven dynamic pruning: arms at one budget"


def _scores(decode_dir: Path) -> dict[str, float]:
    path = decode_dir / "scores.json"
    if not path.is_file():
        return {}
    rows = {r["name"]: r for r in json.loads(path.read_text())}
    out = {}
    if "asr_eng" in rows:
        out["wer"] = rows["asr_eng"]["wer"]["rate"]
    en_x = [r["bleu"]["cased"] for n, r in rows.items() if n.startswith("st_eng-")]
    x_en = [
        r["bleu"]["cased"] for n, r in rows.items() if n.startswith("st_") and n.endswith("-eng")
    ]
    if en_x:
        out["en_x"] = statistics.mean(en_x)
    if x_en:
        out["x_en"] = statistics.mean(x_en)
    stats = decode_dir / "decode_stats.json"
    gates = json.loads(stats.read_text()).get("gates") if stats.is_file() else None
    if gates:
        out.update(gflops_enc=gates["gflops_enc"], gflops_dec=gates["gflops_dec"],
                   sparsity=100 * gates["sparsity"])  # fmt: skip
        if "lid_accuracy" in gates:
            out["lid"] = 100 * gates["lid_accuracy"]
    return out


def _bench(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    res = json.loads(path.read_text())
    out = {}
    for key, setting in (("b1", "batch1"), ("bb", "batched")):
        r = res[setting]
        out.update({f"{key}_gated": r["rtfx_gated"], f"{key}_full": r["rtfx_full"],
                    f"{key}_speedup": r["speedup_total"]})  # fmt: skip
    return out


def _cell(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    text = fmt.format(statistics.mean(values))
    if min(values) != max(values):
        text += f" [{fmt.format(min(values))}, {fmt.format(max(values))}]"
    return text


def _row(label: str, seeds: list[dict]) -> str:
    get = lambda key: [s[key] for s in seeds if key in s]  # noqa: E731
    cells = [label, str(len(seeds))]
    for key in ("seen_wer", "novel_wer", "seen_en_x", "novel_en_x", "seen_x_en", "novel_x_en"):
        cells.append(_cell(get(key)))
    cells.append(
        f"{_cell(get('seen_gflops_enc'), '{:.3f}')} / {_cell(get('seen_gflops_dec'), '{:.3f}')}"
    )
    cells.append(_cell(get("seen_sparsity")))
    for key in ("b1", "bb"):
        gated, full, speed = get(f"{key}_gated"), get(f"{key}_full"), get(f"{key}_speedup")
        cells.append(
            f"{_cell(gated)} / {_cell(full)} ({_cell(speed, '{:.2f}')}x)" if gated else "-"
        )
    cells.append(_cell(get("seen_lid")))
    return "| " + " | ".join(cells) + " |"


def gate_usage(cfg: dict, rows: list[str]) -> tuple[list[str], list[list[float]]]:
    """Row labels and the keep rate grid [module kind][layer] of the gate strings ``rows``
    (encoder then decoder gates, "1" = on) of a model config dict. An FFN with channel-group
    gates (``gate_ffn_groups``) has one gate per group; its cell is their mean."""
    enc_kinds = (
        ["ffn1", "attn", "cgmlp", "ffn2"]
        if cfg["encoder_type"] == "ebranchformer"
        else ["attn", "ffn"]
    )
    dec_kinds = ["self_attn", "cross_attn", "ffn"]
    ne, nd = cfg["encoder_layers"], cfg["decoder_layers"]
    groups = cfg.get("gate_ffn_groups", 1)
    cells = []  # the (layer, row) cell of each gate, in gate order
    for n_layers, kinds, row0 in ((ne, enc_kinds, 0), (nd, dec_kinds, len(enc_kinds))):
        for layer in range(n_layers):
            for row, kind in enumerate(kinds, row0):
                cells += [(layer, row)] * (groups if kind.startswith("ffn") else 1)
    rates: dict[tuple[int, int], list[float]] = defaultdict(list)
    for i, cell in enumerate(cells):
        rates[cell].append(sum(int(r[i]) for r in rows) / len(rows))
    grid = [[float("nan")] * max(ne, nd) for _ in range(len(enc_kinds) + len(dec_kinds))]
    for (layer, row), values in rates.items():
        grid[row][layer] = statistics.mean(values)
    return [f"enc {k}" for k in enc_kinds] + [f"dec {k}" for k in dec_kinds], grid


def _gate_picture(run: Path, out_png: Path) -> bool:
    """Keep rate per (module kind, layer) and spoken language, from gates.jsonl of test_seen."""
    decode_dir = run / "decode_test_seen"
    per_lang: dict[str, list[str]] = defaultdict(list)
    for path in sorted(decode_dir.glob("asr_*/gates.jsonl")):
        lang = path.parent.name[len("asr_") :]
        per_lang[lang] += [json.loads(line)["enc_gates"] + json.loads(line)["dec_gates"]
                           for line in path.open()]  # fmt: skip
    if not per_lang:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())["model"]
    fig, axes = plt.subplots(
        1, len(per_lang), figsize=(2.6 * len(per_lang) + 1.2, 3.6), squeeze=False
    )
    for ax, (lang, rows) in zip(axes[0], sorted(per_lang.items())):
        labels, grid = gate_usage(cfg, rows)
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(f"{lang} ({len(rows)} utts)")
        ax.set_yticks(range(len(grid)), labels if ax is axes[0][0] else [])
        ax.set_xticks(range(len(grid[0])))
        ax.set_xlabel("layer")
    fig.colorbar(im, ax=axes[0].tolist(), label="keep rate")
    fig.suptitle(f"{run.parent.name}: gate usage per language (test_seen)")
    fig.savefig(out_png, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return True


def write_report(exp: Path, arms: list[str], seeds: list[int], budget: float,
                 results_md: Path | None, command: str = "") -> list[str]:  # fmt: skip
    """The table (and pictures beside ``results_md``); returns the markdown lines."""
    from speechkit.bin.prune_arms import LANGUAGE_ARMS

    header = ("| arm | seeds | WER eng seen | WER eng novel | en->X BLEU seen | en->X BLEU novel "
              "| X->en BLEU seen | X->en BLEU novel | GFLOPs/item enc / dec | sparsity % "
              "| RTFx batch 1 gated / full (speed-up) | RTFx batched gated / full (speed-up) "
              "| LID acc % |")  # fmt: skip
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    pictures = []
    for arm in arms:
        variants = [("", arm)] + (
            [("_oracle", f"{arm} (oracle language)")] if arm in LANGUAGE_ARMS else []
        )
        for suffix, label in variants:
            per_seed = []
            for seed in seeds:
                run = exp / arm / f"s{seed}"
                figures = {}
                for test in ("test_seen", "test_novel"):
                    part = test.split("_")[1]
                    figures.update(
                        {
                            f"{part}_{k}": v
                            for k, v in _scores(run / f"decode_{test}{suffix}").items()
                        }
                    )
                if not suffix:
                    figures.update(_bench(run / "bench_test_seen.json"))
                if figures:
                    per_seed.append(figures)
            if per_seed:
                lines.append(_row(label, per_seed))
        run0 = exp / arm / f"s{seeds[0]}"
        if results_md is not None and arm != "full":
            png = results_md.parent / f"gates_{arm}.png"
            if (run0 / "config.yaml").is_file() and _gate_picture(run0, png):
                pictures.append(f"![gate usage of {arm}]({png.name})")
    lines += ["", f"Budget {budget} (fraction of the gated modules' FLOPs to keep) for every gated arm.",
              "", *pictures]  # fmt: skip
    if results_md is not None:
        section = "\n".join([f"## {TITLE}", "", *provenance_lines(command), "", *lines, ""])
        update_markdown(results_md, TITLE, section)
    print("\n".join(lines))
    return lines


def main(argv: list[str] | None = None) -> int:
    """``speechkit prune-report ARGS`` is ``speechkit prune-arms report ARGS``."""
    import sys

    from speechkit.bin import prune_arms

    return prune_arms.main(["report", *(sys.argv[1:] if argv is None else argv)])
