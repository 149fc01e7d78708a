"""derive: gradient and Hessian against sympy.diff, kernels that expand back to
the formulas they stand for, and the naming rules.

Every expected derivative differentiates the *elementary* form of the formula
(adgen's sigmoid, softplus, hypot ... rewritten into sympy's exp, log, sqrt by
`elementary`), so sympy's own rules decide it, never adgen's `fdiff`."""

from __future__ import annotations

import itertools

import mpmath
import pytest
import sympy

from adgen import functions
from adgen.derive import Kernel, Param, build_model, camel_case
from adgen.errors import InputError
from adgen.functions import elementary
from adgen.parse import parse_expression


def expand(kernel: Kernel, partials=None, source=None) -> list[sympy.Expr]:
    """Kernel outputs with the CSE temporaries substituted back, and the
    partial-derivative table entries (f_x, f_xy, ...) they contract; the
    helpers' results (∂²f·a, ∂³f·a·b) by their definition, with ∂f by sympy
    from `source` (the expression and its inputs)."""
    outputs = list(kernel.outputs)
    for name, value in reversed(kernel.temporaries):
        symbol = sympy.Symbol(name, real=True)
        outputs = [o.subs(symbol, value) for o in outputs]
    if kernel.products:
        assert source is not None, "a kernel with products needs the expression"
        definitions = {}
        for product in kernel.products:
            definitions |= product_definitions(product, *source)
        outputs = [o.xreplace(definitions) for o in outputs]
    if partials is not None:
        entries = {sympy.Symbol(e.name, real=True): e.formula for e in partials.entries}
        outputs = [o.xreplace(entries) for o in outputs]
    return outputs


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Equal as functions, by value at a few points (simplify is slow on the
    stable vocabulary and cannot always see through it). Relative to the size
    of the terms: derive writes constants such as 2/sqrt(pi) as 17-digit literals."""
    a, b = elementary(a), elementary(b)
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    for point in ([0.3, 0.7, 1.1, 0.45], [1.3, 0.2, 0.9, 1.7], [0.8, 1.45, 0.35, 0.6]):
        values = {s: point[i % 4] + 0.05 * (i // 4) for i, s in enumerate(symbols)}
        got, expected = (complex(e.evalf(30, subs=values)) for e in (a, b))
        if abs(got - expected) > 1e-20 + 1e-15 * (abs(got) + abs(expected)):
            return False
    return True


EXPRESSIONS = [
    "sin(x)",
    "x*exp(-alpha*x**2)*cos(y)",
    "atan2(y, x)*z",
    "log(1 + x**2)/y",
    "abs(x)*x",
    # The stable vocabulary, whose derivative rules are adgen's own.
    "softplus(x)*sigmoid(y)",
    "hypot(x, y)*y",
    "logaddexp(x, 2*y)",
    "xlogy(x, y) + erfc(x)*relu(y)",
    "where(x > 0.5, log1p(x), expm1(x))*alpha",
    # Second derivatives that are numbers or parameters; third ones that are numbers.
    "x*y + y*z + alpha*z*x",
    "x*y*z + x**2*y",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_gradient_matches_sympy(text: str) -> None:
    parsed = parse_expression(text)
    params = (Param("alpha", 0.5),) if "alpha" in parsed.names else ()
    model = build_model(parsed, "op", params=params)
    for name, derivative in zip(model.inputs, model.gradient):
        assert same(derivative, d(parsed.expr, name))


def product_definitions(product, expr: sympy.Expr, inputs: tuple[str, ...]) -> dict:
    """Result i of ∂ᵏf·a·b is Σ over j, k of ∂ᵏf/∂x_i∂x_j∂x_k·a_j·b_k."""
    n = len(inputs)
    vectors = [[sympy.Symbol(c, real=True) for c in vector] for vector in product.vectors]
    if product.combined:  # the first vector, a sum of several: its components
        vectors.insert(0, list(product.combined))
    elif product.scale:  # the first vector times it
        vectors[0] = [sympy.Symbol(product.scale, real=True) * c for c in vectors[0]]
    definitions = {}
    for i, result in enumerate(product.results):
        total = sympy.S.Zero
        for rest in itertools.product(range(n), repeat=product.order - 1):
            derivative = expr
            for position in (i, *rest):
                derivative = d(derivative, inputs[position])
            for vector, j in zip(vectors, rest):
                derivative *= vector[j]
            total += derivative
        definitions[sympy.Symbol(result, real=True)] = total
    return definitions


def values(kernel: Kernel, partials=None, source=None) -> list[sympy.Expr]:
    return expand(kernel, partials, source)


def d(expr: sympy.Expr, name: str) -> sympy.Expr:
    """Derivative almost everywhere, as adgen (and PyTorch) take it, by sympy's
    rules on the elementary form (not by adgen's derivative rules)."""
    derivative = sympy.diff(elementary(expr), sympy.Symbol(name, real=True))
    return derivative.replace(sympy.DiracDelta, lambda *a: 0)


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
    if len(model.inputs) == 1:  # the op's jvp is its Backward with x_t as grad
        assert [s.class_name for s in model.functions] == ["Op", "OpBackward", "OpBackwardJvp"]
    else:
        assert [s.class_name for s in model.functions] == ["Op", "OpBackward", "OpJvp", "OpBackwardJvp", "OpJvpJvp"]
    assert same(values(specs["Op"].forward)[0], parsed.expr)
    table = model.partials
    source = (parsed.expr, model.inputs)
    for spec in model.functions:
        forward = values(spec.forward, table, source)
        if spec.backward_call:
            computed = values(specs[spec.backward_call].forward, table, source)
        else:
            computed = values(spec.backward, table, source)
        for got, expected in zip(computed, vjp(spec, forward), strict=True):
            assert same(got, expected), (spec.class_name, "backward")
        if spec.jvp_call:
            target = specs[spec.jvp_call]
            passed = dict(zip(target.tensor_args, spec.jvp_call_args, strict=True))
            renaming = {sympy.Symbol(a, real=True): sympy.Symbol(b, real=True) for a, b in passed.items()}
            computed = [v.xreplace(renaming) for v in values(target.forward, table, source)]
        else:
            computed = values(spec.jvp, table, source)
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
        ("sin(order)", None, (), "used by the generated code"),  # _partials(..., order)
    ],
)
def test_bad_inputs_and_params(text, inputs, params, message) -> None:
    with pytest.raises(InputError, match=message):
        build_model(parse_expression(text), "op", inputs=inputs, params=params)


@pytest.mark.parametrize("name", ["Sin", "1op", "my-op", "class", "test_op", "torch", "x y", ""])
def test_bad_names(name: str) -> None:
    with pytest.raises(InputError):
        build_model(parse_expression("sin(x)"), name)


# Each derivative rule of the vocabulary, at points inside its domain.
VOCABULARY = [
    (functions.sigmoid, [(-3.1,), (0.4,), (2.2,)]),
    (functions.softplus, [(-3.1,), (0.4,), (2.2,)]),
    (functions.relu, [(-1.3,), (0.7,)]),
    (functions.logaddexp, [(-1.2, 0.7), (0.9, -0.4), (2.5, 2.1)]),
    (functions.xlogy, [(0.3, 0.7), (-1.4, 2.5), (1.1, 0.2)]),
    (functions.hypot, [(0.3, 0.7), (-1.4, 2.5), (1.1, -0.2)]),
    (functions.erfc, [(-1.2,), (0.3,), (1.7,)]),
    (functions.log1p, [(-0.6,), (0.3,), (1.7,)]),
    (functions.expm1, [(-1.2,), (0.3,), (1.7,)]),
]


@pytest.mark.parametrize("function, points", VOCABULARY, ids=[f.__name__ for f, _ in VOCABULARY])
def test_vocabulary_derivative_rules_match_the_definition(function, points) -> None:
    """fdiff (what derive uses) against the derivative of the definition: sympy's
    rules on the elementary form, and a finite difference in mpmath at 40 digits
    of the definition's value."""
    args = sympy.symbols(f"a0:{function.nargs.args[0]}", real=True)
    call = function(*args)
    definition = elementary(call)
    assert not definition.has(type(call)), "the definition must not use the function itself"
    for index, arg in enumerate(args):
        rule = elementary(call.fdiff(index + 1))
        by_sympy = sympy.diff(definition, arg)
        for point in points:
            exact = {a: sympy.Rational(v) for a, v in zip(args, point)}

            def along(t: mpmath.mpf, exact=exact, arg=arg) -> mpmath.mpf:
                moved = {**exact, arg: sympy.Float(mpmath.nstr(t, 45), 45)}
                return mpmath.mpf(str(sympy.N(definition.xreplace(moved), 45)))

            with mpmath.workdps(45):
                # Central difference: truncation ~h**2 = 1e-24, rounding ~1e-45/h.
                at, h = mpmath.mpf(exact[arg].p) / exact[arg].q, mpmath.mpf("1e-12")
                by_difference = mpmath.nstr((along(at + h) - along(at - h)) / (2 * h), 40)
            got = sympy.N(rule.xreplace(exact), 30)
            assert abs(got - sympy.N(by_sympy.xreplace(exact), 30)) <= 1e-25 * (1 + abs(got))
            assert abs(got - sympy.Float(by_difference, 30)) <= 1e-20 * (1 + abs(got)), (
                function.__name__, index, point
            )


AUTOGRAD_ORDER_CASES = [
    "x/(y + x)",
    "(x - y)/(z - y)",
    "x*(x/y + 1)/(x + 1)",
    "sqrt(x*x + y*y)",
    "exp(x*y*y)/(1 + z)",
    "x**y + log(x*z)",
    "sin(x)*cos(y)/tan(z)",
    "1/x - 1/(x + y)",
    "atan2(y, x)*softplus(z)",
    "y/x**2 + exp(z)/(x*x*y**3)",
    "1.0/x/(y*(1.0 + z*z))",  # as sympy reads it, a product with no numerator
]


@pytest.mark.parametrize("form", ["as sympy reads it", "as written"])
@pytest.mark.parametrize("text", AUTOGRAD_ORDER_CASES)
def test_derivatives_in_autograds_order_are_the_derivatives(text: str, form: str) -> None:
    """The reverse-mode derivatives (each intermediate held) equal sympy's, to 40
    digits, at points where every formula is defined: of the expression as
    sympy reads it, and as written (held in Python's order of operations)."""
    from adgen.derive import _autograd_order

    parsed = parse_expression(text)
    expr = parsed.expr if form == "as sympy reads it" else parsed.written[0]
    symbols = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    ordered = _autograd_order(expr, symbols)
    assert ordered is not None
    point = {s: sympy.Rational(k + 3, 7) for k, s in enumerate(symbols)}
    for symbol, derivative in zip(symbols, ordered):
        assert derivative.has(functions.held) or derivative.is_Atom or not derivative.has(sympy.Pow)
        expected = sympy.diff(elementary(expr), symbol).subs(point).evalf(50)
        got = elementary(derivative).subs(point).evalf(50)
        assert abs(got - expected) <= 1e-40 * (1 + abs(expected)), (symbol, derivative)


def test_autograd_order_gives_up_on_where() -> None:
    from adgen.derive import _autograd_order

    expr = parse_expression("where(x > 0, x, y)").expr
    assert _autograd_order(expr, tuple(sorted(expr.free_symbols, key=str))) is None


def test_a_quotients_gradient_does_not_overflow_where_autograds_does_not() -> None:
    """d/dy x/(x + y) = -x/(x + y)**2: (x + y)**2 overflows at 1e200, autograd's
    ((x/(x + y))/(x + y)) does not; selection keeps the accurate form."""
    import torch

    import adgen

    op = adgen.load("x/(y + x)", name="ratio")
    x, y = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1e200, 3e200))
    grad_x, grad_y = torch.autograd.grad(op(x, y), (x, y))
    # ∂/∂x = y/(x + y)**2 = 3e200/16e400, ∂/∂y = -x/(x + y)**2 = -1e200/16e400
    torch.testing.assert_close(grad_y, torch.tensor(-1.0 / 16e200, dtype=torch.float64))
    torch.testing.assert_close(grad_x, torch.tensor(3.0 / 16e200, dtype=torch.float64))


def test_a_product_is_computed_in_the_order_written_where_sympys_overflows() -> None:
    """x*y*y is x*y**2 to sympy, whose y**2 overflows at y = 1e200; Python's
    (x*y)*y does not (x = 1e-200): selection keeps the formula as written."""
    import torch

    import adgen

    op = adgen.load("x*y*y", name="product")
    x, y = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1e-200, 1e200))
    value = op(x, y)
    (grad_y,) = torch.autograd.grad(value, (y,))
    torch.testing.assert_close(value, torch.tensor(1e200, dtype=torch.float64))
    torch.testing.assert_close(grad_y, torch.tensor(2.0, dtype=torch.float64))


def test_a_kernel_computes_a_held_value_once() -> None:
    """held(x + y) and x + y are one value: one temporary, none a bare alias,
    and (x + y)**2 reached both ways is one temporary too."""
    from adgen.derive import _kernel

    x, y = sympy.symbols("x y", real=True)
    s, h = x + y, functions.held(x + y)
    kernel = _kernel(("x", "y"), [h**2 * sympy.sin(s) + h**2, s**2 * sympy.cos(s) + s**2], set())
    values = [value for _, value in kernel.temporaries]
    assert values == [s, sympy.Symbol("t0", real=True) ** 2]
    assert [n for n, _ in kernel.temporaries] == ["t0", "t1"]  # numbered without gaps


def test_the_kernels_sums_of_products_differentiate_as_sympy_diff_does() -> None:
    """_linear_diff replaces sympy.diff for the abstract kernels (issue #13): the
    same tree, node for node (srepr), or the emitted text would change. Cases:
    the family's own shapes (grads and tangents times Derivative atoms, a grad
    times a sum, numeric coefficients, several abstract outputs) and a power,
    which goes to sympy.diff."""
    from adgen.derive import _linear_diff

    x, y, z, g, h, x_t, y_t, s = sympy.symbols("x y z g h x_t y_t s", real=True)
    f, u = sympy.Function("f")(x, y, z), sympy.Function("f1")(x, y, z)
    f_x, f_y, u_z = f.diff(x), f.diff(y), u.diff(z)
    values = [
        f,
        g * f_x + h * f_y,
        f_x * x_t + f_y * y_t + u_z * x_t,
        g * (h * f.diff(x, y) * x_t + 2 * f_x * y_t) + 3 * h * u.diff(y, z),
        g * h * f_x * y_t - 2 * x_t * (f_y + u_z * h),
        s * g * f_y + s * x_t * (h * f_x - y_t * u_z) + f_x * y_t,  # the blocks' scale
        x_t**2 * f_x + g * f_y**2,
    ]
    for value in values:
        for variable in (x, y, z, g, h, x_t, y_t, s):
            expected = sympy.diff(value, variable)
            assert sympy.srepr(_linear_diff(value, variable)) == sympy.srepr(expected), (
                value, variable,
            )
