"""Accuracy of emitted activations against a high-precision reference.

For each op, dtype and point, the value and first and second derivatives of:
the emitted op (from its vocabulary spelling and from the naive textbook
spelling), PyTorch's native op, and autograd through the naive composite, each
compared with mpmath at 300 digits through sympy on the exact input.

    python benchmarks/accuracy.py          # prints the worst relative error per op
"""

from __future__ import annotations

import importlib.util
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sympy
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adgen.api import emit  # noqa: E402
from adgen.functions import elementary  # noqa: E402
from adgen.parse import parse_expression  # noqa: E402
from adgen.printer import torch_code  # noqa: E402

# Tails where naive formulas overflow or cancel, the neighbourhood of 0, and
# mid-range points where every formula is at its ordinary accuracy.
POINTS = (
    -100.0, -80.0, -30.0, -10.0, -3.5, -0.75, -1e-6, 0.0,
    1e-6, 0.75, 3.5, 10.0, 30.0, 80.0, 100.0,
)  # fmt: skip
DTYPES = (torch.float32, torch.float64)
REFERENCE_FLOOR = 1e-250


@dataclass(frozen=True)
class Activation:
    name: str  # "mish"
    spelling: str  # "x*tanh(softplus(x))": with the stable vocabulary
    naive: str  # "x*tanh(log(1 + exp(x)))": the textbook formula
    native: object  # torch.nn.functional.mish


ACTIVATIONS = (
    Activation("sigmoid", "sigmoid(x)", "1/(1 + exp(-x))", torch.sigmoid),
    Activation("softplus", "softplus(x)", "log(1 + exp(x))", F.softplus),
    Activation("silu", "x*sigmoid(x)", "x/(1 + exp(-x))", F.silu),
    Activation("mish", "x*tanh(softplus(x))", "x*tanh(log(1 + exp(x)))", F.mish),
    Activation("gelu", "x*erfc(-x/sqrt(2))/2", "0.5*x*(1 + erf(x/sqrt(2)))", F.gelu),
    Activation(
        "gelu_tanh",
        "x*sigmoid(2*sqrt(2/pi)*(x + 0.044715*x**3))",
        "0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))",
        lambda x: F.gelu(x, approximate="tanh"),
    ),
    Activation("logsigmoid", "-softplus(-x)", "log(1/(1 + exp(-x)))", F.logsigmoid),
    Activation("elu", "where(x > 0, x, expm1(x))", "where(x > 0, x, exp(x) - 1)", F.elu),
    Activation("tanh", "tanh(x)", "(exp(2*x) - 1)/(exp(2*x) + 1)", torch.tanh),
)


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"accuracy_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emitted_ops(folder: Path) -> dict[str, object]:
    """Emit every activation in both spellings into `folder`; return the functions."""
    ops = {}
    for act in ACTIVATIONS:
        for suffix, text in (("", act.spelling), ("_naive", act.naive)):
            name = f"{act.name}{suffix}"
            emit(text, name=name, out=folder, domains={"x": (-2.0, 2.0)})
            ops[name] = getattr(_load(folder / f"{name}.py"), name)
    return ops


def composite(act: Activation):
    """The naive formula in plain torch ops, differentiated by autograd."""
    code = torch_code(parse_expression(act.naive).expr)
    namespace = {"torch": torch, "math": math}
    return lambda x: eval(code, namespace, {"x": x})  # noqa: S307 (our printer's output)


def derivatives(function, x: torch.Tensor) -> list[float]:
    """Value, first and second derivative at the scalar x."""
    x = x.clone().requires_grad_()
    y = function(x)
    (first,) = torch.autograd.grad(y, x, create_graph=True)
    if first.requires_grad:
        (second,) = torch.autograd.grad(first, x)
    else:
        second = torch.zeros_like(first)
    return [float(v.detach()) for v in (y, first, second)]


def reference(act: Activation, point: float) -> list[float]:
    """mpmath at 300 digits through sympy, on the exact input."""
    x = sympy.Symbol("x", real=True)
    expr = elementary(parse_expression(act.naive).expr).rewrite(sympy.Piecewise)
    exact = sympy.Rational(point)
    values = []
    for order in range(3):
        formula = sympy.diff(expr, x, order) if order else expr
        formula = formula.replace(sympy.DiracDelta, lambda *a: 0)
        value = float(sympy.N(formula.subs(x, exact), 300))
        # At 300 digits a cancellation such as 1 + erf(-70) leaves noise near
        # 1e-300: anything that small is 0 to a float64 anyway.
        values.append(0.0 if abs(value) < REFERENCE_FLOOR else value)
    return values


def relative_error(got: float, expected: float, dtype: torch.dtype) -> float:
    """|got - expected| relative to |expected|, or to the smallest normal number
    where the true value is below it (it cannot be represented better)."""
    if not math.isfinite(got):
        return math.inf
    tiny = torch.finfo(dtype).tiny
    return abs(got - expected) / max(abs(expected), tiny)


def measure(ops: dict[str, object]) -> list[dict[str, object]]:
    """One row per activation, dtype, point and derivative order."""
    rows = []
    for act in ACTIVATIONS:
        candidates = {
            "emitted": ops[act.name],
            "emitted_naive": ops[f"{act.name}_naive"],
            "native": act.native,
            "composite": composite(act),
        }
        for point in POINTS:
            for dtype in DTYPES:
                x = torch.tensor(point, dtype=dtype)
                truth = reference(act, float(x))
                results = {key: derivatives(f, x) for key, f in candidates.items()}
                for order in range(3):
                    rows.append(
                        {
                            "op": act.name,
                            "dtype": str(dtype).removeprefix("torch."),
                            "x": point,
                            "order": order,
                            "truth": truth[order],
                            **{
                                key: relative_error(values[order], truth[order], dtype)
                                for key, values in results.items()
                            },
                        }
                    )
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        rows = measure(emitted_ops(Path(folder)))
    keys = ("emitted", "emitted_naive", "native", "composite")
    print("worst relative error over x in", POINTS, "and orders 0, 1, 2")
    print(f"{'op':<12}{'dtype':<9}" + "".join(f"{k:>15}" for k in keys))
    for act in ACTIVATIONS:
        for dtype in ("float32", "float64"):
            selected = [r for r in rows if r["op"] == act.name and r["dtype"] == dtype]
            worst = {k: max(r[k] for r in selected) for k in keys}
            print(f"{act.name:<12}{dtype:<9}" + "".join(f"{worst[k]:>15.2e}" for k in keys))


if __name__ == "__main__":
    main()
