"""Every name the parser accepts means what it says: the op emitted for
`name(x)` (or `name(x, y)`) has, at a few points, the value and gradient of
the function's textbook definition, written here in mpmath.

Nothing here goes through adgen's parser table, derivative rules or printer
to compute the expected numbers, so a name mapped to the wrong sympy function
(maximum -> Min), a printer that swaps sinh and cosh, or a wrong derivative
rule fails this test even when every other oracle agrees with itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mpmath
import pytest
import torch

from adgen.api import emit
from adgen.parse import CONSTANTS, FUNCTIONS
from tests.helpers import load_module

mpmath.mp.dps = 30
# The table checks meaning, not accuracy: any wrong function, argument order or
# derivative rule is off by far more than this. It admits torch's own float64
# error, the largest of which is trigamma (digamma's derivative) at 5e-10.
RTOL = 1e-8

Number = Callable[..., object]


@dataclass(frozen=True)
class Meaning:
    """An expression using one name, and its textbook value and gradient."""

    expression: str  # "hypot(x, y)"
    points: tuple[tuple[float, ...], ...]  # ((0.3, -1.2), ...): one value per input
    value: Number  # lambda x, y: sqrt(x**2 + y**2)
    gradient: Number  # lambda x, y: (x/hypot, y/hypot)


m = mpmath


def _sigmoid(x):
    return 1 / (1 + m.exp(-x))


def _step(x):
    return 1 if x > 0 else 0


def _sign(x):
    return (x > 0) - (x < 0)


def _extremum(expression: str, larger: bool) -> Meaning:
    """max(x, y) or min(x, y): the value of the chosen argument, gradient 1 for it."""

    def x_wins(x, y):
        return x > y if larger else x < y

    return Meaning(
        expression,
        PAIRS,
        lambda x, y: x if x_wins(x, y) else y,
        lambda x, y: (1, 0) if x_wins(x, y) else (0, 1),
    )


ANY = ((-1.7,), (-0.45,), (0.3,), (1.9,))
UNIT = ((-0.8,), (-0.35,), (0.2,), (0.7,))
POSITIVE = ((0.15,), (0.6,), (1.3,), (2.7,))
ABOVE_ONE = ((1.1,), (1.6,), (2.9,))
WITH_ZERO = ((-1.3,), (0.0,), (0.4,), (2.2,))  # kinks: the value PyTorch takes at 0
PAIRS = ((-1.2, 0.7), (0.4, -0.9), (1.5, 1.1), (0.25, 1.8))
POSITIVE_PAIRS = ((0.3, 0.7), (1.4, 0.5), (-0.8, 1.9), (2.2, 2.6))

MEANINGS: dict[str, Meaning] = {
    "sin": Meaning("sin(x)", ANY, m.sin, lambda x: (m.cos(x),)),
    "cos": Meaning("cos(x)", ANY, m.cos, lambda x: (-m.sin(x),)),
    "tan": Meaning("tan(x)", UNIT, m.tan, lambda x: (1 / m.cos(x) ** 2,)),
    "asin": Meaning("asin(x)", UNIT, m.asin, lambda x: (1 / m.sqrt(1 - x**2),)),
    "acos": Meaning("acos(x)", UNIT, m.acos, lambda x: (-1 / m.sqrt(1 - x**2),)),
    "atan": Meaning("atan(x)", ANY, m.atan, lambda x: (1 / (1 + x**2),)),
    "atan2": Meaning(
        "atan2(x, y)",  # the angle of the point (y, x): atan2(x, y) = atan(x/y) for y > 0
        PAIRS,
        m.atan2,
        lambda x, y: (y / (x**2 + y**2), -x / (x**2 + y**2)),
    ),
    "sinh": Meaning("sinh(x)", ANY, m.sinh, lambda x: (m.cosh(x),)),
    "cosh": Meaning("cosh(x)", ANY, m.cosh, lambda x: (m.sinh(x),)),
    "tanh": Meaning("tanh(x)", ANY, m.tanh, lambda x: (1 / m.cosh(x) ** 2,)),
    "asinh": Meaning("asinh(x)", ANY, m.asinh, lambda x: (1 / m.sqrt(x**2 + 1),)),
    "acosh": Meaning("acosh(x)", ABOVE_ONE, m.acosh, lambda x: (1 / m.sqrt(x**2 - 1),)),
    "atanh": Meaning("atanh(x)", UNIT, m.atanh, lambda x: (1 / (1 - x**2),)),
    "exp": Meaning("exp(x)", ANY, m.exp, lambda x: (m.exp(x),)),
    "log": Meaning("log(x)", POSITIVE, m.log, lambda x: (1 / x,)),
    "sqrt": Meaning("sqrt(x)", POSITIVE, m.sqrt, lambda x: (1 / (2 * m.sqrt(x)),)),
    "abs": Meaning("abs(x)", WITH_ZERO, abs, lambda x: (_sign(x),)),
    "Abs": Meaning("Abs(x)", WITH_ZERO, abs, lambda x: (_sign(x),)),
    "erf": Meaning("erf(x)", ANY, m.erf, lambda x: (2 / m.sqrt(m.pi) * m.exp(-(x**2)),)),
    "erfc": Meaning("erfc(x)", ANY, m.erfc, lambda x: (-2 / m.sqrt(m.pi) * m.exp(-(x**2)),)),
    "loggamma": Meaning("loggamma(x)", POSITIVE, m.loggamma, lambda x: (m.digamma(x),)),
    "lgamma": Meaning("lgamma(x)", POSITIVE, m.loggamma, lambda x: (m.digamma(x),)),
    "sigmoid": Meaning(
        "sigmoid(x)", ANY, _sigmoid, lambda x: (m.exp(-x) / (1 + m.exp(-x)) ** 2,)
    ),
    "softplus": Meaning(
        "softplus(x)", ANY, lambda x: m.log(1 + m.exp(x)), lambda x: (_sigmoid(x),)
    ),
    "relu": Meaning("relu(x)", WITH_ZERO, lambda x: max(x, 0), lambda x: (_step(x),)),
    "log1p": Meaning("log1p(x)", UNIT, lambda x: m.log(1 + x), lambda x: (1 / (1 + x),)),
    "expm1": Meaning("expm1(x)", ANY, lambda x: m.exp(x) - 1, lambda x: (m.exp(x),)),
    "logaddexp": Meaning(
        "logaddexp(x, y)",
        PAIRS,
        lambda x, y: m.log(m.exp(x) + m.exp(y)),
        lambda x, y: (m.exp(x) / (m.exp(x) + m.exp(y)), m.exp(y) / (m.exp(x) + m.exp(y))),
    ),
    "xlogy": Meaning(
        "xlogy(x, y)", POSITIVE_PAIRS, lambda x, y: x * m.log(y), lambda x, y: (m.log(y), x / y)
    ),
    "hypot": Meaning(
        "hypot(x, y)",
        PAIRS,
        lambda x, y: m.sqrt(x**2 + y**2),
        lambda x, y: (x / m.sqrt(x**2 + y**2), y / m.sqrt(x**2 + y**2)),
    ),
    "erfinv": Meaning(
        "erfinv(x)", UNIT, m.erfinv, lambda x: (m.sqrt(m.pi) / 2 * m.exp(m.erfinv(x) ** 2),)
    ),
    "digamma": Meaning("digamma(x)", POSITIVE, m.digamma, lambda x: (m.polygamma(1, x),)),
    "sign": Meaning("sign(x)", WITH_ZERO, _sign, lambda x: (0,)),
    "heaviside": Meaning("heaviside(x)", WITH_ZERO, _step, lambda x: (0,)),
    "Heaviside": Meaning("Heaviside(x)", WITH_ZERO, _step, lambda x: (0,)),
    "max": _extremum("max(x, y)", larger=True),
    "Max": _extremum("Max(x, y)", larger=True),
    "maximum": _extremum("maximum(x, y)", larger=True),
    "min": _extremum("min(x, y)", larger=False),
    "Min": _extremum("Min(x, y)", larger=False),
    "minimum": _extremum("minimum(x, y)", larger=False),
    # where(condition, if true, if false): distinct branches show which is which.
    "where": Meaning(
        "where(x > 0.5, x**2, 3*y)",
        ((-1.2, 0.7), (0.4, -0.9), (1.5, 1.1), (0.9, 1.8)),
        lambda x, y: x**2 if x > 0.5 else 3 * y,
        lambda x, y: (2 * x, 0) if x > 0.5 else (0, 3),
    ),
    # Constants (uncalled names with a value).
    "pi": Meaning("x*pi", ANY, lambda x: x * m.pi, lambda x: (m.pi,)),
    "e": Meaning("x*e", ANY, lambda x: x * m.e, lambda x: (m.e,)),
    "E": Meaning("x*E", ANY, lambda x: x * m.e, lambda x: (m.e,)),
}


def test_every_parser_name_has_a_meaning_here() -> None:
    assert set(MEANINGS) == set(FUNCTIONS) | set(CONSTANTS)


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("names")


def _op(folder: Path, name: str, meaning: Meaning):
    """The emitted op for the name's expression (its own module)."""
    op_name = f"name_{name.lower()}_{'upper' if name != name.lower() else 'lower'}"
    emit(meaning.expression, name=op_name, out=folder)
    return getattr(load_module(folder / f"{op_name}.py"), op_name)


@pytest.mark.parametrize("name", sorted(MEANINGS))
def test_name_means_its_textbook_function(ops: Path, name: str) -> None:
    meaning = MEANINGS[name]
    op = _op(ops, name, meaning)
    for point in meaning.points:
        inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
        output = op(*inputs)
        gradient = torch.autograd.grad(output, inputs, allow_unused=True)
        got = [float(output.detach())] + [0.0 if g is None else float(g) for g in gradient]
        exact = [mpmath.mpf(v) for v in point]
        expected = [float(meaning.value(*exact))] + [float(g) for g in meaning.gradient(*exact)]
        assert len(got) == len(expected)
        for index, (a, b) in enumerate(zip(got, expected)):
            assert abs(a - b) <= RTOL * abs(b), (
                f"{meaning.expression} at {point}: result {index} (0: value, then "
                f"the gradient) is {a!r}, the definition gives {b!r}"
            )


def test_anchor_definitions_cover_every_name() -> None:
    """The generated tests' anchor values read the user's text with their own
    table of definitions (adgen/anchors.py), apart from the registry: it must
    know every name the parser accepts."""
    from adgen.anchors import _DEFINITIONS
    from adgen.parse import CONSTANTS, FUNCTIONS

    assert set(FUNCTIONS) - {"where"} == set(_DEFINITIONS)
    from adgen.anchors import _CONSTANTS

    assert set(CONSTANTS) == set(_CONSTANTS)
