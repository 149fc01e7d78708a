"""The buffer-reusing kernels do the arithmetic of the printed formula.

Selection measures each formula's error operation by operation in the order the
printer writes it (measure.py). The kernels of Function.forward are lowered to
in-place chains instead (inplace.py); reusing a buffer may not change a single
rounding. So each kernel the renderer lowers in place (every Function.forward
of every corpus op, recorded while the op is emitted) is run both ways on
float32 inputs of broadcasting shapes, and the results must agree bit for bit
(NaN with NaN, whatever its payload): float32 shows a reordered sum or product
in most elements, float64 in few.
"""

from __future__ import annotations

import importlib
import math
import types

import pytest
import sympy
import torch

from adgen.derive import Kernel
from adgen.functions import sigmoid, softplus
from tests.corpus import CORPUS
from tests.helpers import emit

# The module (adgen.render is also the name of api.render, which adgen exports).
render = importlib.import_module("adgen.render")

# Broadcasting: (64, 1) with (48,) is (64, 48); every pair of these broadcasts.
_SHAPES = [(64, 1), (48,), (64, 48), (1, 48)]
_PARAM_VALUE = 0.7305869  # not a float32 number: Python's double arithmetic shows


def _inputs(
    kernel: Kernel, params: frozenset[str], seed: int, dtype: torch.dtype
) -> dict[str, object]:
    """Values for the kernel's arguments: parameters as Python floats, table
    entries (`df.xy`) as attributes of `df`, tensors of `dtype` and the shapes
    above, half of each in (0.05, 2) (inside log's, sqrt's and asin's domains),
    half normal with spread 3 (large, negative, tails of exp)."""
    generator = torch.Generator().manual_seed(seed)
    values: dict[str, object] = {}
    table: dict[str, torch.Tensor] = {}
    tensors = [a for a in kernel.arguments if a not in params]
    for index, name in enumerate(tensors):
        shape = _SHAPES[index % len(_SHAPES)]
        small = torch.rand(shape, generator=generator) * 1.95 + 0.05
        wide = torch.randn(shape, generator=generator) * 3.0
        pick = torch.rand(shape, generator=generator) < 0.5
        value = torch.where(pick, small, wide).to(dtype)
        if "." in name:
            table[name.partition(".")[2]] = value
        else:
            values[name] = value
    values.update({p: _PARAM_VALUE for p in kernel.arguments if p in params})
    if table:
        values["df"] = types.SimpleNamespace(**table)
    return values


def _run(statements, outputs, arguments: dict[str, object]) -> list[torch.Tensor | None]:
    namespace: dict[str, object] = {"torch": torch, "math": math, **arguments}
    for statement in statements:
        exec(statement, namespace)  # noqa: S102 - generated kernel source
    return [None if code is None else eval(code, namespace) for code in outputs]  # noqa: S307


def _same_bits(a: object, b: object) -> bool:
    """Equal bit for bit (a NaN equals any NaN; -0.0 is not 0.0)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return isinstance(a, float) and isinstance(b, float) and (a == b or a != a and b != b)
    a, b = torch.broadcast_tensors(a, b)  # a bare argument may come back unbroadcast
    if a.dtype != b.dtype:
        return False
    bits = torch.int32 if a.dtype == torch.float32 else torch.int64
    same = a.contiguous().view(bits) == b.contiguous().view(bits)
    return bool((same | (a.isnan() & b.isnan())).all())


def check_same_arithmetic(
    kernel: Kernel, params: frozenset[str], label: str, dtype: torch.dtype = torch.float32
) -> None:
    """The in-place kernel gives the out-of-place one's bits, and writes to no argument."""
    in_place = render.print_in_place(kernel, params)
    printed = render._print_kernel(kernel, params)
    for seed in range(2):
        arguments = _inputs(kernel, params, seed, dtype)
        copies = {n: v.clone() if isinstance(v, torch.Tensor) else v for n, v in arguments.items()}
        got = _run(in_place.statements, in_place.outputs, copies)
        expected = _run(printed.statements, printed.outputs, arguments)
        source = "\n".join([*in_place.statements, *map(str, in_place.outputs)])
        for index, (a, b) in enumerate(zip(got, expected)):
            assert (a is None) == (b is None), f"{label}: output {index}"
            same = a is None or _same_bits(a, b)
            assert same, (
                f"{label}: output {index} differs from {printed.outputs[index]!r}"
                f" (statements {printed.statements}); in place:\n{source}"
            )
        for name, value in arguments.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, copies[name]), f"{label}: wrote to {name}"


@pytest.mark.parametrize(("name", "expression", "options"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_forward_kernels_do_the_printed_arithmetic(
    name, expression, options, monkeypatch, tmp_path
) -> None:
    """Every kernel render lowers in place while emitting the op (the op's
    forward, each Function's forward, the blocks of several outputs)."""
    recorded: list[tuple[Kernel, frozenset[str]]] = []
    lower = render.print_in_place

    def recording(kernel: Kernel, params: frozenset[str]):
        recorded.append((kernel, params))
        return lower(kernel, params)

    monkeypatch.setattr(render, "print_in_place", recording)
    monkeypatch.setenv("ADGEN_CACHE", "0")  # a cached module would record nothing
    assert emit(tmp_path, expression, "--name", name, *options) == 0
    assert recorded, f"{name}: no kernel was lowered in place"
    monkeypatch.setattr(render, "print_in_place", lower)
    for index, (kernel, params) in enumerate(recorded):
        check_same_arithmetic(kernel, params, f"{name} kernel {index}")


# -- orders the corpus may not show ----------------------------------------------

x, y, z, t0, t1, alpha, beta = sympy.symbols("x y z t0 t1 alpha beta", real=True)
_PARAMS = frozenset({"alpha", "beta"})
_U = sympy.UnevaluatedExpr

_CASES = {
    # a coefficient is an operand like any other: ((c*x)*y)*z, not c*(x*y*z)
    "coefficient first": ([], [sympy.Float(0.044715) * x * y * z]),
    "coefficient of a sum's term": ([], [x + sympy.Float(0.3) * y * z + sympy.sin(x)]),
    "negative coefficient": ([], [-sympy.Float(2.5) * x * y + z]),
    "minus a product": ([], [z - x * y * sympy.exp(x)]),
    # a - b as (-b) + a, the term's buffer taking a
    "minus a wider product": ([], [x - 2 * x * y]),
    "minus a product of functions": ([], [x - sympy.sin(x) * sympy.cos(x)]),
    "negative first term": ([], [-x * y + sympy.exp(z)]),
    "two negative terms": ([], [-x * y - sympy.exp(z) * x]),
    # constants and parameters are added where they stand, not summed first
    "constants in a sum": ([], [x + alpha + 1 + sympy.sin(y)]),
    "parameter products": ([], [2 * alpha * beta * x * y]),
    "parameter after a tensor": ([], [x * y * sympy.exp(alpha)]),
    # a denominator is a product of its own, divided by once
    "quotient": ([], [x * y / (z * sympy.exp(x))]),
    "quotient by a power": ([], [x / y**2 + sympy.sqrt(sympy.Abs(z)) / x]),
    "quotient by a root": ([], [x * y / sympy.sqrt(sympy.Abs(z) + 1)]),
    "number over a tensor": ([], [3 / (x * y) + x]),
    "parameter over a tensor": ([], [alpha / x - 1]),
    "minus one over": ([], [-1 / (x + y)]),
    "over a parameter": ([], [x * y / alpha]),
    # the printer writes an irrational coefficient (3*pi) as one literal
    # (as a double, 11*pi is not 11.0*3.141592653589793)
    "irrational coefficient": ([], [11 * sympy.pi * x * y - sympy.pi / x]),
    "irrational and a parameter": ([], [-sympy.pi * sympy.sin(x) * alpha * y]),
    "functions of chains": ([], [sigmoid(x * y * sympy.Float(0.7) + z) * softplus(2 * x)]),
    # dead temporaries taken over in the middle of a fold
    "temporaries": (
        [("t0", sympy.exp(x) * y), ("t1", x * t0 + 3)],
        [t1 * t0 * z + x, sympy.cos(t1) * 2 + t1],
    ),
    "live temporary": ([("t0", sympy.sin(x * y))], [alpha * t0 * z - t0, t0]),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(_CASES))
def test_hand_written_kernels_do_the_printed_arithmetic(case: str, dtype: torch.dtype) -> None:
    """float64 too: a constant rounded differently in Python's doubles shows there."""
    temporaries, outputs = _CASES[case]
    kernel = Kernel(
        arguments=("x", "y", "z", "alpha", "beta"),
        temporaries=tuple(temporaries),
        outputs=tuple(outputs),
    )
    check_same_arithmetic(kernel, _PARAMS, case, dtype)
