"""A synthesis directory in the layout ``speechkit.bin.tts_synthesize`` writes (``wav/``,
``mel/``, ``mel.json``, ``synth.jsonl``, ``speed.json``), for the tts-score and tts-plot tests:
each row's reference recording and "synthesis" are harmonic tones, so pitch errors are known.
Also a tiny random acoustic model and cuts of tones for the commands that run one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from context_cuts import voice
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.data.tts import PITCH_REFERENCE_HZ
from speechkit.models.tts import FastSpeech2, FastSpeech2Config
from speechkit.tts.mel import TTSMelConfig, mel_spectrogram
from speechkit.tts.text import PhonemeVocab, phonemize

MEL = TTSMelConfig()


@dataclasses.dataclass
class Row:
    """One synthesised cut: its text and language, the two voices, and the tones' F0 (Hz)."""

    id: str
    text: str
    language: str
    ref_speaker: str
    syn_speaker: str
    ref_f0: float = 150.0
    syn_f0: float = 150.0
    seconds: float = 0.8


def write_synth_dir(root: Path, rows: list[Row], speed: dict | None = None) -> Path:
    """``root/synth`` with one wav, mel and synth.jsonl line per row; references in ``root/refs``."""
    synth, refs = root / "synth", root / "refs"
    for d in (synth / "wav", synth / "mel", refs):
        d.mkdir(parents=True, exist_ok=True)
    (synth / "mel.json").write_text(json.dumps(dataclasses.asdict(MEL)) + "\n")
    lines = []
    for r in rows:
        sf.write(refs / f"{r.id}.wav", voice(r.ref_f0, r.seconds), MEL.sample_rate)
        wave = voice(r.syn_f0, r.seconds)
        sf.write(synth / "wav" / f"{r.id}.wav", wave, MEL.sample_rate)
        mel = mel_spectrogram(torch.from_numpy(wave), MEL)[0]  # (M, T)
        pitch = torch.full((mel.shape[1],), float(np.log2(r.syn_f0 / PITCH_REFERENCE_HZ)))
        torch.save({"mel": mel, "pitch": pitch, "phonemes": ["a"]}, synth / "mel" / f"{r.id}.pt")
        lines.append({
            "id": r.id, "text": r.text, "language": r.language,
            "reference": str(refs / f"{r.id}.wav"), "ref_speaker": r.ref_speaker,
            "syn_speaker": r.syn_speaker, "event": "clean", "seconds": r.seconds,
        })  # fmt: skip
    (synth / "synth.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if speed is not None:
        (synth / "speed.json").write_text(json.dumps(speed) + "\n")
    return synth


def tiny_acoustic_model(path: Path, texts: list[str], speakers=("eng-a", "eng-b")) -> Path:
    """A random tts checkpoint at ``path`` knowing ``speakers`` (English) and the sounds of
    ``texts``."""
    torch.manual_seed(0)
    vocab = PhonemeVocab.build(phonemize(t, "eng") for t in texts)
    cfg = FastSpeech2Config(
        phonemes=vocab.phonemes, speakers=list(speakers), languages=["eng"], d_model=16,
        n_heads=2, encoder_layers=1, decoder_layers=1, ffn_channels=32, predictor_channels=16,
        aligner_channels=16,
    )  # fmt: skip
    config = {"task": "tts", "model": dataclasses.asdict(cfg), "mel": vars(TTSMelConfig())}
    torch.save({"config": config, "model": FastSpeech2(cfg).state_dict()}, path)
    return path


def write_cuts(tmp_path: Path, specs, seconds: float = 0.5) -> str:
    """(id, text, speaker, language) -> a manifest of cuts whose recordings are tones."""
    cuts = []
    for cut_id, text, speaker, language in specs:
        wav = tmp_path / f"{cut_id}.wav"
        sf.write(wav, voice(150.0, seconds), 16000)
        cut = Recording.from_file(wav, recording_id=cut_id).to_cut()
        cut.supervisions = [
            SupervisionSegment(cut_id, cut_id, 0, cut.duration, text=text, speaker=speaker,
                               language=language)
        ]  # fmt: skip
        cuts.append(cut)
    path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return str(path)
