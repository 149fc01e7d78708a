"""Stable rewriting: naive spellings become the stable vocabulary, and derivative
formulas avoid cancellation; where() branches are guarded."""

from __future__ import annotations

import pytest
import sympy

from adgen.functions import erfc, expm1, guarded, log1p, logaddexp, sigmoid, softplus
from adgen.parse import parse_expression
from adgen.stable import guard_branches, stabilize

x, y = sympy.symbols("x y", real=True)

REWRITES = [
    ("log(1 + exp(x))", softplus(x)),
    ("1/(1 + exp(-x))", sigmoid(x)),
    ("x/(1 + exp(-x))", x * sigmoid(x)),
    ("exp(x)/(1 + exp(x))", sigmoid(x)),
    ("exp(x) - 1", expm1(x)),
    ("exp(2*x) - 1 + y", y + expm1(2 * x)),
    ("log(1 + x)", log1p(x)),
    ("log(exp(x) + exp(y))", logaddexp(x, y)),
    ("log(sigmoid(x))", -softplus(-x)),
    ("log(1/(1 + exp(-x)))", -softplus(-x)),
    ("1 + erf(x)", erfc(-x)),
    ("1 - erf(x)", erfc(x)),
    ("1 + tanh(x)", 2 * sigmoid(2 * x)),
    ("1 - tanh(x)**2", 4 * sigmoid(2 * x) * sigmoid(-2 * x)),
    ("(exp(2*x) - 1)/(exp(2*x) + 1)", sympy.tanh(x)),
    ("log(cosh(x))", x + softplus(-2 * x) - sympy.log(2)),
    ("x*tanh(log(1 + exp(x)))", x * sympy.tanh(softplus(x))),
    ("sin(x) + x**2", sympy.sin(x) + x**2),  # nothing to do
]


@pytest.mark.parametrize("text, expected", REWRITES)
def test_naive_spellings_become_stable(text: str, expected: sympy.Expr) -> None:
    assert stabilize(parse_expression(text).expr) == expected


def test_derivatives_are_written_stably() -> None:
    from adgen.derive import _derivative

    assert _derivative(sympy.tanh(x), x) == 4 * sigmoid(2 * x) * sigmoid(-2 * x)
    assert _derivative(sigmoid(x), x) == sigmoid(x) * sigmoid(-x)
    assert _derivative(softplus(x), x) == sigmoid(x)
    # sigmoid'' = sigmoid*sigmoid(-x)*(sigmoid(-x) - sigmoid(x)) cancels near 0:
    second = _derivative(_derivative(sigmoid(x), x), x)
    assert second == -sympy.tanh(x / 2) * sigmoid(x) * sigmoid(-x)


def test_guard_evaluates_each_branch_where_it_is_defined() -> None:
    expr = parse_expression("where(x > 0, sqrt(x), log(-x + 1))").expr
    guarded_expr = guard_branches(expr)
    (taken, condition), (otherwise, _) = guarded_expr.args
    assert taken == sympy.sqrt(guarded(x, 1, x > 0))
    assert otherwise.has(guarded(x, -1, x <= 0))
    assert condition == (x > 0)


def test_guard_leaves_conditions_it_cannot_solve() -> None:
    expr = parse_expression("where(x > y, sqrt(x - y), 0)").expr
    assert guard_branches(expr) == expr
