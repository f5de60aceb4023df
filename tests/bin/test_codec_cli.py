"""``speechkit codec encode|decode|pack`` on files and on cut sets (codes as lhotse arrays)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit import codec as codec_api
from speechkit.bin.codec import CODES_KEY, main
from speechkit.checkpoint import save_checkpoint
from speechkit.config import to_dict
from speechkit.models.codec import Codec, CodecConfig
from speechkit.nn.quantize import RVQConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec_cli")
    torch.manual_seed(0)
    cfg = CodecConfig(
        channels=4,
        res_dilations=[1],
        rvq=RVQConfig(dim=16, num_quantizers=6, codebook_size=1024, kmeans_iters=2),
    )
    model = Codec(cfg)
    state = {f"generator.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint(
        {"model": state, "config": {"task": "codec", "model": to_dict(cfg)}}, root / "model_avg.pt"
    )
    cuts = []
    for i, sr in enumerate([16000, 22050]):  # the second is read at 16 kHz
        t = np.arange(int(0.7 * sr)) / sr
        path = root / f"a{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * math.pi * 220 * t)).astype(np.float32), sr)
        cut = Recording.from_file(path, recording_id=f"a{i}").to_cut()
        # the supervision covers 0.1-0.6 s: a decoded cut keeps it, shifted with the cut
        cut.supervisions = [
            SupervisionSegment(f"a{i}", f"a{i}", 0.1, 0.5, text="hi", language="eng")
        ]
        cuts.append(cut.truncate(offset=0.05, duration=0.6))
    CutSet.from_cuts(cuts).to_file(root / "cuts.jsonl.gz")
    return root


def test_pack_then_encode_and_decode_a_cut_set(setup):
    packed = setup / "packed"
    assert main(["pack", "--checkpoint", str(setup / "model_avg.pt"), "--out", str(packed)]) == 0
    codes_dir, wav_dir = setup / "codes", setup / "resynth"
    assert (
        main(
            [
                "encode",
                "--model",
                str(packed),
                "--kbps",
                "1.5",
                "--cuts",
                str(setup / "cuts.jsonl.gz"),
                "--out",
                str(codes_dir),
            ]
        )
        == 0
    )
    coded = CutSet.from_file(codes_dir / "cuts.jsonl.gz")
    assert len(coded) == 2
    for cut in coded:
        codes = cut.load_custom(CODES_KEY)
        assert codes.shape == (3, 30) and codes.dtype == np.int16  # 0.6 s = 30 frames, 3 books
        assert cut.custom["codec"]["kbps"] == 1.5
        assert cut.supervisions[0].text == "hi"
    codec = codec_api.load(packed)
    first = coded[0]
    assert np.array_equal(
        first.load_custom(CODES_KEY), codec.encode(first.load_audio()[0], kbps=1.5)[0].numpy()
    )

    assert (
        main(
            [
                "decode",
                "--model",
                str(packed),
                "--cuts",
                str(codes_dir / "cuts.jsonl.gz"),
                "--out",
                str(wav_dir),
            ]
        )
        == 0
    )
    decoded = CutSet.from_file(wav_dir / "cuts.jsonl.gz")
    for cut in decoded:
        assert cut.start == 0 and abs(cut.duration - 0.6) < 1e-6
        assert cut.recording.sampling_rate == 16000 and CODES_KEY not in (cut.custom or {})
        sup = cut.supervisions[0]
        assert abs(sup.start - 0.05) < 1e-6 and sup.recording_id == cut.id
        assert np.isfinite(cut.load_audio()).all()


def test_encode_and_decode_files(setup):
    model = str(setup / "model_avg.pt")  # a training checkpoint serves as well
    out = setup / "file_codes"
    assert (
        main(
            [
                "encode",
                "--model",
                model,
                "--n-q",
                "2",
                "--out",
                str(out),
                str(setup / "a0.wav"),
                str(setup / "a1.wav"),
            ]
        )
        == 0
    )
    codes = np.load(out / "a1.npy")
    assert codes.shape == (2, 35)  # 0.7 s at 22.05 kHz, resampled: 35 frames
    wavs = setup / "file_wavs"
    assert main(["decode", "--model", model, "--out", str(wavs), str(out / "a1.npy")]) == 0
    wave, sr = sf.read(wavs / "a1.flac")
    assert sr == 16000 and len(wave) == 35 * 320


def test_cuts_or_files_not_both(setup, capsys):
    with pytest.raises(SystemExit):
        main(["encode", "--model", "m", "--out", str(setup / "x")])
    assert "either --cuts or" in capsys.readouterr().err
