"""derive: gradient and Hessian against sympy.diff, kernels that expand back to
the formulas they stand for, and the naming rules."""

from __future__ import annotations

import pytest
import sympy

from adgen.derive import Kernel, Param, build_model, camel_case
from adgen.errors import InputError
from adgen.functions import elementary
from adgen.parse import parse_expression


def expand(kernel: Kernel, partials=None) -> list[sympy.Expr]:
    """Kernel outputs with the CSE temporaries substituted back, and the
    partial-derivative table entries (f_x, f_xy, ...) they contract."""
    outputs = list(kernel.outputs)
    for name, value in reversed(kernel.temporaries):
        symbol = sympy.Symbol(name, real=True)
        outputs = [o.subs(symbol, value) for o in outputs]
    if partials is not None:
        entries = {sympy.Symbol(e.name, real=True): e.formula for e in partials.entries}
        outputs = [o.xreplace(entries) for o in outputs]
    return outputs


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    difference = elementary(a - b)
    if sympy.simplify(difference) == 0:
        return True
    # Stable rewrites (sigmoid, softplus ...) can defeat simplify: compare numbers.
    symbols = sorted(difference.free_symbols, key=str)
    for point in ([0.3, 0.7, 1.1, 0.45], [1.3, 0.2, 0.9, 1.7]):
        values = dict(zip(symbols, point * 3))
        if abs(complex(difference.evalf(30, subs=values))) > 1e-20:
            return False
    return True


EXPRESSIONS = ["sin(x)", "x*exp(-alpha*x**2)*cos(y)", "atan2(y, x)*z", "log(1 + x**2)/y", "abs(x)*x"]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_gradient_matches_sympy(text: str) -> None:
    parsed = parse_expression(text)
    params = (Param("alpha", 0.5),) if "alpha" in parsed.names else ()
    model = build_model(parsed, "op", params=params)
    for name, derivative in zip(model.inputs, model.gradient):
        expected = sympy.diff(parsed.expr, sympy.Symbol(name, real=True))
        assert same(derivative, expected.replace(sympy.DiracDelta, lambda *a: 0))


def values(kernel: Kernel, partials=None) -> list[sympy.Expr]:
    return expand(kernel, partials)


def d(expr: sympy.Expr, name: str) -> sympy.Expr:
    """Derivative almost everywhere, as adgen (and PyTorch) take it."""
    return sympy.diff(expr, sympy.Symbol(name, real=True)).replace(sympy.DiracDelta, lambda *a: 0)


def vjp(spec, forward: list[sympy.Expr]) -> list[sympy.Expr]:
    grads = [sympy.Symbol(g, real=True) for g in spec.grad_names()]
    return [
        sum((g * d(v, a) for g, v in zip(grads, forward)), sympy.S.Zero) for a in spec.tensor_args
    ]


def jvp(spec, forward: list[sympy.Expr]) -> list[sympy.Expr]:
    return [
        sum(
            (d(v, a) * sympy.Symbol(t, real=True)
             for a, t in zip(spec.tensor_args, spec.tangent_names())),
            sympy.S.Zero,
        )
        for v in forward
    ]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_every_function_differentiates_the_one_before(text: str) -> None:
    """The op computes f; each backward (jvp), whether a plain kernel or a call of
    the next Function, computes the vjp (jvp) of its Function's forward."""
    parsed = parse_expression(text)
    params = (Param("alpha", None),) if "alpha" in parsed.names else ()
    model = build_model(parsed, "op", params=params)
    specs = {spec.class_name: spec for spec in model.functions}
    assert [s.class_name for s in model.functions] == ["Op", "OpBackward", "OpJvp", "OpBackwardJvp", "OpJvpJvp"]
    assert same(values(specs["Op"].forward)[0], parsed.expr)
    table = model.partials
    for spec in model.functions:
        forward = values(spec.forward, table)
        if spec.backward_call:
            computed = values(specs[spec.backward_call].forward, table)
        else:
            computed = values(spec.backward, table)
        for got, expected in zip(computed, vjp(spec, forward), strict=True):
            assert same(got, expected), (spec.class_name, "backward")
        computed = values(specs[spec.jvp_call].forward, table) if spec.jvp_call else values(spec.jvp, table)
        for got, expected in zip(computed, jvp(spec, forward), strict=True):
            assert same(got, expected), (spec.class_name, "jvp")


def test_cse_shares_work() -> None:
    model = build_model(parse_expression("sin(x)*exp(sin(x)) + cos(sin(x))"), "op")
    first_stage = dict(model.partials.stages[0])
    assert sympy.sin(sympy.Symbol("x", real=True)) in first_stage.values(), "sin(x) should be computed once"


def test_abs_second_derivative_is_zero_almost_everywhere() -> None:
    model = build_model(parse_expression("abs(x)"), "op")
    backward = model.functions[1]
    d_grad, d_x = backward.backward.outputs
    assert d_x == 0


def test_temporaries_avoid_user_names() -> None:
    model = build_model(parse_expression("t0*sin(t1) + sin(t1)**2*t0"), "op")
    names = {n for stage in model.partials.stages for n, _ in stage}
    for spec in model.functions:
        for kernel in (spec.forward, spec.backward, spec.jvp):
            if kernel is not None:
                names |= {n for n, _ in kernel.temporaries}
    assert names and not names & {"t0", "t1"}


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
        ("x_t*x", None, (), "used by the generated code"),
        ("d_x + x", None, (), "used by the generated code"),
        ("OpJvpJvp*x", None, (), "used by the generated code"),
        ("f_x*x", None, (), "used by the generated code"),  # a partial derivative's name
        ("dtype*x", None, (), "used by the generated code"),
    ],
)
def test_bad_inputs_and_params(text, inputs, params, message) -> None:
    with pytest.raises(InputError, match=message):
        build_model(parse_expression(text), "op", inputs=inputs, params=params)


@pytest.mark.parametrize("name", ["Sin", "1op", "my-op", "class", "test_op", "torch", "x y", ""])
def test_bad_names(name: str) -> None:
    with pytest.raises(InputError):
        build_model(parse_expression("sin(x)"), name)
