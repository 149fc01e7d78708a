"""Reduced precision: the catalogue's ops with a native PyTorch twin, in bfloat16
and float16, against that twin.

For each op and dtype: 100k points x ~ 4·N(0, 1) rounded to the dtype; the truth
is float64 autograd of the native op at those same rounded inputs. Printed: the
max relative error |err| / (|truth| + 1e-3) of the value and of the gradient
(grad_output = 1), for the op as emitted now and for the native op, and the
ratio emitted / native (tests/test_precision.py holds it to <= 1.5).

    python benchmarks/precision.py [--points 100000] [--dtypes bfloat16,float16,float32]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adgen.api import load  # noqa: E402
from adgen.spec import find_config, load_project  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FLOOR = 1e-3  # relative error floor: |err| / (|truth| + FLOOR)
BOUND = 1.5  # emitted may be at most this many times native's max error


@dataclass(frozen=True)
class Twin:
    name: str  # "celu": a catalogue op of pyproject.toml, or an expression below
    native: Callable[[torch.Tensor], torch.Tensor]  # the same function, PyTorch's own op


# Every catalogue op with a native twin, at the catalogue's default parameters,
# plus tanh and sigmoid (vocabulary functions, not catalogue ops).
TWINS = (
    Twin("silu", F.silu),
    Twin("swish", F.silu),  # beta = 1
    Twin("mish", F.mish),
    Twin("gelu", F.gelu),
    Twin("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    Twin("softplus", F.softplus),  # beta = 1
    Twin("elu", F.elu),  # alpha = 1
    Twin("selu", F.selu),
    Twin("celu", F.celu),  # alpha = 1
    Twin("logsigmoid", F.logsigmoid),
    Twin("softsign", F.softsign),
    Twin("sin", torch.sin),
    Twin("tanh", torch.tanh),
    Twin("sigmoid", torch.sigmoid),
)
EXTRA_EXPRESSIONS = {"tanh": "tanh(x)", "sigmoid": "sigmoid(x)"}


def emitted_ops() -> dict[str, Callable[..., torch.Tensor]]:
    """Each twin's op, rendered by the adgen of this checkout (not the committed files)."""
    entries = {op.name: op for op in load_project(find_config(REPO)).ops}
    ops = {}
    for twin in TWINS:
        if twin.name in entries:
            entry = entries[twin.name]
            ops[twin.name] = load(entry.expr, name=twin.name, params=dict(entry.params))
        else:
            ops[twin.name] = load(EXTRA_EXPRESSIONS[twin.name], name=twin.name)
    return ops


def sample(dtype: torch.dtype, points: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (4 * torch.randn(points, generator=generator, dtype=torch.float64)).to(dtype)


def value_and_gradient(function, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    y = function(x)
    (gradient,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), gradient


def max_relative_error(got: torch.Tensor, truth: torch.Tensor) -> float:
    error = (got.double() - truth).abs() / (truth.abs() + FLOOR)
    return float(error.max())


def measure(ops, dtypes, points: int, twins: tuple[Twin, ...] = TWINS) -> list[dict[str, object]]:
    """One row per twin and dtype: max relative errors of value and gradient."""
    rows = []
    for twin in twins:
        for dtype in dtypes:
            x = sample(dtype, points)
            truth = value_and_gradient(twin.native, x.double())
            row = {"op": twin.name, "dtype": str(dtype).removeprefix("torch.")}
            for label, function in (("emitted", ops[twin.name]), ("native", twin.native)):
                value, gradient = value_and_gradient(function, x)
                if value.dtype != dtype or gradient.dtype != dtype:
                    raise AssertionError(f"{label} {twin.name}: {value.dtype}/{gradient.dtype}, not {dtype}")
                row[f"{label}_value"] = max_relative_error(value, truth[0])
                row[f"{label}_grad"] = max_relative_error(gradient, truth[1])
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dtypes", default="bfloat16,float16")
    args = parser.parse_args()
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    rows = measure(emitted_ops(), dtypes, args.points)
    print(f"max |err|/(|truth| + {FLOOR}) over {args.points} points x ~ 4·N(0,1); torch {torch.__version__}")
    print(f"{'op':<12}{'dtype':<10}{'emitted value / grad':>24}{'native value / grad':>24}{'ratio value / grad':>22}")
    for r in rows:
        ratio_value = r["emitted_value"] / r["native_value"]
        ratio_grad = r["emitted_grad"] / r["native_grad"]
        print(
            f"{r['op']:<12}{r['dtype']:<10}"
            f"{r['emitted_value']:>11.2g} / {r['emitted_grad']:<10.2g}"
            f"{r['native_value']:>11.2g} / {r['native_grad']:<10.2g}"
            f"{ratio_value:>10.2f} / {ratio_grad:<8.2f}"
        )


if __name__ == "__main__":
    main()
