"""Long-form decoding mechanics with OWSM's rules: timestamp parsing, window advance, stitching,
batching several inputs; the logit filter on any device.

The tokenizer is that of a tiny converted ESPnet model (``espnet_fakes``, no ESPnet needed):
timestamps ``<0.00>`` .. ``<1.00>`` every 0.02 s, so windows are 1 s long. Whisper's rules on the
same engine: tests/decode/test_whisper.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "convert"))
import espnet_fakes as ef  # noqa: E402

from speechkit.convert.espnet import convert_espnet  # noqa: E402
from speechkit.decode import DecodeOptions  # noqa: E402
from speechkit.decode.longform import (  # noqa: E402
    LongformDecoder,
    MonotonicTimestamps,
    OwsmSegmenter,
    Stream,
    Window,
    parse_timestamped,
)
from speechkit.pretrained import load_pretrained  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("owsm")
    ef.write_fake_espnet_dir(root / "esp")
    return load_pretrained(convert_espnet(root / "esp", root / "packed"))


def _ids(tok, *parts):
    """Token ids of a mix of times (floats) and texts (str)."""
    out = []
    for p in parts:
        out += [tok.timestamp_id(p)] if isinstance(p, float) else tok.encode(p)
    return out


def test_parse_segments_and_cut_off_tail(pretrained):
    tok = pretrained.tokenizer
    ids = _ids(tok, 0.0, "the cat", 0.4, 0.4, "sat on", 0.86, 0.9, "the park")
    parsed = parse_timestamped(ids, tok)
    got = [(s.start, s.end, s.text) for s in parsed.complete]
    assert got == [(0.0, 0.4, "the cat"), (0.4, 0.86, "sat on")]
    assert tok.decode(parsed.tail) == "the park" and parsed.tail_start == 0.9
    assert parsed.last_end == 0.86
    # Text before any timestamp starts at 0; an empty opening is moved, not a segment.
    parsed = parse_timestamped(_ids(tok, "hello", 0.3, 0.5, 0.52, "world", 0.7), tok)
    assert [(s.start, s.end, s.text) for s in parsed.complete] == [
        (0.0, 0.3, "hello"), (0.52, 0.7, "world"),
    ]  # fmt: skip
    assert parsed.tail is None


def test_window_and_resolution_come_from_the_tokenizer(pretrained):
    lf = LongformDecoder.for_model(pretrained, DecodeOptions(beam_size=1))
    assert lf.window_s == pytest.approx(ef.MAX_TIME)
    assert lf.segmenter.resolution == pytest.approx(ef.RESOLUTION)
    assert lf.decode_windows.window_samples == int(ef.MAX_TIME * SR)
    segmenter = OwsmSegmenter(pretrained.tokenizer)
    with pytest.raises(ValueError, match="shorter than two timestamp steps"):
        LongformDecoder(lambda ws: [], segmenter, SR, window_s=0.03)


class Scripted:
    """A forced window decoder: returns scripted outputs and records where each window began
    (the test audio is a ramp, so a window's first sample gives its offset)."""

    def __init__(self, outputs):
        self.outputs, self.offsets, self.lengths = list(outputs), [], []

    def __call__(self, windows):
        out = []
        for w in windows:
            self.offsets.append(round(float(w.chunk[0]) / SR, 4))
            self.lengths.append(w.chunk.numel())
            out.append(self.outputs.pop(0))
        return out


def test_advance_to_last_complete_timestamp_and_stitch(pretrained):
    tok = pretrained.tokenizer
    wave = torch.arange(int(2.5 * SR), dtype=torch.float64)  # sample k has value k
    script = Scripted([
        _ids(tok, 0.0, "the cat", 0.4, 0.4, "sat on", 0.86, 0.9, "the ma"),  # tail cut off
        _ids(tok, 0.04, "the mat", 0.5, 0.5, "hello"),
        _ids(tok, "world how"),  # no timestamps: one segment over the window
        _ids(tok, 0.0, "are you"),  # the last window keeps its tail, up to the audio's end
    ])  # fmt: skip
    lf = LongformDecoder(script, OwsmSegmenter(tok), SR)
    segments = lf(wave.double())
    assert script.offsets == [0.0, 0.86, 1.36, 2.36]
    assert script.lengths == [SR, SR, SR, int(0.14 * SR)]
    got = [(s.start, s.end, s.text) for s in segments]
    assert got == [
        (0.0, 0.4, "the cat"),
        (0.4, 0.86, "sat on"),
        (0.9, 1.36, "the mat"),
        (1.36, 2.36, "world how"),
        (2.36, 2.5, "are you"),
    ]
    assert not script.outputs


def test_timestamp_at_zero_only_advances_a_full_window(pretrained):
    tok = pretrained.tokenizer
    script = Scripted([_ids(tok, 0.0, "a dog", 0.0), _ids(tok, 0.0, "ran", 0.5)])
    segments = LongformDecoder(script, OwsmSegmenter(tok), SR)(torch.arange(int(1.5 * SR)).float())
    assert script.offsets == [0.0, 1.0]
    # The first window closed nothing after 0: its text spans the window.
    assert [(s.start, s.end, s.text) for s in segments] == [(0.0, 1.0, "a dog"), (1.0, 1.5, "ran")]


def test_real_model_windows(pretrained):
    """The converted model itself decodes 2.3 s in windows; its times are absolute and sorted."""
    g = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(int(2.3 * SR), generator=g)
    opts = DecodeOptions(beam_size=2, ctc_weight=0.3, max_len=6)
    lf = LongformDecoder.for_model(pretrained, opts)
    calls = []
    inner = lf.decode_windows
    lf.decode_windows = lambda ws: calls.extend(w.chunk.numel() for w in ws) or inner(ws)
    segments = lf(wave, "eng", "asr")
    assert calls and calls[0] == SR  # full 1 s windows
    assert 2 <= len(calls) <= 23  # advances by >= one timestamp step, ends at the audio's end
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    assert all(0.0 <= s.start <= s.end <= 2.3 + 1e-6 for s in segments)
    times = set(pretrained.tokenizer.timestamp_ids)
    assert all(t not in times for s in segments for t in s.tokens)


def test_inputs_decoded_together_give_what_they_give_alone(pretrained):
    """Windows of several inputs share a batch; each input's segments do not change."""
    g = torch.Generator().manual_seed(1)
    waves = [0.1 * torch.randn(int(s * SR), generator=g) for s in (1.7, 0.6, 2.2)]
    opts = DecodeOptions(beam_size=2, max_len=6)
    alone = [LongformDecoder.for_model(pretrained, opts)(w, "eng", "asr") for w in waves]
    batched = LongformDecoder.for_model(pretrained, opts, batch_size=2)
    calls = []
    inner = batched.decode_windows
    batched.decode_windows = lambda ws: calls.append(len(ws)) or inner(ws)
    together = batched.decode([Stream(w, w.numel() / SR, "eng", "asr") for w in waves])
    assert max(calls) == 2  # windows of different inputs were decoded in one call
    for a, b in zip(alone, together):
        assert [(s.start, s.end, s.tokens) for s in a] == [(s.start, s.end, s.tokens) for s in b]


def test_monotonic_filter_forbids_only_earlier_timestamps(pretrained):
    tok = pretrained.tokenizer
    vocab = pretrained.model.cfg.vocab_size
    rule = MonotonicTimestamps(tok.timestamp_ids, tok.timestamp_times, vocab)
    text = tok.encode("a dog")
    rows = torch.tensor([
        [tok.timestamp_id(0.5)] + text,   # opened at 0.5
        [tok.timestamp_id(0.2)] + text[:-1] + [tok.timestamp_id(0.4)],  # closed at 0.4
        text + text[:1],                  # no timestamp yet
    ])  # fmt: skip
    logits = torch.zeros(3, vocab)
    assert torch.equal(rule(logits, rows[:, :0], 0), logits)
    out = rule(logits, rows, rows.shape[1])
    for row, last in ((0, 0.5), (1, 0.4)):
        for tid, t in zip(tok.timestamp_ids, tok.timestamp_times, strict=True):
            assert (out[row, tid] == float("-inf")) == (t < last - 1e-9), (row, t)
    assert torch.isfinite(out[2]).all()
    not_ts = [i for i in range(vocab) if i not in set(tok.timestamp_ids)]
    assert torch.isfinite(out[:, not_ts]).all()  # text and <eos> untouched
    assert torch.equal(logits, torch.zeros(3, vocab))  # input not modified


def test_real_model_windows_never_go_back_in_time(pretrained):
    """Random weights emit timestamps in any order; the window decoder must not."""
    opts = DecodeOptions(beam_size=3, ctc_weight=0.0, max_len=12)
    lf = LongformDecoder.for_model(pretrained, opts)
    tok = pretrained.tokenizer
    seen_timestamps = 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        wave = 0.3 * torch.randn(SR, generator=g)
        (out,) = lf.decode_windows([Window(Stream(wave, 1.0, "eng", "asr"), wave, 0.0, 1.0, True)])
        times = [tok.time_of(t) for t in out if tok.is_timestamp(t)]
        seen_timestamps += len(times)
        assert times == sorted(times), times
    assert seen_timestamps >= 2  # the check above had something to check


def test_monotonic_filter_stays_on_the_logits_device(pretrained):
    """On the meta device a CPU tensor mixed into the computation raises: none is."""
    tok = pretrained.tokenizer
    vocab = pretrained.model.cfg.vocab_size
    rule = MonotonicTimestamps(tok.timestamp_ids, tok.timestamp_times, vocab)
    tokens = torch.tensor([[tok.timestamp_id(0.5)] + tok.encode("a dog")], device="meta")
    out = rule(torch.zeros(1, vocab, device="meta"), tokens, tokens.shape[1])
    assert out.device.type == "meta" and out.shape == (1, vocab)
