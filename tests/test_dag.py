"""Partial derivatives on the expression DAG (adgen/dag.py), the tables' path
where differentiating trees would swell: the same functions as sympy's
derivatives, in a program that grows with the expression, not its expansion."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import sympy

from adgen import dag
from adgen.derive import build_model
from adgen.functions import elementary
from adgen.measure import Sample, rounded_values
from adgen.parse import FUNCTIONS, parse_expression
from adgen.stable import stabilize

from .helpers import emit, run_pytest

X, Y = sympy.Symbol("x", real=True), sympy.Symbol("y", real=True)
POINT = {X: sympy.Rational(6137, 10000), Y: sympy.Rational(3791, 10000)}


def _program(expr: sympy.Expr, inputs=(X, Y), orders=(1, 2, 3)) -> dag.DagDerivatives | None:
    names = (sympy.Symbol(f"d{k}", real=True) for k in itertools.count())
    return dag.derivatives((expr,), inputs, orders, names)


def _numeric(expr: sympy.Expr, values: dict) -> sympy.Expr:
    return elementary(expr.xreplace(values)).evalf(40)


def _finite(value: sympy.Expr) -> bool:
    return value.is_real is True and value.is_finite is True


def _check_against_sympy(expr: sympy.Expr, inputs=(X, Y)) -> None:
    """Every entry of orders 1 to 3, zeros included, equals sympy's derivative."""
    program = _program(expr, inputs)
    assert program is not None, expr
    values = dict(POINT)
    for symbol, value in program.statements:
        values[symbol] = _numeric(value, values)
    for order in (1, 2, 3):
        for index in itertools.combinations_with_replacement(range(len(inputs)), order):
            expected = _numeric(sympy.diff(elementary(expr), *[inputs[i] for i in index]), POINT)
            expected = expected.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
            got = _numeric(program.entries.get((0, index), sympy.S.Zero), values)
            assert abs(got - expected) <= 1e-30 * max(1, abs(expected)), (expr, index, got, expected)


def _argument_shift(name: str, arity: int) -> sympy.Expr | None:
    """`name` applied to arguments that vary with x and y, inside its domain at POINT."""
    # Exact constants: a float constant would be rounded differently by the
    # two evaluations below, at one part in 1e20.
    for shift in ("9/20", "17/10", "-9/20", "16/5"):
        arguments = [f"{shift} + x*y/8", "y - x/3 + 9/10"][:arity]
        expr = stabilize(parse_expression(f"{name}({', '.join(arguments)})*(x - y/2)").expr)
        plain = elementary(expr)
        values = [_numeric(plain, POINT)]
        values += [_numeric(sympy.diff(plain, *v), POINT) for v in ([X], [X, Y], [X, X, Y])]
        if all(_finite(v) for v in values):
            return expr
    return None


@pytest.mark.parametrize("name", sorted(n for n, (_, arity) in FUNCTIONS.items() if arity < 3))
def test_every_function_is_differentiated_as_sympy_does(name: str) -> None:
    expr = _argument_shift(name, FUNCTIONS[name][1])
    assert expr is not None, f"no point inside the domain of {name}"
    _check_against_sympy(expr)


@pytest.mark.parametrize(
    "text",
    [
        "x*exp(-x**2/2)*cos(y)",
        "x**y + sqrt(x*x + y*y)/y",  # a power of two inputs; a quotient
        "(x - 1)*(x - 2)*(x - y)*(y + 3)*x*y",  # products of many factors, taken in pairs
        "log(1 + exp(x*y))*tanh(softplus(x)) - 1/(x*y)**3",
        "atan2(y, x)*erf(x*y) + xlogy(x, y)",
    ],
)
def test_compositions_are_differentiated_as_sympy_does(text: str) -> None:
    _check_against_sympy(stabilize(parse_expression(text).expr))


def test_a_node_without_a_derivative_rule_here_gives_none() -> None:
    """where() and its guarded branches stay with the trees."""
    expr = stabilize(parse_expression("where(x < y, x*y, x - y)").expr)
    assert _program(expr) is None


def _product(factors: int) -> str:
    return "*".join(f"(x - {k}.0)" for k in range(1, factors + 1))


def _higher_order_operations(text: str) -> int:
    """Operations of the table helper's second- and third-order stages."""
    tables = build_model(parse_expression(text), "op").partials
    program = [v for stage in tables.stages[1:] for _, v in stage]
    program += [o for e, o in zip(tables.entries, tables.outputs) if e.order > 1]
    return sum(sympy.count_ops(v) for v in program)


def test_a_product_that_swells_gets_a_program_that_grows_linearly() -> None:
    """The third derivative of a product of n factors has n(n-1)(n-2) terms as
    a tree; on the DAG each factor adds a few statements per order."""
    ten, twenty = _higher_order_operations(_product(10)), _higher_order_operations(_product(20))
    assert twenty <= 2.5 * ten, (ten, twenty)
    assert twenty < 400  # the expanded tree has thousands of terms


def test_formulas_that_do_not_swell_stay_trees(monkeypatch) -> None:
    """The selection stage chooses forms of entries only where they are trees."""
    calls = []
    original = dag.derivatives
    monkeypatch.setattr(dag, "derivatives", lambda *args: calls.append(args) or original(*args))
    build_model(parse_expression("x*tanh(softplus(x))*cos(y)"), "op")
    assert calls == []
    build_model(parse_expression(_product(12)), "op")
    assert len(calls) == 1


def test_an_op_whose_derivatives_swell_passes_its_generated_tests(tmp_path: Path) -> None:
    assert emit(tmp_path, _product(16), "--name", "product16", "--domain", "x=1:16") == 0
    source = (tmp_path / "product16.py").read_text()
    assert source.count("\n") < 600  # the expanded third derivative alone would be longer
    result = run_pytest(str(tmp_path / "test_product16.py"), "-x")
    assert result.returncode == 0, result.stdout[-3000:]


def test_local_derivatives_take_the_stable_forms() -> None:
    """tanh'' written from tanh' = 1 - tanh(x)**2 is 0 in float64 from x = 19 on
    (tanh(x) rounds to 1); from the stable form 4*sigmoid(2x)*sigmoid(-2x) it
    keeps its value, as the trees' entries do."""
    program = _program(sympy.tanh(X), inputs=(X,), orders=(2, 3))
    assert program is not None
    for index in ((0, 0), (0, 0, 0)):
        formula = program.entries[(0, index)]
        for symbol, value in reversed(program.statements):  # back to a formula of x
            formula = formula.xreplace({symbol: value})
        sample = Sample(("x",), ((20.0,),), ())
        (value,) = rounded_values(formula, sample, "float64", {})
        exact = float(sympy.diff(sympy.tanh(X), X, len(index)).subs(X, 20).evalf(40))
        assert abs(value - exact) <= 1e-12 * abs(exact), (index, value, exact)
