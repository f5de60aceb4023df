"""End to end: every stage of egs/phrasebook/tts1/run.sh on a tiny corpus with tiny models, on
CPU: corpus -> phonemes and vocabulary -> FastSpeech 2 and a vocoder -> the acoustic model's
teacher-forced mels and the vocoder fine-tuned on them -> synthesis through it -> synthesised
novel sentences ->
S2T without and with them (one seed) -> MCD/F0, speaker similarity, the baseline S2T model as a
judge of all four languages, the augmentation table and the picture; then the opt-in codec
stages 10-13 (a codec, the cuts in its codes, FastSpeech 2 with codec targets, synthesis through
the codec's decoder, scored). Whisper judges are left out
(--whisper "" --judges ""): tests/bin/test_tts_score.py covers their plumbing. The figures are
RESULTS.md's business; this checks that the stages fit together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lhotse import CutSet

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "phrasebook" / "tts1"
AM = (
    "model.d_model=32 model.encoder_layers=1 model.decoder_layers=1 model.ffn_channels=48 "
    "model.predictor_channels=32 model.aligner_channels=16 data.batch_size=4 "
    "trainer.max_steps=3 trainer.max_minutes=0 trainer.average_best=1 trainer.valid_every_steps=0"
)
# The same vocoder size in stage 4 and its fine-tuning (stage 5 loads stage 4's weights).
VOCODER = (
    "model.dim=16 model.layers=1 data.segment_seconds=0.128 data.batch_size=2 "
    "trainer.max_steps=2 trainer.max_minutes=0 trainer.valid_every_steps=0"
)
CODEC = (
    "model.spectral.dim=16 model.spectral.enc_layers=1 model.spectral.dec_layers=1 "
    "model.rvq.dim=8 model.rvq.num_quantizers=2 model.rvq.codebook_size=16 "
    "model.rvq.kmeans_iters=1 data.batch_size=2 "
    "trainer.max_steps=2 trainer.max_minutes=0 trainer.valid_every_steps=0"
)
S2T = (
    "model.d_model=32 model.n_heads=2 model.encoder_layers=1 model.encoder_ffn=64 "
    "model.cgmlp_units=64 model.decoder_layers=1 model.decoder_ffn=64 "
    "trainer.max_steps=2 trainer.average_best=1 data.num_workers=0"
)


def test_every_stage_produces_its_output(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--corpus", str(tmp_path / "corpus"),
           "--data", str(tmp_path / "tts"), "--exp", str(tmp_path / "exp"),
           "--png", str(tmp_path / "mels.png"), "--hours", "0.02", "--piper", "off",
           "--min_snr_db", "0", "--valid", "4", "--limit", "2", "--whisper", "", "--judges", "",
           "--am_args", f"--set {AM}", "--s2t_args", f"--set {S2T}", "--aug_seeds", "42",
           "--vocoder_args", f"--set {VOCODER}", "--gta_args", f"--set {VOCODER}",
           "--results", str(tmp_path / "RESULTS.md")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    vocab = json.loads((tmp_path / "tts" / "vocab.json").read_text())
    assert set(vocab["languages"]) == {"eng", "deu", "spa", "fra"}
    train = CutSet.from_file(tmp_path / "tts" / "cuts_train.jsonl.gz")
    assert all(c.supervisions[0].custom["phonemes"] for c in train)
    assert (tmp_path / "exp" / "fs2" / "model_avg.pt").is_file()
    gta = CutSet.from_file(tmp_path / "exp" / "fs2" / "gta_train" / "cuts.jsonl.gz")
    assert len(gta) == len(train) and all(c.has_custom("gta_mel") for c in gta)
    assert (tmp_path / "exp" / "vocoder_gta" / "model_avg.pt").is_file()
    for part in ("synth_valid", "synth_test"):
        scores = json.loads((tmp_path / "exp" / "fs2" / part / "scores.json").read_text())
        assert scores["utterances"] > 0 and scores["mcd_db_all"] > 0
        assert (
            len(list((tmp_path / "exp" / "fs2" / part / "wav").glob("*.wav")))
            == scores["utterances"]
        )
        speed = json.loads((tmp_path / "exp" / "fs2" / part / "speed.json").read_text())
        assert speed["vocoder"] == str(tmp_path / "exp" / "vocoder_gta")
        judged = scores["judges"]["s2t_base_s42"]
        assert (
            judged["all"]["utterances"] == scores["utterances"] and "wer_synthesis" in judged["all"]
        )
        assert "secs_same_speaker" in scores["speaker_similarity"]
    assert (tmp_path / "mels.png").read_bytes()[:4] == b"\x89PNG"
    novel = CutSet.from_file(tmp_path / "tts" / "synth_novel" / "cuts_novel.jsonl.gz")
    sups = [c.supervisions[0] for c in novel]
    assert {s.language for s in sups} == {"eng", "deu", "spa", "fra"}
    assert all(len(s.custom["translations"]) == 3 and s.custom["sentence_id"] for s in sups)
    for arm in ("base", "aug"):
        assert (tmp_path / "exp" / f"s2t_{arm}_s42" / "decode_test_novel" / "asr_eng").is_dir()
    table = (tmp_path / "RESULTS.md").read_text()
    assert "## S2T with and without synthesised novel sentences (test_novel)" in table
    assert "| asr_eng |" in table and "baseline: added" in table

    codec_cmd = [*cmd, "--stage", "10", "--stop_stage", "13", "--codec_args", f"--set {CODEC}",
                 "--am_codec_args", f"--set {AM}", "--codec_png", str(tmp_path / "codec.png")]  # fmt: skip
    proc = subprocess.run(codec_cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    coded = CutSet.from_file(tmp_path / "tts" / "codes_train" / "cuts.jsonl.gz")
    assert len(coded) == len(train) and all(c.has_custom("codec_codes") for c in coded)
    am = tmp_path / "exp" / "fs2_codec"
    for part in ("synth_valid", "synth_test"):
        scores = json.loads((am / part / "scores.json").read_text())
        assert scores["utterances"] > 0 and scores["judges"]["s2t_base_s42"]["all"]["utterances"]
        speed = json.loads((am / part / "speed.json").read_text())
        assert speed["vocoder"] == str(tmp_path / "exp" / "codec" / "packed")
    assert (tmp_path / "codec.png").read_bytes()[:4] == b"\x89PNG"
