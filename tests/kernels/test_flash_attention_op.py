"""The kernel as a registered torch op: opcheck (schema, fake tensors, autograd registration)
and a torch.compile trace (aot_eager: real tracing through fake tensors, no C++ compiler)."""

import pytest
import torch

from speechkit.kernels import flash_attention, kernel_available

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: interpreted (conftest.py)

pytestmark = pytest.mark.interpreter  # runs the kernels in this process (tests/conftest.py)


def _qkv(seed=0, b=2, h=1, n=21, d=16):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g).to(DEVICE).requires_grad_() for _ in range(3)]


def test_forward_op_passes_opcheck():
    q, k, v = _qkv()
    assert kernel_available(q) is None
    lens = torch.tensor([21, 9], device=DEVICE, dtype=torch.int32)
    args = (q, k, v, lens, lens, 0.25, 16, 32)
    torch.library.opcheck(torch.ops.speechkit.flash_attn_fwd.default, args)


def test_fake_tensors_give_shapes_without_running_the_kernel():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q = torch.empty(2, 3, 50, 40, dtype=torch.float16)
        k = torch.empty(2, 3, 70, 40, dtype=torch.float16)
        lens = torch.empty(2, dtype=torch.int32)
        out, lse = torch.ops.speechkit.flash_attn_fwd(q, k, k, lens, lens, 0.1, 0, 0)
        grads = torch.ops.speechkit.flash_attn_bwd(out, q, k, k, out, lse, lens, lens, 0.1, 0, 0)
    assert out.shape == q.shape and out.dtype == torch.float16
    assert lse.shape == (2, 3, 50) and lse.dtype == torch.float32
    assert [g.shape for g in grads] == [q.shape, k.shape, k.shape]


def test_torch_compile_traces_forward_and_backward():
    q, k, v = _qkv(seed=1)
    lens = torch.tensor([21, 4], device=DEVICE)

    def loss(q, k, v):
        return (flash_attention(q, k, v, lens, lens, block_sizes=(16, 32)) ** 2).sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    want = torch.autograd.grad(loss(q, k, v), (q, k, v))
    got = torch.autograd.grad(compiled(q, k, v), (q, k, v))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_autotuned_kernel_on_cuda_matches_reference_bf16():
    """Real GPU: autotuned blocks, bfloat16, a long padded batch (skipped without CUDA)."""
    from speechkit.kernels import flash_attention_ref

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 4, 1100, 64, generator=g).cuda().bfloat16() for _ in range(3))
    lens = torch.tensor([1100, 517, 1], device="cuda")
    out = flash_attention(q, k, v, lens, lens)
    ref = flash_attention_ref(q.float(), k.float(), v.float(), lens, lens)
    lp = flash_attention_ref(q, k, v, lens, lens, upcast=False)
    err = (out.float() - ref).abs().max()
    assert err <= 2 * (lp.float() - ref).abs().max() + 1e-5
