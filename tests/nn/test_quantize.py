"""speechkit.nn.quantize: k-means initialisation, EMA codebooks, dead-code restarts, quantiser
dropout, the residual stages, masked channels, straight-through gradients."""

from __future__ import annotations

import pytest
import torch

from speechkit.config import ConfigError
from speechkit.nn.quantize import ResidualVQ, RVQConfig, VectorQuantizer, kmeans

CENTRES = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0], [0.0, -4.0]])


def clusters(n_per: int = 50, spread: float = 0.1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([c + spread * torch.randn(n_per, 2, generator=g) for c in CENTRES])


def nearest_distance(points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.cdist(points, targets).min(dim=1).values


def test_kmeans_finds_the_clusters():
    torch.manual_seed(0)
    centroids = kmeans(clusters(), 4, iters=20)
    assert nearest_distance(CENTRES, centroids).max() < 0.1


def test_first_training_batch_initialises_the_codebook_by_kmeans():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 4, decay=0.99, kmeans_iters=20, dead_threshold=0.0).train()
    assert not bool(vq.initted)
    q, codes = vq(clusters())
    assert bool(vq.initted)
    assert nearest_distance(CENTRES, vq.codebook).max() < 0.1
    assert (q - clusters()).abs().max() < 0.5  # every vector lands on its own cluster's code
    assert len(codes.unique()) == 4


def test_ema_moves_a_code_towards_the_mean_of_its_vectors():
    vq = VectorQuantizer(2, 2, decay=0.9, kmeans_iters=0, dead_threshold=0.0).train()
    vq.initted.fill_(True)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    vq.code_sum.copy_(vq.codebook)
    vq.cluster_size.fill_(1.0)
    x = torch.full((8, 2), 1.0)  # all assigned to code 0
    vq(x)
    # counts: 0.9 * 1 + 0.1 * 8 = 1.7; sums: 0.9 * 0 + 0.1 * 8 = 0.8 -> mean ~0.47 (smoothed)
    assert vq.cluster_size[0] == pytest.approx(1.7)
    assert 0.4 < float(vq.codebook[0, 0]) < 0.55
    assert torch.allclose(vq.codebook[1], torch.tensor([10.0, 10.0]), atol=0.1)
    vq.eval()
    before = vq.codebook.clone()
    vq(x)  # eval mode: no update
    assert torch.equal(vq.codebook, before)


def test_dead_codes_restart_on_batch_vectors():
    vq = VectorQuantizer(2, 3, decay=0.5, kmeans_iters=0, dead_threshold=1.0).train()
    vq.initted.fill_(True)
    far = torch.tensor([[100.0, 100.0], [-100.0, 100.0]])
    vq.codebook.copy_(torch.cat([torch.zeros(1, 2), far]))
    vq.code_sum.copy_(vq.codebook)
    vq.cluster_size.copy_(torch.tensor([4.0, 0.0, 0.0]))
    x = torch.randn(16, 2) * 0.1
    vq(x)
    # codes 1 and 2 received nothing and were below the threshold: now batch vectors
    assert nearest_distance(vq.codebook[1:], x).max() < 1e-5
    assert (vq.cluster_size[1:] == 1.0).all()


def rvq(**kw) -> ResidualVQ:
    cfg = dict(dim=8, num_quantizers=4, codebook_size=16, kmeans_iters=5, quantizer_dropout=0.0)
    return ResidualVQ(RVQConfig(**{**cfg, **kw}))


def test_more_codebooks_quantise_more_finely():
    torch.manual_seed(0)
    q = rvq()
    z = torch.randn(4, 8, 50)
    for _ in range(5):
        q.train()(z)
    q.eval()
    errors = [float((q(z, n_q=n).quantized - z).pow(2).mean()) for n in range(1, 5)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.5 * errors[0]


def test_codes_decode_to_the_quantised_latent_and_shapes():
    torch.manual_seed(0)
    q = rvq()
    z = torch.randn(2, 8, 7)
    q.train()(z)
    q.eval()
    out = q(z)
    assert out.codes.shape == (2, 4, 7) and out.codes.dtype == torch.int64
    assert torch.allclose(q.decode(out.codes), out.quantized, atol=1e-5)
    assert torch.equal(q.encode(z, 2), out.codes[:, :2])
    assert q.bits_per_frame(3) == 12.0
    with pytest.raises(ValueError, match="codes must lie in"):
        q.decode(torch.full((1, 1, 3), 16))
    with pytest.raises(ValueError, match="n_q must lie"):
        q(z, n_q=5)


def test_quantizer_dropout_uses_several_bitrates_in_training_only():
    torch.manual_seed(0)
    q = rvq(quantizer_dropout=1.0)
    z = torch.randn(2, 8, 5)
    seen = {q.train()(z).codes.shape[1] for _ in range(40)}
    assert seen == {1, 2, 3, 4}
    assert q.eval()(z).codes.shape[1] == 4


def test_padding_frames_do_not_update_the_codebook():
    torch.manual_seed(0)
    q = rvq(num_quantizers=1)
    z = torch.randn(1, 8, 6)
    mask = torch.tensor([[True, True, True, False, False, False]])
    z_pad = z.clone()
    z_pad[..., 3:] = 1000.0  # garbage in the padding
    q.train()(z_pad, mask=mask)
    assert q.quantizers[0].codebook.abs().max() < 100


def test_straight_through_gradient_and_commitment():
    torch.manual_seed(0)
    q = rvq()
    z = torch.randn(2, 8, 5)
    q.train()(z)
    z = z.clone().requires_grad_(True)
    out = q.eval()(z)
    (out.quantized * 3.0).sum().backward()
    assert torch.allclose(z.grad, torch.full_like(z, 3.0))
    z.grad = None
    out = q(z)
    out.commit_loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_masked_channel_stages_see_their_own_channels():
    torch.manual_seed(0)
    q = rvq(masked_quantizers=2)
    assert [v.dim for v in q.quantizers] == [4, 4, 8, 8]
    z = torch.randn(2, 8, 6)
    q.train()(z)
    q.eval()
    out = q(z, n_q=1)
    assert out.first[:, 4:].abs().max() == 0  # the first stage only writes channels 0-3
    assert out.first[:, :4].abs().max() > 0
    full = q(z)
    assert torch.allclose(q.decode(full.codes), full.quantized, atol=1e-5)


def test_config_rules():
    with pytest.raises(ConfigError, match="masked_quantizers"):
        RVQConfig(dim=10, num_quantizers=4, masked_quantizers=3)
    with pytest.raises(ConfigError, match="decay"):
        RVQConfig(decay=1.0)


def _ddp_worker(rank: int, port: int, results) -> None:
    import os
    import random

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        random.seed(rank)  # different quantiser-dropout draws: rank 0's must win
        torch.manual_seed(rank)  # different data and restarts on each rank
        q = rvq(quantizer_dropout=1.0, dead_code_threshold=2.0)
        used = []
        for _ in range(4):
            used.append(q.train()(torch.randn(2, 8, 10) * (1 + rank)).codes.shape[1])
        results[rank] = ([v.codebook.clone() for v in q.quantizers], used)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_data_parallel_replicas_keep_one_codebook():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(port, results), nprocs=2, join=True)
    (books0, used0), (books1, used1) = results[0], results[1]
    assert used0 == used1  # the same stages ran on both ranks
    for a, b in zip(books0, books1):
        assert torch.equal(a, b)
