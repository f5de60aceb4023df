"""ESPnet's own S2T model, for parity checks of ``speechkit.convert.espnet`` (needs espnet).

``build_espnet_model(config, stats_file)`` builds ``espnet2``'s ``ESPnetS2TModel`` from an ESPnet
training config (a dict, as in ``config.yaml``) with random weights; the parity tests
(``tests/convert/test_convert_espnet.py``) and ``tools/espnet_parity.py`` convert what it saves and
compare speechkit's outputs with ESPnet's on the same audio.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import sys
import types
from pathlib import Path

import torch

__all__ = ["import_espnet", "build_espnet_model"]


def import_espnet():
    """``espnet2.tasks.s2t.S2TTask``, imported fast: typeguard's import-time instrumentation
    (~15 s) is skipped and g2p_en (which tries an nltk download) is stubbed; S2T models use
    neither. Raises ``ImportError`` naming the set-up command when espnet is missing."""
    try:
        import typeguard
    except ImportError as e:
        raise ImportError("espnet is not installed: run `bash tools/setup.sh --dev`") from e
    typeguard.typechecked = lambda func=None, **kw: func if func is not None else (lambda f: f)
    if "g2p_en" not in sys.modules:
        stub = types.ModuleType("g2p_en")
        stub.G2p = object
        stub.__spec__ = importlib.machinery.ModuleSpec("g2p_en", None)
        sys.modules["g2p_en"] = stub
    try:
        from espnet2.tasks.s2t import S2TTask
    except ImportError as e:
        raise ImportError("espnet is not installed: run `bash tools/setup.sh --dev`") from e
    return S2TTask


def build_espnet_model(
    config: dict, stats_file: Path, seed: int = 0, scale: float = 0.2
) -> tuple[torch.nn.Module, argparse.Namespace]:
    """ESPnet's ``ESPnetS2TModel`` from ``config`` in eval mode, every tensor perturbed by
    ``scale`` x N(0, 1) (seeded) so that no parameter keeps a symmetric initial value; and the
    parsed arguments (what ESPnet writes to ``config.yaml``)."""
    S2TTask = import_espnet()
    args = S2TTask.get_parser().parse_args(["--output_dir", str(Path(stats_file).parent)])
    for key, value in config.items():
        setattr(args, key, value)
    args.normalize_conf = {"stats_file": str(stats_file)}
    model = S2TTask.build_model(args)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model.eval(), args
