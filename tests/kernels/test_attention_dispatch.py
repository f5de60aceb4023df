"""speechkit.nn.attention's ``triton`` backend runs the kernel (interpreted on CPU) for encoder
self-attention key-padding masks, and falls back to ``eager`` with a warning for the rest."""

import logging

import torch

from speechkit.models.s2t import S2TConfig, S2TModel
from speechkit.nn import attention as attention_module
from speechkit.nn.attention import MultiHeadAttention, scaled_dot_product
from speechkit.nn.masks import causal_mask, lengths_to_mask

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: interpreted (conftest.py)


def _qkv(n=23, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 2, n, d, generator=g).to(DEVICE) for _ in range(3)]


def _spy(monkeypatch):
    """Counts calls into the kernel's public function as seen by the dispatcher."""
    import speechkit.kernels as kernels

    calls = []
    real = kernels.flash_attention
    monkeypatch.setattr(kernels, "flash_attention", lambda *a, **kw: calls.append(1) or real(*a))
    return calls


def test_key_padding_mask_runs_the_kernel(monkeypatch, caplog):
    monkeypatch.setattr(attention_module, "_warned", set())
    calls = _spy(monkeypatch)
    q, k, v = _qkv()
    lens = torch.tensor([23, 6], device=DEVICE)
    mask = lengths_to_mask(lens, 23)[:, None, None, :]
    with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
        out = scaled_dot_product(q, k, v, mask, backend="triton")
        padded = scaled_dot_product(q, k, v, mask, backend="triton", pad_queries=True)
    assert len(calls) == 2 and not caplog.records
    ref = scaled_dot_product(q, k, v, mask, backend="eager")
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)  # every row, as eager computes
    torch.testing.assert_close(padded[:, :, :6], ref[:, :, :6], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(padded[0], ref[0], atol=2e-5, rtol=1e-4)
    assert torch.all(padded[1, :, 6:] == 0)  # padded query rows skipped


def test_causal_and_left_padding_masks_fall_back_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(attention_module, "_warned", set())
    calls = _spy(monkeypatch)
    q, k, v = _qkv()
    left = torch.flip(lengths_to_mask(torch.tensor([23, 6]), 23), [1])[:, None, None, :]
    for mask in (causal_mask(23, 0, device=DEVICE), left.to(DEVICE)):
        with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
            out = scaled_dot_product(q, k, v, mask, backend="triton")
        ref = scaled_dot_product(q, k, v, mask, backend="eager")
        torch.testing.assert_close(out, ref)
    assert not calls
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("eager" in m for m in messages)


def test_attention_dropout_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(attention_module, "_warned", set())
    calls = _spy(monkeypatch)
    mha = MultiHeadAttention(32, 2, dropout=0.5, backend="triton").to(DEVICE).train()
    with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
        mha(torch.randn(2, 9, 32, device=DEVICE))
    assert not calls and "dropout" in caplog.records[0].getMessage()


def test_encoder_with_triton_matches_eager_on_valid_frames():
    cfg = S2TConfig(
        n_mels=16, vocab_size=11, d_model=32, n_heads=2, encoder_layers=2, encoder_ffn=48,
        cgmlp_units=48, cgmlp_kernel=5, merge_conv_kernel=3, decoder_layers=1, decoder_ffn=48,
        dropout=0.0, attention_dropout=0.0, max_target_positions=16, attention_backend="eager",
    )  # fmt: skip
    torch.manual_seed(0)
    model = S2TModel(cfg).to(DEVICE)
    feats = torch.randn(2, 61, 16, device=DEVICE)
    feat_lens = torch.tensor([61, 23], device=DEVICE)
    ref, lens = model.encode(feats, feat_lens)
    model.set_attention_backend("triton")
    out, _ = model.encode(feats, feat_lens)
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(out[b, :n], ref[b, :n], atol=1e-4, rtol=1e-4)
    out.sum().backward()  # the kernel's backward runs inside the model
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
