"""Time of the derivatives past the first, for ops of several inputs, whose
kernels call the ∂²f·a and ∂³f·a·b helpers (adgen/contract.py). Prints ratios
(medians of interleaved runs in one process; lower is better for the emitted op):

    python benchmarks/higher_order.py [--size 1000000] [--repeat 15] [--ops damped_wave,heat_kernel]
                                      [--device cpu] [--baseline /path/to/other/checkout]

Columns, each the emitted op's time over the eager composite's (autograd of
the same formula in torch ops), then, with --baseline, over the op as the other
checkout emits it:
  2nd     grad of grad (create_graph, then a second grad)
  3rd     the gradient of that again: reverse mode to third order (`-` for an
          op of degree 2, whose third derivatives are zero)
  fwd3    torch.func.jvp of grad of grad, all by the first input: forward mode
          over two levels of reverse, where needs_input_grad asks for one input
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adgen.api import emit  # noqa: E402
from benchmarks.speed import emit_with, load  # noqa: E402

OPS = [
    # name, expression, params, eager composite
    ("damped_wave", "x*exp(-alpha*x**2)*cos(y)", {"alpha": 0.5},
     lambda x, y: x * torch.exp(-0.5 * x**2) * torch.cos(y)),
    ("heat_kernel", "exp(-x**2/(4*k*t))/sqrt(4*pi*k*t)", {"k": 0.1},
     lambda x, t: torch.exp(-x**2 / (4 * 0.1 * t)) / torch.sqrt(4 * torch.pi * 0.1 * t)),
    ("softened_coulomb", "q/sqrt(x**2 + y**2 + z**2 + eps**2)", {"q": 1.0, "eps": 0.1},
     lambda x, y, z: 1.0 / torch.sqrt(x**2 + y**2 + z**2 + 0.1**2)),
    # Several outputs: each output's terms take the helpers over its own table.
    ("polar", "r*cos(theta), r*sin(theta)", {},
     lambda r, theta: (r * torch.cos(theta), r * torch.sin(theta))),
    # Outputs of degree 2: autograd's zeros for an unused grad, the outputs'
    # terms summed directly.
    ("complex_mul", "a*c - b*d, a*d + b*c", {},
     lambda a, c, b, d: (a * c - b * d, a * d + b * c)),
]


def total(outputs) -> torch.Tensor:
    """The sum of the op's output, or of its outputs where it has several."""
    return sum(o.sum() for o in outputs) if isinstance(outputs, tuple) else outputs.sum()


def second(function, xs: list[torch.Tensor]) -> None:
    grads = torch.autograd.grad(total(function(*xs)), xs, create_graph=True)
    torch.autograd.grad(sum(g.sum() for g in grads), xs)


def third(function, xs: list[torch.Tensor]) -> None:
    grads = torch.autograd.grad(total(function(*xs)), xs, create_graph=True)
    hessian = torch.autograd.grad(sum(g.sum() for g in grads), xs, create_graph=True)
    torch.autograd.grad(sum(h.sum() for h in hessian), xs)


def has_third(function, xs: list[torch.Tensor]) -> bool:
    """Whether the op's third derivatives are not all zero (an op of degree 2
    has a constant Hessian: nothing to time)."""
    grads = torch.autograd.grad(total(function(*xs)), xs, create_graph=True)
    hessian = torch.autograd.grad(sum(g.sum() for g in grads), xs, create_graph=True)
    return any(h.requires_grad for h in hessian)


def forward_over_reverse(function, xs: list[torch.Tensor]) -> None:
    value = lambda *a: total(function(*a))  # noqa: E731
    gradient = lambda *a: torch.func.grad(lambda *b: torch.func.grad(value)(*b).sum())(*a)  # noqa: E731
    plain = tuple(x.detach() for x in xs)
    torch.func.jvp(gradient, plain, tuple(torch.ones_like(x) for x in plain))


def timed(run, function, xs: list[torch.Tensor]) -> float:
    if xs[0].is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(function, xs)
    if xs[0].is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def medians(candidates: dict, run, xs: list[torch.Tensor], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {key: [] for key in candidates}
    for function in candidates.values():
        run(function, xs)  # warm up
    for index in range(repeat):
        order = list(candidates.items())
        for key, function in order if index % 2 == 0 else order[::-1]:  # interleaved
            times[key].append(timed(run, function, xs))
    return {key: statistics.median(v) for key, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--ops", help="comma-separated subset of " + ",".join(o[0] for o in OPS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--baseline", type=Path, help="another adgen checkout: also time its op")
    args = parser.parse_args()
    wanted = set(args.ops.split(",")) if args.ops else {o[0] for o in OPS}
    torch.manual_seed(0)
    print(f"float32, {args.size} elements on {args.device}, median of {args.repeat}; torch {torch.__version__}")
    kinds = {"2nd": second, "3rd": third, "fwd3": forward_over_reverse}
    header = f"{'op':<17}" + "".join(f" {k:>6}" for k in kinds)
    if args.baseline:
        header += "   vs baseline:" + "".join(f" {k:>6}" for k in kinds)
    print("ratios to the eager composite" + (", then to the baseline's op" if args.baseline else ""))
    print(header)
    with tempfile.TemporaryDirectory() as root:
        for name, expression, params, composite in OPS:
            if name not in wanted:
                continue
            out = Path(root) / "this"
            emit(expression, name=name, out=out, params=params)
            candidates = {"composite": composite, "emitted": getattr(load(out / f"{name}.py"), name)}
            if args.baseline:
                out = Path(root) / "baseline"
                out.mkdir(exist_ok=True)
                emit_with(args.baseline, expression, name, out, params)
                candidates["baseline"] = getattr(load(out / f"{name}.py"), name)
            arity = composite.__code__.co_argcount
            # Positive inputs: heat_kernel's t is a time.
            xs = [(torch.rand(args.size, device=args.device) + 0.5).requires_grad_() for _ in range(arity)]
            line = f"{name:<17}"
            against_baseline = ""
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for run in kinds.values():
                    if run is third and not has_third(composite, xs):
                        line += f" {'-':>6}"
                        against_baseline += f" {'-':>6}"
                        continue
                    time_of = medians(candidates, run, xs, args.repeat)
                    line += f" {time_of['emitted'] / time_of['composite']:>6.2f}"
                    if args.baseline:
                        against_baseline += f" {time_of['emitted'] / time_of['baseline']:>6.2f}"
            print(line + (f"   {'':>12}" + against_baseline if args.baseline else ""), flush=True)


if __name__ == "__main__":
    main()
