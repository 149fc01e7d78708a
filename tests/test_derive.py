"""derive: gradient and Hessian against sympy.diff, kernels that expand back to
the formulas they stand for, and the naming rules."""

from __future__ import annotations

import pytest
import sympy

from adgen.derive import Kernel, Param, build_model, camel_case
from adgen.errors import InputError
from adgen.parse import parse_expression


def expand(kernel: Kernel) -> list[sympy.Expr]:
    """Kernel outputs with the CSE temporaries substituted back."""
    outputs = list(kernel.outputs)
    for name, value in reversed(kernel.temporaries):
        symbol = sympy.Symbol(name, real=True)
        outputs = [o.subs(symbol, value) for o in outputs]
    return outputs


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    return sympy.simplify(a - b) == 0


EXPRESSIONS = ["sin(x)", "x*exp(-alpha*x**2)*cos(y)", "atan2(y, x)*z", "log(1 + x**2)/y", "abs(x)*x"]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_gradient_and_hessian_match_sympy(text: str) -> None:
    parsed = parse_expression(text)
    params = (Param("alpha", 0.5),) if "alpha" in parsed.names else ()
    model = build_model(parsed, "op", params=params)
    symbols = [sympy.Symbol(n, real=True) for n in model.inputs]
    f = parsed.expr
    for i, xi in enumerate(symbols):
        expected = sympy.diff(f, xi).replace(sympy.DiracDelta, lambda *a: 0)
        assert same(model.gradient[i], expected)
        for j, xj in enumerate(symbols):
            expected2 = sympy.diff(f, xi, xj).replace(sympy.DiracDelta, lambda *a: 0)
            assert same(model.hessian[i][j], expected2)


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_kernels_compute_their_formulas(text: str) -> None:
    parsed = parse_expression(text)
    params = (Param("alpha", None),) if "alpha" in parsed.names else ()
    model = build_model(parsed, "op", params=params)
    grad = sympy.Symbol("grad", real=True)
    gg = [sympy.Symbol(f"grad_grad_{n}", real=True) for n in model.inputs]
    (value,) = expand(model.forward)
    assert same(value, parsed.expr)
    for got, derivative in zip(expand(model.backward), model.gradient):
        assert same(got, grad * derivative)
    d_grad, *d_inputs = expand(model.double_backward)
    assert same(d_grad, sum(g * d for g, d in zip(gg, model.gradient)))
    for j, got in enumerate(d_inputs):
        row = sum(gg[i] * model.hessian[i][j] for i in range(len(gg)))
        assert same(got, grad * row)


def test_cse_shares_work() -> None:
    model = build_model(parse_expression("exp(sin(x))*exp(sin(x))**2 + sin(x)"), "op")
    assert model.backward.temporaries, "repeated subexpressions should become temporaries"


def test_abs_second_derivative_is_zero_almost_everywhere() -> None:
    model = build_model(parse_expression("abs(x)"), "op")
    assert model.hessian == ((0,),)


def test_temporaries_avoid_user_names() -> None:
    model = build_model(parse_expression("t0*sin(t1) + sin(t1)**2*t0"), "op")
    names = {n for n, _ in model.backward.temporaries} | {n for n, _ in model.double_backward.temporaries}
    assert not names & {"t0", "t1"}


@pytest.mark.parametrize("name, camel", [("sin", "Sin"), ("h_sin", "HSin"), ("wave", "Wave"), ("gelu_tanh2", "GeluTanh2")])
def test_camel_case(name: str, camel: str) -> None:
    assert camel_case(name) == camel


def test_explicit_inputs_order_and_unused_input() -> None:
    model = build_model(parse_expression("sin(x)"), "op", inputs=("y", "x"))
    assert model.inputs == ("y", "x")
    assert model.gradient[0] == 0


@pytest.mark.parametrize(
    "text, inputs, params, message",
    [
        ("x*alpha", ("x", "alpha"), (Param("alpha", 1.0),), "both as an input and as a --param"),
        ("x*y", ("x",), (), "neither in --inputs"),
        ("x*y", ("x", "x", "y"), (), "twice"),
        ("alpha*2", None, (Param("alpha", 1.0),), "no tensor inputs"),
        ("x*alpha", None, (Param("alpha", 1.0), Param("alpha", 2.0)), "given twice"),
        ("torch*x", None, (), "used by the generated code"),
        ("grad*x", None, (), "used by the generated code"),
        ("ctx + x", None, (), "used by the generated code"),
        ("Op*x", None, (), "used by the generated code"),
        ("grad_x*x", None, (), "used by the generated code"),
    ],
)
def test_bad_inputs_and_params(text, inputs, params, message) -> None:
    with pytest.raises(InputError, match=message):
        build_model(parse_expression(text), "op", inputs=inputs, params=params)


@pytest.mark.parametrize("name", ["Sin", "1op", "my-op", "class", "test_op", "torch", "x y", ""])
def test_bad_names(name: str) -> None:
    with pytest.raises(InputError):
        build_model(parse_expression("sin(x)"), name)
