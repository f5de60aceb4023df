"""End to end: every stage of egs/librimix/enh1/run.sh on a miniature LibriMix, on CPU.

The fixture writes LibriSpeech tone "utterances", WHAM!-style noise and LibriMix metadata CSVs
where lhotse's downloaders put them; the recipe prepares them with lhotse's LibriMix recipe
(``--download false``; two-talker and noisy mixtures), trains its config shrunk to a very small
separator for two steps and writes the SI-SDRi tables into RESULTS.md. This checks that the
stages fit together, not the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "corpora"))
import corpus_fakes  # noqa: E402

from speechkit.separate import load_trained  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs" / "librimix" / "enh1"
TINY_MODEL = " ".join(
    f"--set {kv}"
    for kv in [
        "model.channels=16",
        "model.hidden=24",
        "model.query_dim=8",
        "model.dilations=[1,2]",
        "model.stacks=1",
        "data.segment_seconds=1.0",
        "data.max_duration=8",
        "data.num_workers=0",
        "trainer.max_steps=2",
        "trainer.valid_every_steps=2",
        "trainer.average_best=1",
        "trainer.device=cpu",
        "trainer.amp='off'",  # (YAML reads a bare off as false)
        "trainer.num_threads=1",
    ]
)


def run_recipe(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--data_root", str(tmp / "corpus")]
    cmd += ["--data", str(tmp / "data"), "--exp", str(tmp / "exp" / "sep_tiny"), "--nj", "1"]
    cmd += ["--train_parts", "train-clean-100", "--mix", "clean both"]
    cmd += ["--results", str(tmp / "RESULTS.md"), "--train_args", TINY_MODEL, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("librimix")
    corpus_fakes.write_librimix(tmp / "corpus")
    proc = run_recipe(tmp, "--download", "false")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc


def test_every_stage_produces_its_output(recipe_run):
    tmp, proc = recipe_run
    for split in ("train", "dev", "test"):
        assert (tmp / "data" / f"cuts_{split}.jsonl.gz").is_file()
    model = load_trained(tmp / "exp" / "sep_tiny", "separator")
    assert model.cfg.channels == 16 and model.cfg.stacks == 1  # the recipe's config, shrunk
    results = (tmp / "RESULTS.md").read_text()
    assert "## Separation: SI-SDR improvement by query and SNR band" in results
    assert "command: `python -m speechkit.bench.separation --model sep_tiny=" in results
    rows = {line.split(" | ")[1]: line for line in results.splitlines()
            if line.startswith("| sep_tiny | ") and line.count("|") == 9}  # fmt: skip
    # two-talker test cuts: the enrolled speaker; noisy ones: speech or the noise, by class or text
    assert set(rows) == {"enrolled speaker", "class: speech", "class: background",
                         "text (held-out)"}  # fmt: skip
    assert rows["enrolled speaker"].rstrip(" |").endswith("| 6")  # 3 mixtures x 2 targets
    assert rows["class: speech"].rstrip(" |").endswith("| 3")
    for line in rows.values():
        mean = line.split(" | ")[-2]
        assert float(mean) == float(mean)  # an SI-SDRi in dB, not "-"


def test_stages_are_resumable(recipe_run):
    tmp, _ = recipe_run
    before = (tmp / "data" / "cuts_train.jsonl.gz").stat().st_mtime_ns
    proc = run_recipe(tmp, "--stage", "1", "--stop_stage", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "already holds LibriMix" in log and "finished training with this config" in log
    assert "stage 3" not in log
    assert (tmp / "data" / "cuts_train.jsonl.gz").stat().st_mtime_ns == before


def test_missing_noise_stops_the_recipe_naming_it(tmp_path):
    corpus_fakes.write_librimix(tmp_path / "corpus")
    for wav in (tmp_path / "corpus" / "wham_noise" / "cv").glob("*.wav"):
        wav.unlink()
    proc = run_recipe(tmp_path, "--stop_stage", "1")
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "wham_noise/cv is missing or holds no .wav file" in log
    assert not (tmp_path / "data" / "cuts_train.jsonl.gz").exists()
