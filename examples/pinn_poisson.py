"""A physics-informed network (PINN) whose activation is an adgen-generated op.

Solves the 1-D Poisson problem

    -u''(x) = pi^2 sin(pi x)  on [-1, 1],   u(-1) = u(1) = 0,

whose exact solution is sin(pi x). The network's activation is mish, built by
`adgen.load` from its textbook formula `x*tanh(log(1 + exp(x)))` (adgen rewrites
`log(1 + exp(x))` to a stable softplus). The residual needs u_xx, so autograd runs
double backward through the op, and the training step differentiates that again
with respect to the weights: a third derivative of the activation, every order
an exact formula from the generated module.

Before training, the script checks the op against the same activation written as
torch ops (float64): u_xx and the loss gradient must agree to rounding.

Run (from the repository root, with adgen and matplotlib installed):

    python examples/pinn_poisson.py                 # about 15 s on a laptop CPU
    python examples/pinn_poisson.py --plot out.png  # choose where the plot goes
    python examples/pinn_poisson.py --smoke         # a few steps, for CI

`ADGEN_EXAMPLES_SMOKE=1` in the environment is the same as `--smoke`.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time

import torch

import adgen

MISH_TEXTBOOK = "x*tanh(log(1 + exp(x)))"


def composite_mish(x: torch.Tensor) -> torch.Tensor:
    """The same activation as plain torch ops, differentiated by autograd."""
    return x * torch.tanh(torch.nn.functional.softplus(x))


class MLP(torch.nn.Module):
    """1 -> width -> width -> 1 with a pluggable activation."""

    def __init__(self, activation, width: int) -> None:
        super().__init__()
        self.activation = activation
        self.layers = torch.nn.ModuleList(
            [
                torch.nn.Linear(1, width),
                torch.nn.Linear(width, width),
                torch.nn.Linear(width, 1),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def source(x: torch.Tensor) -> torch.Tensor:
    return math.pi**2 * torch.sin(math.pi * x)


def pinn_loss(net: MLP, x: torch.Tensor, boundary: torch.Tensor):
    """Mean squared PDE residual plus a boundary penalty; also returns u_xx."""
    u = net(x)
    # create_graph=True twice: u_xx stays differentiable for the weight gradient.
    (u_x,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True)
    residual = u_xx + source(x.detach())
    loss = residual.pow(2).mean() + 100.0 * net(boundary).pow(2).mean()
    return loss, u_xx


def check_against_composite(net: MLP, composite_net: MLP) -> tuple[float, float]:
    """Max |difference| of u_xx and of the loss gradient (a third derivative of
    the activation) between the generated op and the composite, in float64."""
    results = []
    for model in (net, composite_net):
        model = copy.deepcopy(model).double()
        x = torch.linspace(-1.0, 1.0, 33, dtype=torch.float64)[:, None].requires_grad_(
            True
        )
        boundary = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
        loss, u_xx = pinn_loss(model, x, boundary)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((u_xx.detach(), torch.cat([g.flatten() for g in grads])))
    (uxx_a, grad_a), (uxx_b, grad_b) = results
    return (uxx_a - uxx_b).abs().max().item(), (grad_a - grad_b).abs().max().item()


def save_plot(path: str, net: MLP, losses: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    x = torch.linspace(-1.0, 1.0, 401)[:, None]
    with torch.no_grad():
        u = net(x).squeeze(1)
    x = x.squeeze(1)
    exact = torch.sin(math.pi * x)

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.8))
    left.plot(x, exact, "k-", lw=3, alpha=0.35, label="exact sin(πx)")
    left.plot(x, u, "C0--", lw=1.5, label="PINN")
    left.set(title="-u'' = π² sin(πx), u(±1) = 0", xlabel="x", ylabel="u")
    left.legend()
    middle.semilogy(x, (u - exact).abs().clamp_min(1e-12), "C3")
    middle.set(title="|u - exact|", xlabel="x")
    right.semilogy(losses, "C2")
    right.set(title="training loss", xlabel="step")
    fig.suptitle("PINN with an adgen-generated activation: mish = " + MISH_TEXTBOOK)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", default="pinn_poisson.png", help="PNG to write")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args(argv)
    smoke = args.smoke or os.environ.get("ADGEN_EXAMPLES_SMOKE") == "1"
    steps = args.steps or (150 if smoke else 2000)
    points, width = (32, 16) if smoke else (126, 32)

    # Tensors here are tiny: one thread beats several (no sync overhead) and keeps
    # timings steady on a shared machine.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # The generated op, built in memory from the same source `adgen emit` writes.
    mish = adgen.load(MISH_TEXTBOOK, name="mish")
    net = MLP(mish, width)
    print(f"activation: mish(x) = {MISH_TEXTBOOK}, from adgen.load")

    composite_net = MLP(composite_mish, width)
    composite_net.load_state_dict(net.state_dict())
    uxx_diff, grad_diff = check_against_composite(net, composite_net)
    print(
        f"check vs composite torch ops (float64): max |diff| u_xx {uxx_diff:.1e}, "
        f"loss gradient {grad_diff:.1e}"
    )

    # Interior collocation points on a uniform grid; the boundary enters the loss.
    x = torch.linspace(-1.0, 1.0, points + 2)[1:-1, None].requires_grad_(True)
    boundary = torch.tensor([[-1.0], [1.0]])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    losses = []
    report_every = max(1, steps // 4)
    start = time.perf_counter()
    for step in range(steps):
        loss, _ = pinn_loss(net, x, boundary)
        optimizer.zero_grad()
        loss.backward()  # differentiates u_xx: third derivative of the activation
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % report_every == 0:
            print(f"step {step:5d}  loss {losses[-1]:.3e}")
    elapsed = time.perf_counter() - start

    grid = torch.linspace(-1.0, 1.0, 1001)[:, None]
    with torch.no_grad():
        error = (net(grid) - torch.sin(math.pi * grid)).abs().max().item()
    print(f"initial loss {losses[0]:.3e}")
    print(f"final loss {losses[-1]:.3e}")
    print(f"max |u - sin(pi x)| on 1001 points: {error:.2e}")
    print(
        f"time: {steps} steps in {elapsed:.1f} s ({1e3 * elapsed / steps:.1f} ms/step)"
    )

    save_plot(args.plot, net, losses)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
