"""Train a small MLP with an adgen-generated activation vs the same activation
written as torch ops, and compare loss curve, time and activation memory.

The activation is mish, x*tanh(softplus(x)), or with `--activation gelu_tanh`
the tanh approximation of GELU. Two copies of one MLP start from the same
weights and see the same batches in the same order:

- "generated": the op from `adgen.load` (saves only its input for backward and
  recomputes the rest from formulas);
- "composite": the same formula as torch ops under autograd (saves the
  intermediates each op needs).

It prints the two loss curves side by side (they should agree to float32
rounding), the median time per epoch of each (epochs interleaved so both see the
same machine load), and the bytes saved for backward in one training step,
counted with `torch.autograd.graph.saved_tensors_hooks` (each tensor storage
counted once; weights listed apart). The generated op always saves less; whether
it is faster depends on the activation: mish's cancellation-free derivative
costs more transcendental functions than the composite's saved intermediates,
gelu-tanh's does not.

Run (from the repository root, with adgen installed):

    python examples/mlp_activation.py          # about 20 s on a laptop CPU
    python examples/mlp_activation.py --activation gelu_tanh
    python examples/mlp_activation.py --smoke  # a few batches, for CI

`ADGEN_EXAMPLES_SMOKE=1` in the environment is the same as `--smoke`.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

import adgen


def composite_mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(torch.nn.functional.softplus(x))


def composite_gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


# name -> (expression given to adgen, the same activation as torch ops)
ACTIVATIONS = {
    "mish": ("x*tanh(softplus(x))", composite_mish),
    "gelu_tanh": ("0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))", composite_gelu_tanh),
}


class Activation(torch.nn.Module):
    active = False  # True while any Activation runs; read by saved_bytes

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Activation.active = True
        try:
            return self.function(x)
        finally:
            Activation.active = False


def make_mlp(activation, features: int, width: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(features, width),
        Activation(activation),
        torch.nn.Linear(width, width),
        Activation(activation),
        torch.nn.Linear(width, 1),
    )


def make_data(samples: int, features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth nonlinear regression target with a little noise (fixed seed)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(samples, features, generator=generator)
    w = torch.randn(features, 2, generator=generator)
    w = w / w.norm(dim=0)  # h ~ N(0, 1) whatever the number of features
    h = x @ w
    y = torch.sin(2.0 * h[:, :1]) + 0.5 * h[:, 1:] ** 2
    return x, y + 0.05 * torch.randn(samples, 1, generator=generator)


def saved_bytes(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> dict[str, int]:
    """Bytes saved for backward by one training step, by who saved them.

    Every tensor autograd packs goes through the pack hook. A storage saved by
    two nodes (mish's output is saved by the next Linear too) is held once and
    counted once, under the first saver."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    owner: dict[int, tuple[str, int]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in owner:
            where = (
                "weights"
                if ptr in weights
                else "activation" if Activation.active else "other"
            )
            owner[ptr] = (where, storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    model.zero_grad()
    totals = {"activation": 0, "other": 0, "weights": 0}
    for where, nbytes in owner.values():
        totals[where] += nbytes
    return totals


def train_epoch(model, optimizer, x, y, order, batch) -> tuple[float, float]:
    """One pass over the data in the given order; returns (mean loss, seconds)."""
    start = time.perf_counter()
    total = 0.0
    for i in range(0, len(order), batch):
        index = order[i : i + batch]
        loss = torch.nn.functional.mse_loss(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    return total / len(order), time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="mish")
    args = parser.parse_args(argv)
    smoke = args.smoke or os.environ.get("ADGEN_EXAMPLES_SMOKE") == "1"
    epochs = args.epochs or (3 if smoke else 12)
    samples, features, width, batch = (
        (512, 8, 32, 128) if smoke else (16384, 16, 256, 256)
    )

    # One thread: steadier timings on a shared machine, and the same for both.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    expression, composite_activation = ACTIVATIONS[args.activation]
    activation = adgen.load(expression, name=args.activation)
    x, y = make_data(samples, features)

    generated = make_mlp(activation, features, width)
    composite = make_mlp(composite_activation, features, width)
    composite.load_state_dict(generated.state_dict())  # same initial weights
    models = {"generated": generated, "composite": composite}
    optimizers = {
        k: torch.optim.Adam(m.parameters(), lr=3e-3) for k, m in models.items()
    }

    # A copy, as in training (x[index] copies): a view would pin all of x.
    saved = {
        k: saved_bytes(m, x[:batch].clone(), y[:batch].clone())
        for k, m in models.items()
    }

    print(f"activation: {args.activation}(x) = {expression}, from adgen.load")
    print(
        f"data: {samples} x {features} -> 1, MLP {features}-{width}-{width}-1, "
        f"batch {batch}, Adam, {epochs} epochs"
    )
    print(
        f"{'epoch':>5}  {'loss generated':>14}  {'loss composite':>14}  {'rel diff':>8}"
    )
    order_generator = torch.Generator().manual_seed(2)
    times: dict[str, list[float]] = {key: [] for key in models}
    checkpoints = {1, epochs} | set(range(0, epochs + 1, max(1, epochs // 4)))
    for epoch in range(1, epochs + 1):
        order = torch.randperm(samples, generator=order_generator)
        losses = {}
        # Alternate which model goes first so neither always gets a warmer cache.
        keys = list(models) if epoch % 2 else list(reversed(models))
        for key in keys:
            losses[key], seconds = train_epoch(
                models[key], optimizers[key], x, y, order, batch
            )
            times[key].append(seconds)
        if epoch in checkpoints:
            a, b = losses["generated"], losses["composite"]
            print(f"{epoch:5d}  {a:14.6f}  {b:14.6f}  {abs(a - b) / abs(b):8.1e}")

    # The first epoch pays one-off costs (allocator warm-up); leave it out.
    median = {k: statistics.median(v[1:] or v) for k, v in times.items()}
    rows = [("time per epoch, median (s)", 3, median["generated"], median["composite"])]
    for label, parts in [
        ("saved by the 2 activations (KiB)", ["activation"]),
        ("saved in one step, total (KiB)", ["activation", "other", "weights"]),
    ]:
        g, c = (
            sum(saved[k][p] for p in parts) / 1024 for k in ("generated", "composite")
        )
        rows.append((label, 0, g, c))
    print()
    print(f"{'':34}{'generated':>11}{'composite':>11}{'ratio':>7}")
    for label, digits, g, c in rows:
        print(f"{label:34}{g:11.{digits}f}{c:11.{digits}f}{g / c:7.2f}")
    print(
        f"(saved bytes counted with saved_tensors_hooks, batch of {batch}; the total "
        f"includes {saved['generated']['weights'] / 1024:.0f} KiB of weights)"
    )


if __name__ == "__main__":
    main()
