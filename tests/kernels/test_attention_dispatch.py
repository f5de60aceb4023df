"""speechkit.nn.attention's ``triton`` backend runs the kernel (interpreted on CPU) where it is
given key lengths, never stalls on the host to decide, falls back to ``sdpa`` with a warning for
the rest, and says which backend ran (``attention_calls``)."""

import contextlib
import logging
from unittest import mock

import pytest
import torch

import speechkit.kernels as kernels
from speechkit.models.s2t import S2TConfig, S2TModel
from speechkit.nn import attention as attention_module
from speechkit.nn.attention import (
    MultiHeadAttention,
    attention_calls,
    reset_attention_calls,
    scaled_dot_product,
)
from speechkit.nn.masks import causal_mask, lengths_to_mask

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: interpreted (conftest.py)

pytestmark = pytest.mark.interpreter  # runs the kernels in this process (tests/conftest.py)


@pytest.fixture(autouse=True)
def _fresh_dispatch_state(monkeypatch):
    monkeypatch.setattr(attention_module, "_warned", set())
    reset_attention_calls()


def _qkv(n=23, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 2, n, d, generator=g).to(DEVICE) for _ in range(3)]


def _key_mask(lens, n):
    return lengths_to_mask(lens, n)[:, None, None, :]


@contextlib.contextmanager
def _host_syncs_raise():
    """Makes every way of reading a tensor's value on the host raise (on a GPU each would wait
    for the queued kernels to finish)."""

    def sync(*args, **kwargs):
        raise AssertionError("host synchronisation in the attention dispatch")

    names = ("item", "tolist", "__bool__", "__int__", "__float__")
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(torch, "equal", sync))
        for name in names:
            stack.enter_context(mock.patch.object(torch.Tensor, name, sync))
        yield


def _tiny_s2t(**overrides):
    cfg = S2TConfig(
        n_mels=16, vocab_size=11, d_model=32, n_heads=2, encoder_layers=2, encoder_ffn=48,
        cgmlp_units=48, cgmlp_kernel=5, merge_conv_kernel=3, decoder_layers=1, decoder_ffn=48,
        dropout=0.0, attention_dropout=0.0, max_target_positions=16, attention_backend="eager",
    )  # fmt: skip
    for key, value in overrides.items():
        setattr(cfg, key, value)
    torch.manual_seed(0)
    return S2TModel(cfg).to(DEVICE)


def test_key_lengths_run_the_kernel_and_it_is_counted(caplog):
    q, k, v = _qkv()
    lens = torch.tensor([23, 6], device=DEVICE)
    mask = _key_mask(lens, 23)
    with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
        out = scaled_dot_product(q, k, v, mask, backend="triton", key_lens=lens)
        padded = scaled_dot_product(q, k, v, mask, "triton", pad_queries=True, key_lens=lens)
    assert attention_calls() == {"triton": 2} and not caplog.records
    ref = scaled_dot_product(q, k, v, mask, backend="eager")
    assert attention_calls() == {"triton": 2, "eager": 1}
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)  # every row, as eager computes
    torch.testing.assert_close(padded[:, :, :6], ref[:, :, :6], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(padded[0], ref[0], atol=2e-5, rtol=1e-4)
    assert torch.all(padded[1, :, 6:] == 0)  # padded query rows skipped


def test_dispatch_to_the_kernel_never_reads_tensors_on_the_host(monkeypatch):
    """The decision uses shapes, dtypes and flags only: no ``torch.equal``/``.item()`` per call,
    each of which would stall the GPU once per layer."""
    seen = []
    fake = lambda q, k, v, q_lens, k_lens: seen.append((q_lens, k_lens)) or torch.zeros_like(q)
    monkeypatch.setattr(kernels, "flash_attention", fake)
    q, k, v = _qkv()
    lens = torch.tensor([23, 6], device=DEVICE)
    mask = _key_mask(lens, 23)
    with _host_syncs_raise():
        scaled_dot_product(q, k, v, mask, "triton", pad_queries=True, key_lens=lens)
    assert attention_calls() == {"triton": 1}
    ((q_lens, k_lens),) = seen
    assert q_lens is lens and k_lens is lens


def test_encoder_runs_the_kernel_in_every_layer_without_torch_equal():
    model = _tiny_s2t()
    model.set_attention_backend("triton")
    feats = torch.randn(2, 61, 16, device=DEVICE)
    with mock.patch.object(torch, "equal", side_effect=AssertionError("host sync")):
        model.encode(feats, torch.tensor([61, 23], device=DEVICE))
    assert attention_calls() == {"triton": model.cfg.encoder_layers}


def test_dispatch_compiles_into_one_graph():
    """Nothing data-dependent stands between the call and the kernel, so torch.compile traces
    self-attention with the kernel as one graph (a host read would break it), and the calls of
    the compiled function are counted like eager ones."""
    torch._dynamo.reset()
    mha = MultiHeadAttention(32, 2, backend="triton").to(DEVICE)
    x = torch.randn(2, 19, 32, device=DEVICE)
    lens = torch.tensor([19, 7], device=DEVICE)
    mask = _key_mask(lens, 19)
    compiled = torch.compile(lambda x: mha(x, mask, key_lens=lens), backend="aot_eager",
                             fullgraph=True)  # fmt: skip
    torch.testing.assert_close(compiled(x), mha(x, mask, key_lens=lens))
    compiled(x)
    assert attention_calls() == {"triton": 3}


def test_masks_without_key_lengths_fall_back_to_sdpa_with_a_warning(caplog):
    q, k, v = _qkv()
    left = torch.flip(lengths_to_mask(torch.tensor([23, 6]), 23), [1])[:, None, None, :]
    masks = (causal_mask(23, 0, device=DEVICE), left.to(DEVICE))
    with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
        outs = [scaled_dot_product(q, k, v, mask, backend="triton") for mask in masks]
    assert attention_calls() == {"sdpa": 2}
    for mask, out in zip(masks, outs):
        torch.testing.assert_close(out, scaled_dot_product(q, k, v, mask, backend="sdpa"))
    (message,) = [r.getMessage() for r in caplog.records]  # one reason, warned once
    assert "key_lens" in message and "'sdpa'" in message


def test_attention_dropout_falls_back_to_sdpa(caplog):
    mha = MultiHeadAttention(32, 2, dropout=0.5, backend="triton").to(DEVICE).train()
    with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
        mha(torch.randn(2, 9, 32, device=DEVICE))
    assert attention_calls() == {"sdpa": 1}
    assert "dropout" in caplog.records[0].getMessage()


def test_key_lengths_without_their_mask_are_rejected():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="mask"):
        scaled_dot_product(q, k, v, None, backend="triton", key_lens=torch.tensor([23, 6]))


def test_encoder_with_triton_matches_eager_on_valid_frames():
    model = _tiny_s2t()
    feats = torch.randn(2, 61, 16, device=DEVICE)
    feat_lens = torch.tensor([61, 23], device=DEVICE)
    ref, lens = model.encode(feats, feat_lens)
    model.set_attention_backend("triton")
    out, _ = model.encode(feats, feat_lens)
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(out[b, :n], ref[b, :n], atol=1e-4, rtol=1e-4)
    out.sum().backward()  # the kernel's backward runs inside the model
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bf16_autocast_runs_the_kernel_in_bf16_and_trains(monkeypatch):
    """Mixed precision as the trainer runs it (``torch.autocast`` bf16): the projections hand the
    kernel bf16 tensors, the loss and the fp32 weights' gradients stay finite and close to the
    same step with ``sdpa``."""
    dtypes = []
    real = kernels.flash_attention
    spy = lambda q, *args: dtypes.append(q.dtype) or real(q, *args)
    monkeypatch.setattr(kernels, "flash_attention", spy)
    feats = torch.randn(2, 61, 16, device=DEVICE)
    feat_lens = torch.tensor([61, 37], device=DEVICE)
    grads = {}
    for backend in ("sdpa", "triton"):
        model = _tiny_s2t(attention_backend=backend)
        with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
            enc, lens = model.encode(feats, feat_lens)
            loss = (enc.float() * lengths_to_mask(lens)[..., None]).pow(2).mean()
        loss.backward()
        grads[backend] = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert attention_calls()["triton"] == 2 and dtypes == [torch.bfloat16] * 2
    assert torch.isfinite(grads["triton"]).all()
    # bf16 keeps ~3 significant digits; the two backends round differently
    scale = grads["sdpa"].abs().max()
    assert (grads["triton"] - grads["sdpa"]).abs().max() <= 0.05 * scale
