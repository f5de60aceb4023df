"""Tests for speechkit/data/audio.py."""

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording

from speechkit.data.audio import AudioError, load_audio, open_recording, resample


def _tone(n, sr, freq=440.0):
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def test_mono_16k_flac_roundtrip(tmp_path):
    path = tmp_path / "a.flac"
    wave = _tone(16000, 16000)
    sf.write(path, wave, 16000)
    out = load_audio(Recording.from_file(path).to_cut())
    assert out.dtype == np.float32 and out.shape == (16000,)
    np.testing.assert_allclose(out, wave, atol=1e-4)  # 16-bit FLAC quantisation


def test_8k_stereo_is_resampled_and_mixed(tmp_path):
    path = tmp_path / "stereo.wav"
    left, right = _tone(8000, 8000, 440.0), _tone(8000, 8000, 440.0) * 0.5
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    cut = Recording.from_file(path).to_cut()
    out = load_audio(cut, sample_rate=16000)
    assert out.shape == (16000,)
    # Mono mix of a 440 Hz tone at amplitude 0.225, still at 440 Hz after resampling.
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)
    assert np.abs(out[2000:14000]).max() == pytest.approx(0.225, rel=0.02)


def test_offset_cut(tmp_path):
    path = tmp_path / "long.wav"
    wave = np.arange(32000, dtype=np.float32) / 32000
    sf.write(path, wave, 16000, subtype="FLOAT")
    cut = Recording.from_file(path).to_cut().truncate(offset=0.5, duration=1.0)
    np.testing.assert_allclose(load_audio(cut), wave[8000:24000], atol=1e-6)


def test_errors_name_cut_and_file(tmp_path):
    path = tmp_path / "bad.wav"
    sf.write(path, _tone(16000, 16000), 16000)
    cut = Recording.from_file(path).to_cut()
    path.write_bytes(path.read_bytes()[:2000])  # truncated after the manifest was made
    with pytest.raises(AudioError) as err:
        load_audio(cut)
    assert err.value.cut_id == cut.id and "bad.wav" in str(err.value)

    path.write_bytes(b"not audio at all" * 10)
    with pytest.raises(AudioError, match="unreadable"):
        load_audio(cut)

    nan_path = tmp_path / "nan.wav"
    wave = _tone(16000, 16000)
    wave[100] = np.nan
    sf.write(nan_path, wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(Recording.from_file(nan_path).to_cut())


def test_files_are_mixed_resampled_and_checked_like_cuts(tmp_path):
    left = _tone(44100, 44100, 440.0)
    sf.write(tmp_path / "stereo.wav", np.stack([left, 0.5 * left], axis=1), 44100)
    out = load_audio(tmp_path / "stereo.wav", 16000)
    assert out.dtype == np.float32 and out.shape == (16000,)
    from_cut = load_audio(open_recording(tmp_path / "stereo.wav").to_cut(), 16000)
    np.testing.assert_allclose(out, from_cut, atol=1e-6)  # one loader, one resampler
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("not audio at all")
    wave = _tone(1600, 16000)
    wave[3] = np.inf
    sf.write(tmp_path / "inf.wav", wave, 16000, subtype="FLOAT")
    for name, reason in [("missing.wav", "no such file"), ("empty.wav", "empty file"),
                         ("notes.wav", "not a readable audio file"), ("inf.wav", "NaN or inf")]:  # fmt: skip
        with pytest.raises(AudioError, match=f"{name}.*{reason}"):
            load_audio(tmp_path / name)
    for name, reason in [("missing.wav", "no such file"), ("empty.wav", "empty file"),
                         ("notes.wav", "not a readable audio file")]:  # fmt: skip
        with pytest.raises(AudioError, match=f"{name}.*{reason}") as err:
            open_recording(tmp_path / name, "utt7")
        assert err.value.name == "utt7"


def test_a_name_ending_in_a_pipe_is_a_file_name(tmp_path):
    """Hostile input: ``cmd |`` names a (missing) file; the command never runs."""
    marker = tmp_path / "ran"
    hostile = f"touch {marker} |"
    with pytest.raises(AudioError, match="no such file"):
        load_audio(hostile)
    with pytest.raises(AudioError, match="no such file"):
        open_recording(hostile)
    assert not marker.exists()


def test_resample_keeps_the_tone_and_fixes_the_length():
    wave = _tone(22050, 22050, 300.0)
    out = resample(wave, 22050, 16000)
    assert out.dtype == np.float32 and out.shape == (16000,)
    assert np.argmax(np.abs(np.fft.rfft(out))) == pytest.approx(300, abs=1)
    assert resample(wave[:7], 22050, 16000).shape == (6,)  # ceil(7 * 16000 / 22050)
    np.testing.assert_array_equal(resample(wave, 16000, 16000), wave)
