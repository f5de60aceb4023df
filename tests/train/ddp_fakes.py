"""Helpers of the multi-process trainer tests (test_distributed.py, test_prune_ddp.py)."""

from __future__ import annotations

import socket


class FixedSampler:
    """The trainer's sampler contract over a fixed batch list (position kept for resume)."""

    def __init__(self, batches):
        self.batches, self.pos, self.epoch = batches, 0, 1

    def set_epoch(self, epoch):
        self.epoch, self.pos = epoch, 0

    def state_dict(self):
        return {"pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, sd):
        self.pos, self.epoch = sd["pos"], sd["epoch"]

    def __iter__(self):
        while self.pos < len(self.batches):
            self.pos += 1
            yield self.batches[self.pos - 1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the gloo rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
