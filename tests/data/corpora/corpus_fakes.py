"""Miniature copies of public corpora, laid out on disk as the real ones are.

Each writer puts a few short utterances where the real corpus keeps them, with its file names and
transcript formats, so that preparation (lhotse's recipes and speechkit's normalisation), every
recipe stage and the scoring can run in CI without the corpus. The audio is tones (a pitch per
utterance), not speech: what is tested is the plumbing, not the figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000

SENTENCES = [
    "THE CAT SAT ON THE MAT",
    "A DOG RAN IN THE PARK",
    "SHE READ THE BOOK ALOUD",
    "HE WROTE A LONG LETTER HOME",
    "WE WALKED TO THE OLD MILL",
    "THEY SANG BY THE FIRE",
    "THE SUN ROSE OVER THE HILL",
    "IT WAS A COLD AND QUIET NIGHT",
]

# LibriSpeech: <part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac and
# <speaker>-<chapter>.trans.txt ("<utt id> <UPPER-CASE TEXT>" per line).
LIBRISPEECH_SPEAKERS = {
    "train-clean-100": [(103, 1240), (1034, 121119)],
    "train-clean-360": [(100, 121669)],
    "train-other-500": [(1006, 135212)],
    "dev-clean": [(84, 121123)],
    "dev-other": [(116, 288045)],
    "test-clean": [(1089, 134686)],
    "test-other": [(1688, 142285)],
}


def tone(seconds: float, index: int) -> np.ndarray:
    """A 16 kHz tone of ``seconds`` whose pitch depends on ``index`` (float32, amplitude 0.3)."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * (180 + 40 * (index % 10)) * t)).astype(np.float32)


def write_librispeech(
    root: str | Path,
    parts: list[str],
    utts_per_chapter: int = 3,
    speakers: dict[str, list[tuple[int, int]]] | None = None,
    min_seconds: float = 0.6,
) -> Path:
    """A miniature ``root/LibriSpeech/<part>/...`` tree; returns ``root/LibriSpeech``.
    ``speakers``: (speaker, chapter) pairs by part (default :data:`LIBRISPEECH_SPEAKERS`);
    utterances last ``min_seconds`` to ``min_seconds + 0.45`` s."""
    corpus = Path(root) / "LibriSpeech"
    n = 0
    for part in parts:
        for speaker, chapter in (speakers or LIBRISPEECH_SPEAKERS)[part]:
            chapter_dir = corpus / part / str(speaker) / str(chapter)
            chapter_dir.mkdir(parents=True, exist_ok=True)
            lines = []
            for utt in range(utts_per_chapter):
                utt_id = f"{speaker}-{chapter}-{utt:04d}"
                wave = tone(min_seconds + 0.15 * (n % 4), n)
                sf.write(chapter_dir / f"{utt_id}.flac", wave, SAMPLE_RATE)
                lines.append(f"{utt_id} {SENTENCES[n % len(SENTENCES)]}")
                n += 1
            (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return corpus


# LJSpeech 1.1: metadata.csv ("<id>|<text>|<normalised text>") and wavs/<id>.wav at 22.05 kHz.
LJSPEECH_LINES = [
    ("Printing, in the only sense with which we are at present concerned,",
     "Printing, in the only sense with which we are at present concerned,"),
    ("It was printed in 1884 by Mr. Smith.",
     "It was printed in eighteen eighty-four by Mister Smith."),
    ("The books were set in a plain type.", "The books were set in a plain type."),
]  # fmt: skip


def write_ljspeech(root: str | Path, n: int = 8) -> Path:
    """A miniature ``root/LJSpeech-1.1`` with ``n`` clips; returns that directory. Each clip
    lasts as long as LJSpeech's reader takes for its text (about 15 characters a second), so a
    TTS model's aligner has at least a frame per phoneme."""
    corpus = Path(root) / "LJSpeech-1.1"
    (corpus / "wavs").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        clip = f"LJ001-{i + 1:04d}"
        sr = 22050
        text, normalised = LJSPEECH_LINES[i % len(LJSPEECH_LINES)]
        t = np.arange(int(sr * len(normalised) / 15)) / sr
        sf.write(corpus / "wavs" / f"{clip}.wav", (0.3 * np.sin(2 * np.pi * 220 * t)), sr)
        lines.append(f"{clip}|{text}|{normalised}")
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return corpus


# MuST-C (one directory per language pair, as each release's en-<tgt> archive extracts):
#   en-<tgt>/data/<split>/wav/ted_<talk>.wav      a whole talk, 16 kHz mono
#   en-<tgt>/data/<split>/txt/<split>.yaml        one segment per line, in talk order:
#       - {duration: 1.2, offset: 0.3, rW: 6, uW: 0, speaker_id: spk.1001, wav: ted_1001.wav}
#   en-<tgt>/data/<split>/txt/<split>.en / .<tgt> the transcript / translation, line by line
MUST_C_SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")
MUST_C_TALKS = {"train": [1001, 1002], "dev": [767], "tst-COMMON": [1096], "tst-HE": [1183]}
MUST_C_SENTENCES = [
    ("Thank you so much, Chris.", {"de": "Vielen Dank, Chris.", "fr": "Merci beaucoup, Chris."}),
    ("It's truly a great honor.", {"de": "Es ist mir eine große Ehre.", "fr": "C'est un honneur."}),
    ("I have been blown away.", {"de": "Ich bin wirklich begeistert.", "fr": "J'ai été époustouflé."}),
    ("(Laughter)", {"de": "(Lachen)", "fr": "(Rires)"}),
    ("Let me tell you why.", {"de": "Ich sage Ihnen, warum.", "fr": "Je vais vous dire pourquoi."}),
    ("We walked to the old mill.", {"de": "Wir gingen zur alten Mühle.", "fr": "Nous sommes allés au moulin."}),
]  # fmt: skip


def write_must_c(
    root: str | Path,
    pairs: tuple[str, ...] = ("en-de",),
    splits: tuple[str, ...] = MUST_C_SPLITS,
    segments_per_talk: int = 3,
) -> Path:
    """A miniature MuST-C under ``root`` (``root/en-<tgt>/data/<split>/...``); returns ``root``.

    Each talk is one wav of ``segments_per_talk`` tones separated by silence; the yaml gives each
    segment's offset and duration in it, the text files its sentence and translation."""
    n = 0
    for pair in pairs:
        tgt = pair.split("-")[1]
        for split in splits:
            split_dir = Path(root) / pair / "data" / split
            (split_dir / "wav").mkdir(parents=True, exist_ok=True)
            (split_dir / "txt").mkdir(parents=True, exist_ok=True)
            yaml_lines, english, target = [], [], []
            for talk in MUST_C_TALKS[split]:
                pieces, offset = [np.zeros(int(0.3 * SAMPLE_RATE), np.float32)], 0.3
                for _ in range(segments_per_talk):
                    seconds = 0.6 + 0.15 * (n % 4)
                    pieces += [tone(seconds, n), np.zeros(int(0.25 * SAMPLE_RATE), np.float32)]
                    en, translations = MUST_C_SENTENCES[n % len(MUST_C_SENTENCES)]
                    yaml_lines.append(
                        f"- {{duration: {seconds:.6f}, offset: {offset:.6f}, rW: "
                        f"{len(en.split())}, uW: 0, speaker_id: spk.{talk}, wav: ted_{talk}.wav}}"
                    )
                    english.append(en)
                    target.append(translations[tgt])
                    offset += seconds + 0.25
                    n += 1
                sf.write(split_dir / "wav" / f"ted_{talk}.wav", np.concatenate(pieces), SAMPLE_RATE)
            (split_dir / "txt" / f"{split}.yaml").write_text("\n".join(yaml_lines) + "\n")
            (split_dir / "txt" / f"{split}.en").write_text("\n".join(english) + "\n")
            (split_dir / "txt" / f"{split}.{tgt}").write_text(
                "\n".join(target) + "\n", encoding="utf-8"
            )
    return Path(root)


# LibriMix (Libri2Mix) as lhotse's prepare_librimix reads it: LibriSpeech, WHAM!'s noise
# (wham_noise/{tr,cv,tt}/<name>.wav, 16 kHz, two channels) and LibriMix's metadata
# (metadata/Libri2Mix/libri2mix_<LibriSpeech part>.csv, one mixture a row: mixture_ID,
# source_1_path, source_1_gain, source_2_path, source_2_gain, noise_path, noise_gain; paths
# relative to LibriSpeech/ and wham_noise/, training noises named with LibriMix's speed
# perturbation suffix, sp08 / sp12, on a noise that exists unperturbed).
LIBRIMIX_SPEAKERS = {
    "train-clean-100": [(103, 1240), (1034, 121119)],
    "train-clean-360": [(100, 121669), (1001, 134707)],
    "dev-clean": [(84, 121123), (174, 50561)],
    "test-clean": [(1089, 134686), (121, 121726)],
}
LIBRIMIX_COLUMNS = ["mixture_ID", "source_1_path", "source_1_gain", "source_2_path",
                    "source_2_gain", "noise_path", "noise_gain"]  # fmt: skip
WHAM_DIRS = {"train": "tr", "dev": "cv", "test": "tt"}


def write_wham_noise(root: str | Path, per_split: int = 2, seconds: float = 1.0) -> Path:
    """A miniature ``root/wham_noise/{tr,cv,tt}`` (white noise, 16 kHz, 2 channels); returns it.
    The noises are shorter than most mixtures, so lhotse's recipe has to extend them."""
    corpus = Path(root) / "wham_noise"
    rng = np.random.default_rng(0)
    for split in WHAM_DIRS.values():
        (corpus / split).mkdir(parents=True, exist_ok=True)
        for i in range(per_split):
            noise = 0.05 * rng.standard_normal((int(SAMPLE_RATE * seconds), 2))
            sf.write(corpus / split / f"40{i}a010x_1.{i}_01xo031a_-1.{i}.wav", noise, SAMPLE_RATE)
    return corpus


def write_librimix(
    root: str | Path, parts: tuple[str, ...] = ("train-clean-100", "dev-clean", "test-clean")
) -> Path:
    """LibriSpeech ``parts`` (two speakers each, three utterances of 1.2-1.65 s a speaker), WHAM!
    noise and ``root/metadata/Libri2Mix/libri2mix_<part>.csv`` with three mixtures a part (each
    utterance index pairs the two speakers, source 1 alternating); returns ``root``."""
    root = Path(root)
    write_librispeech(root, list(parts), 3, LIBRIMIX_SPEAKERS, min_seconds=1.2)
    write_wham_noise(root)
    meta = root / "metadata" / "Libri2Mix"
    meta.mkdir(parents=True, exist_ok=True)
    for part in parts:
        wham = WHAM_DIRS[part.split("-")[0]]
        utts = [[f"{s}-{c}-{u:04d}" for u in range(3)] for s, c in LIBRIMIX_SPEAKERS[part]]
        rows = [",".join(LIBRIMIX_COLUMNS)]
        for u in range(3):
            first, second = (utts[0][u], utts[1][u]) if u % 2 == 0 else (utts[1][u], utts[0][u])
            paths = [f"{part}/{'/'.join(x.split('-')[:2])}/{x}.flac" for x in (first, second)]
            noise = f"40{u % 2}a010x_1.{u % 2}_01xo031a_-1.{u % 2}"
            if wham == "tr" and u == 2:
                noise += "sp08"  # LibriMix's slowed-down copy of a training noise
            rows.append(f"{first}_{second},{paths[0]},{0.6 + 0.2 * u},{paths[1]},{1.2 - 0.2 * u},"
                        f"{wham}/{noise}.wav,{0.5 + 0.1 * u}")  # fmt: skip
        (meta / f"libri2mix_{part}.csv").write_text("\n".join(rows) + "\n")
        # LibriMix also ships per-part statistics, which the recipe skips
        (meta / f"libri2mix_{part}_info.csv").write_text("speaker_ID,sex,subset,length\n")
    return root
