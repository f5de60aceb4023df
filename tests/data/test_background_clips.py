"""Speech-free background clips with clip labels only (the AudioSet-like part of a USS corpus)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

sys.path.insert(0, str(Path(__file__).parent))
from mixture_fakes import make_corpus  # noqa: E402

from speechkit.bin.prepare_background_clips import main as prepare  # noqa: E402
from speechkit.config import ConfigError  # noqa: E402
from speechkit.data.background_clips import (  # noqa: E402
    BackgroundClipConfig,
    make_background_clips,
)


def test_clips_carry_their_label_only_and_a_rebuild_is_skipped(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "bg"
    cfg = BackgroundClipConfig(str(corpus), str(out), per_class=3, seconds=(0.5, 1.0))
    assert make_background_clips(cfg) == {"noise": 3, "babble": 3, "beeps": 3, "music": 3}
    cuts = list(CutSet.from_file(out / "cuts_train.jsonl.gz"))
    assert len(cuts) == 12 and len({c.id for c in cuts}) == 12
    for cut in cuts:
        assert cut.custom["clip_labels"] == [cut.custom["event"]]
        assert not cut.supervisions  # no text, no speaker, no timing
        assert 0.5 <= cut.duration <= 1.0
        wave = cut.load_audio()[0]
        level = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2))
        assert -36.0 < level < -19.0, (cut.id, level)
    # babble is summed talkers of the corpus, the other classes their generators: not silent
    # and not equal to each other
    waves = {c.custom["event"]: c.load_audio()[0] for c in cuts}
    assert len({round(float(np.abs(w).mean()), 6) for w in waves.values()}) == 4
    stamp = (out / "cuts_train.jsonl.gz").stat().st_mtime_ns
    make_background_clips(cfg)
    assert (out / "cuts_train.jsonl.gz").stat().st_mtime_ns == stamp  # complete: skipped
    # other arguments rebuild
    make_background_clips(BackgroundClipConfig(str(corpus), str(out), classes=["beeps"],
                                               per_class=2, seconds=(0.5, 1.0)))  # fmt: skip
    assert len(CutSet.from_file(out / "cuts_train.jsonl.gz")) == 2


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(ConfigError, match="classes: choose from"):
        BackgroundClipConfig("c", "o", classes=["speech"])
    with pytest.raises(ConfigError, match="per_class"):
        BackgroundClipConfig("c", "o", per_class=0)
    with pytest.raises(ConfigError, match="seconds"):
        BackgroundClipConfig("c", "o", seconds=(2.0, 1.0))
    with pytest.raises(SystemExit):
        prepare(["--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "bg")])
    assert "phrasebook manifest not found" in capsys.readouterr().err
