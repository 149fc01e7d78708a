"""Distributed training with generated ops: one training step with
DistributedDataParallel and one with FSDP2 (`fully_shard`), two processes on CPU
(gloo over the loopback interface, a file store, bounded timeouts), give the
gradients and updated weights of the composite activation trained in one
process on the whole batch."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD_SIZE = 2
JOIN_TIMEOUT_S = 240  # the whole run, start-up (two fresh interpreters importing torch) included
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=60)
LEARNING_RATE = 0.1


def composite_mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(torch.nn.functional.softplus(x))


class Activation(torch.nn.Module):
    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def make_model(activation) -> torch.nn.Sequential:
    torch.manual_seed(0)  # the same initial weights in every process and for both activations
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), Activation(activation),
        torch.nn.Linear(16, 16), Activation(activation),
        torch.nn.Linear(16, 1),
    ).double()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=generator, dtype=torch.float64)
    return x, torch.randn(32, 1, generator=generator, dtype=torch.float64)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """FSDP2 holds parameters and gradients as DTensor shards; gather them."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def train_one_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    torch.nn.functional.mse_loss(model(x), y).backward()
    grads = [full_tensor(p.grad).detach().clone() for p in model.parameters()]
    optimizer.step()
    return {"grads": grads, "weights": [full_tensor(p).detach().clone() for p in model.parameters()]}


def wrap(model: torch.nn.Sequential, wrapper: str) -> torch.nn.Module:
    if wrapper == "ddp":
        return torch.nn.parallel.DistributedDataParallel(model)
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # torch < 2.6
        from torch.distributed._composable.fsdp import fully_shard
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    return fully_shard(model)


def worker(rank: int, store: str, results: str) -> None:
    """One process: each trains on its half of the batch; the gradient
    all-reduce (DDP) or reduce-scatter (FSDP2) averages the halves."""
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD_SIZE, timeout=COLLECTIVE_TIMEOUT
    )
    try:
        from generated import mish

        x, y = batch()
        shard = slice(rank * len(x) // WORLD_SIZE, (rank + 1) * len(x) // WORLD_SIZE)
        outcome = {}
        for wrapper in ("ddp", "fsdp2"):
            outcome[wrapper] = train_one_step(wrap(make_model(mish), wrapper), x[shard], y[shard])
        torch.save(outcome, Path(results) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def per_rank(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, dict[str, list[torch.Tensor]]]]:
    """Runs both wrappers in one two-process group (one start-up for the module)."""
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    folder = tmp_path_factory.mktemp("distributed")
    context = mp.start_processes(
        worker, args=(str(folder / "store"), str(folder)), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    try:
        # join raises with the child's traceback if one failed, and returns False
        # while some process still runs.
        while not context.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD_SIZE} training processes did not finish in {JOIN_TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(folder / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def reference() -> dict[str, list[torch.Tensor]]:
    """The composite activation, one process, the whole batch."""
    return train_one_step(make_model(composite_mish), *batch())


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp2"])
def test_one_step_matches_the_composite_on_one_process(per_rank, reference, wrapper: str) -> None:
    for rank, outcome in enumerate(per_rank):
        for kind in ("grads", "weights"):
            got, expected = outcome[wrapper][kind], reference[kind]
            assert len(got) == len(expected) == 6
            for index, (a, b) in enumerate(zip(got, expected)):
                torch.testing.assert_close(
                    a, b, rtol=1e-12, atol=1e-14, msg=lambda m: f"rank {rank} {kind}[{index}]: {m}"
                )
