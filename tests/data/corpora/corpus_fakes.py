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


def write_librispeech(root: str | Path, parts: list[str], utts_per_chapter: int = 3) -> Path:
    """A miniature ``root/LibriSpeech/<part>/...`` tree; returns ``root/LibriSpeech``."""
    corpus = Path(root) / "LibriSpeech"
    n = 0
    for part in parts:
        for speaker, chapter in LIBRISPEECH_SPEAKERS[part]:
            chapter_dir = corpus / part / str(speaker) / str(chapter)
            chapter_dir.mkdir(parents=True, exist_ok=True)
            lines = []
            for utt in range(utts_per_chapter):
                utt_id = f"{speaker}-{chapter}-{utt:04d}"
                sf.write(chapter_dir / f"{utt_id}.flac", tone(0.6 + 0.15 * (n % 4), n), SAMPLE_RATE)
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
