"""speechkit.context_encoders.compute_contexts: one row per cut in order; a failing or
non-finite embedding costs that cut its context (valid=0, counted), not its batch or the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, MonoCut, Recording

from speechkit.context_encoders import compute_contexts


class _Fussy:
    """A 2-d test encoder: (mean, length in s); fails on a batch holding a loud wave, and gives
    NaN for a wave of exactly 1.5 s."""

    kind, dim, name = "speaker", 2, "fussy"

    def reject(self, wave):
        return "too short (< 0.3 s)" if len(wave) < 4800 else ""

    def embed(self, waves):
        if any(np.abs(w).max() > 0.9 for w in waves):
            raise RuntimeError("loud")
        return torch.tensor([[float(w.mean()), np.nan if len(w) == 24000 else len(w) / 16000]
                             for w in waves])  # fmt: skip


def _cuts(root: Path) -> CutSet:
    import soundfile as sf

    specs = {"a": (0.1, 1.0), "loud": (0.95, 1.0), "b": (0.2, 2.0), "tiny": (0.1, 0.2),
             "nan": (0.1, 1.5), "c": (0.3, 1.0)}  # fmt: skip
    cuts = []
    for name, (level, seconds) in specs.items():
        sf.write(root / f"{name}.wav", np.full(int(seconds * 16000), level, np.float32), 16000)
        rec = Recording.from_file(root / f"{name}.wav", recording_id=name)
        cuts.append(MonoCut(name, 0.0, rec.duration, 0, recording=rec))
    return CutSet.from_cuts(cuts)


def test_bad_cuts_lose_only_their_own_context(tmp_path):
    res = compute_contexts(_cuts(tmp_path), [_Fussy()], batch_size=4, progress=False)["speaker"]
    assert res.ids == ["a", "loud", "b", "tiny", "nan", "c"]
    assert res.valid.tolist() == [True, False, True, False, False, True]
    assert dict(res.reasons) == {"embedding failed (RuntimeError)": 1,
                                 "too short (< 0.3 s)": 1, "non-finite embedding": 1}  # fmt: skip
    assert torch.allclose(res.vectors[2], torch.tensor([0.2, 2.0]), atol=1e-3)  # 16-bit wav
    assert torch.allclose(res.vectors[5], torch.tensor([0.3, 1.0]), atol=1e-3)
    assert float(res.vectors[~res.valid].abs().sum()) == 0.0
    assert res.summary()["valid"] == 3
