"""Train an MLP whose activation is an adgen-generated op on several processes,
with DistributedDataParallel (default) or FSDP2 (`--fsdp`, torch's `fully_shard`).

A generated op is a set of plain `torch.autograd.Function`s, so DDP and FSDP2
treat it like any torch op: each process runs forward and backward on its share
of the batch and the wrapper averages the gradients. Each process gets the op
from `adgen.load` (in a project you would import the committed module).

It runs on CPU with the gloo backend over the loopback interface (127.0.0.1), so
it needs no GPU and no network. At the end it checks that every process holds
the same weights and that they match training the same formula, written as torch
ops, in one process on the whole batch.

    python examples/distributed_training.py             # 2 processes, 300 steps
    python examples/distributed_training.py --fsdp
    python examples/distributed_training.py --smoke     # a few steps, for CI
    torchrun --nproc-per-node 2 examples/distributed_training.py

Under torchrun the processes come from torchrun (env:// rendezvous); otherwise
the script starts `--processes` of them itself. On GPUs you would use the
"nccl" backend and move model and data to `cuda:<local rank>`.
`ADGEN_EXAMPLES_SMOKE=1` in the environment is the same as `--smoke`.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import adgen

EXPRESSION = "x*tanh(softplus(x))"  # mish
SAMPLES, FEATURES, WIDTH, BATCH = 4096, 16, 64, 256


def composite_mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(torch.nn.functional.softplus(x))


class Activation(torch.nn.Module):
    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def make_model(activation) -> torch.nn.Sequential:
    torch.manual_seed(0)  # every process starts from the same weights
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, WIDTH), Activation(activation),
        torch.nn.Linear(WIDTH, WIDTH), Activation(activation),
        torch.nn.Linear(WIDTH, 1),
    )


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(SAMPLES, FEATURES, generator=generator)
    y = torch.sin(x[:, :4].sum(1, keepdim=True)) + 0.1 * x[:, 4:5] ** 2
    return x, y


def batches(steps: int):
    """The same sequence of global batches in every process."""
    generator = torch.Generator().manual_seed(2)
    for _ in range(steps):
        yield torch.randint(0, SAMPLES, (BATCH,), generator=generator)


def wrap(model: torch.nn.Sequential, fsdp: bool) -> torch.nn.Module:
    if not fsdp:
        return torch.nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    return fully_shard(model)


def flat_weights(model: torch.nn.Module) -> torch.Tensor:
    # FSDP2 holds each parameter as a DTensor shard: gather it first.
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]
    return torch.cat([p.detach().reshape(-1) for p in full])


def full_data_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():  # every process calls it: FSDP2 gathers weights for forward
        return torch.nn.functional.mse_loss(model(x), y).item()


def train(rank: int, world_size: int, steps: int, fsdp: bool) -> None:
    x, y = make_data()
    mish = adgen.load(EXPRESSION, name="mish")
    model = wrap(make_model(mish), fsdp)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    report_every = max(1, steps // 5)
    initial = full_data_loss(model, x, y)
    start = time.perf_counter()
    for step, indices in enumerate(batches(steps)):
        mine = indices.chunk(world_size)[rank]  # this process's share of the batch
        loss = torch.nn.functional.mse_loss(model(x[mine]), y[mine])
        optimizer.zero_grad()
        loss.backward()  # DDP / FSDP2 average the gradients over the processes here
        optimizer.step()
        if step % report_every == 0 or step == steps - 1:
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            if rank == 0:
                print(f"step {step:4d}  loss {mean_loss.item() / world_size:.6f}", flush=True)
    elapsed = time.perf_counter() - start
    final = full_data_loss(model, x, y)

    weights = flat_weights(model)
    gathered = [torch.empty_like(weights) for _ in range(world_size)]
    dist.all_gather(gathered, weights)
    if rank != 0:
        return
    spread = max((w - weights).abs().max().item() for w in gathered)
    # The same training in one process, on the whole batches, with the composite.
    single = make_model(composite_mish)
    optimizer = torch.optim.Adam(single.parameters(), lr=3e-3)
    for indices in batches(steps):
        loss = torch.nn.functional.mse_loss(single(x[indices]), y[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    difference = (flat_weights(single) - weights).abs().max().item()
    print(f"loss on all {SAMPLES} samples: initial {initial:.6f}, final {final:.6f}")
    print(f"time: {steps} steps in {elapsed:.1f} s")
    print(f"max |weights of process r - weights of process 0| over {world_size} processes: {spread:.1e}")
    print(f"max |weights - one process with the composite activation|: {difference:.1e}")


def main_in_process(rank: int, world_size: int, init_method: str, steps: int, fsdp: bool) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=init_method, rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        train(rank, world_size, steps, fsdp)
        # Tear down together, and only once the model (FSDP2 keeps reference cycles
        # to its process group) is gone: a process that destroys its group while
        # another still uses it, or whose gloo work outlives the group, can abort
        # at exit ("terminate called without an active exception").
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--fsdp", action="store_true", help="FSDP2 (fully_shard) instead of DDP")
    parser.add_argument("--smoke", action="store_true", help="a few steps, for CI")
    args = parser.parse_args()
    if args.smoke or os.environ.get("ADGEN_EXAMPLES_SMOKE"):
        args.steps = 20
    if "RANK" in os.environ:  # started by torchrun
        world_size = int(os.environ["WORLD_SIZE"])
        if int(os.environ["RANK"]) == 0:
            print(f"activation: mish(x) = {EXPRESSION}, from adgen.load")
            print(f"{'FSDP2' if args.fsdp else 'DDP'}, {world_size} processes, gloo on CPU")
        main_in_process(int(os.environ["RANK"]), world_size, "env://", args.steps, args.fsdp)
        return
    print(f"activation: mish(x) = {EXPRESSION}, from adgen.load")
    print(f"{'FSDP2' if args.fsdp else 'DDP'}, {args.processes} processes, gloo on CPU", flush=True)
    with tempfile.TemporaryDirectory() as folder:  # a file store: no port to pick
        mp.start_processes(
            main_in_process,
            args=(args.processes, f"file://{folder}/store", args.steps, args.fsdp),
            nprocs=args.processes,
            start_method="spawn",
        )


if __name__ == "__main__":
    main()
