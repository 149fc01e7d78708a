"""contract: the products ∂²f·a and ∂³f·a·b that kernels call helpers for.

test_derive checks that every kernel, products expanded by their definition
(with ∂f by sympy), is the derivative of the Function before it. Here: which
arguments are vectors, that a group of terms is named a product only where it
is one, that the helpers read each nonzero entry once and no zero one, and that
the kernels of an op of several inputs read ∂³f only through them."""

from __future__ import annotations

import itertools
import re
import sys

import pytest
import sympy

import adgen
from adgen.contract import factor, vector_families
from adgen.derive import build_model
from adgen.functions import elementary
from adgen.parse import parse_expression


def test_vectors_are_the_argument_families_with_a_component_per_input() -> None:
    arguments = ("grad", "x", "y", "grad_t", "x_t", "y_t", "grad_grad_x_t", "grad_grad_y_t")
    assert vector_families(arguments, ("x", "y")) == {
        "t": ("x_t", "y_t"),
        "gg_t": ("grad_grad_x_t", "grad_grad_y_t"),
    }
    # A family lacking one input's component is no vector; the inputs themselves are none.
    assert vector_families(("x", "y", "x_t", "grad_t"), ("x", "y")) == {}


def test_an_argument_read_as_two_vectors_is_a_component_of_neither() -> None:
    # Inputs a and a_b: a_b_t is a_b's tangent, and also "a" with suffix _b_t.
    families = vector_families(("a", "a_b", "a_t", "a_b_t"), ("a", "a_b"))
    assert families == {"t": ("a_t", "a_b_t")}


def _derivative(f: sympy.Function, symbols, *index: int) -> sympy.Derivative:
    return sympy.Derivative(f, *(symbols[i] for i in index))


def _factor(outputs, arguments, inputs=("x", "y")):
    symbols = [sympy.Symbol(n, real=True) for n in inputs]
    f = sympy.Function("f")(*symbols)

    def index_of(derivative):
        counts = dict(derivative.variable_count)
        return tuple(i for i, s in enumerate(symbols) for _ in range(counts.get(s, 0)))

    return factor(
        outputs(f, symbols), arguments, inputs, index_of,
        lambda index: "f_" + "".join(inputs[i] for i in index), lambda index: True, set(),
    )


def test_a_hessian_times_a_tangent_becomes_a_product() -> None:
    def outputs(f, s):
        x_t, y_t, grad = (sympy.Symbol(n, real=True) for n in ("x_t", "y_t", "grad"))
        return [grad * (_derivative(f, s, 0, 0) * x_t + _derivative(f, s, 0, 1) * y_t)]

    (output,), products = _factor(outputs, ("grad", "x", "y", "x_t", "y_t"))
    # Its one use is times grad: the product takes grad·t, and forward mode over
    # the kernel differentiates no multiplication by grad.
    assert [(p.results, p.scale) for p in products] == [(("grad_hess_t_x", "grad_hess_t_y"), "grad")]
    assert output == sympy.Symbol("grad_hess_t_x", real=True)


def test_a_product_used_with_two_factors_keeps_them_outside() -> None:
    def outputs(f, s):
        x_t, y_t, grad, grad_t = (sympy.Symbol(n, real=True) for n in ("x_t", "y_t", "grad", "grad_t"))
        hessian_x = _derivative(f, s, 0, 0) * x_t + _derivative(f, s, 0, 1) * y_t
        hessian_y = _derivative(f, s, 0, 1) * x_t + _derivative(f, s, 1, 1) * y_t
        return [grad * hessian_x, grad_t * hessian_y]

    found, products = _factor(outputs, ("grad", "grad_t", "x", "y", "x_t", "y_t"))
    assert [(p.results, p.scale) for p in products] == [(("hess_t_x", "hess_t_y"), None)]
    grad, grad_t, hess_x, hess_y = (
        sympy.Symbol(n, real=True) for n in ("grad", "grad_t", "hess_t_x", "hess_t_y")
    )
    assert found == [grad * hess_x, grad_t * hess_y]


def _hessian(f, s, i, vector):
    return sum(_derivative(f, s, i, j) * vector[j] for j in range(len(s)))


def test_outputs_summing_hessian_products_by_the_same_vectors_share_one_product() -> None:
    names = ("grad", "grad_t", "grad_u", "x_t", "y_t", "x_u", "y_u", "x_t_u", "y_t_u")
    grad, grad_t, grad_u, x_t, y_t, x_u, y_u, x_t_u, y_t_u = (sympy.Symbol(n, real=True) for n in names)

    def outputs(f, s):
        # BackwardJvp.jvp's shape: at each input, ∂²f·t_u·grad + ∂²f·u·grad_t + 2∂²f·t·grad_u.
        return [
            grad * _hessian(f, s, i, (x_t_u, y_t_u))
            + grad_t * _hessian(f, s, i, (x_u, y_u))
            + 2 * grad_u * _hessian(f, s, i, (x_t, y_t))
            for i in range(2)
        ]

    found, products = _factor(outputs, ("x", "y", *names))
    (product,) = products
    assert product.combined == (
        grad * x_t_u + grad_t * x_u + 2 * grad_u * x_t,
        grad * y_t_u + grad_t * y_u + 2 * grad_u * y_t,
    )
    assert found == [sympy.Symbol(r, real=True) for r in product.results]


def test_outputs_summing_different_hessian_products_keep_them_apart() -> None:
    names = ("grad", "grad_t", "x_t", "y_t", "x_u", "y_u")
    grad, grad_t, x_t, y_t, x_u, y_u = (sympy.Symbol(n, real=True) for n in names)

    def outputs(f, s):
        # The second output's t-term has another factor: no one sum serves both.
        return [
            grad * _hessian(f, s, 0, (x_t, y_t)) + grad_t * _hessian(f, s, 0, (x_u, y_u)),
            grad_t * _hessian(f, s, 1, (x_t, y_t)) + grad_t * _hessian(f, s, 1, (x_u, y_u)),
        ]

    _, products = _factor(outputs, ("x", "y", *names))
    assert products and not any(p.combined for p in products)


def test_terms_that_are_not_a_whole_product_stay() -> None:
    def outputs(f, s):
        x_t, y_t = (sympy.Symbol(n, real=True) for n in ("x_t", "y_t"))
        # f_xy's term is missing, and f_yy's has the wrong factor.
        return [_derivative(f, s, 0, 0) * x_t + 2 * _derivative(f, s, 1, 1) * y_t]

    (output,), products = _factor(outputs, ("x", "y", "x_t", "y_t"))
    assert products == ()
    assert output.atoms(sympy.Derivative)


def test_a_product_times_a_number_keeps_the_number() -> None:
    def outputs(f, s):
        x_t, y_t = (sympy.Symbol(n, real=True) for n in ("x_t", "y_t"))
        return [3 * _derivative(f, s, 1, 0) * x_t + 3 * _derivative(f, s, 1, 1) * y_t]

    (output,), _ = _factor(outputs, ("x", "y", "x_t", "y_t"))
    assert output == 3 * sympy.Symbol("hess_t_y", real=True)


SPARSE = "x*y*z + sin(x)*z**2"  # most third derivatives are zero


def _third_partials(text: str, inputs: tuple[str, ...]) -> dict[str, sympy.Expr]:
    """Each distinct ∂³f that is a function of the inputs (not a number: the
    helper writes that in place), by sympy on the elementary form."""
    expr = elementary(parse_expression(text).expr)
    symbols = [sympy.Symbol(n, real=True) for n in inputs]
    found = {}
    for index in itertools.combinations_with_replacement(range(len(inputs)), 3):
        value = sympy.diff(expr, *(symbols[i] for i in index))
        if value.free_symbols:
            found["".join(inputs[i] for i in index)] = value
    return found


def test_the_third_derivative_helper_reads_each_nonzero_entry_and_no_zero_one() -> None:
    model = build_model(parse_expression(SPARSE), "op")
    (helper,) = [h for h in model.products if h.order == 3]
    read = {
        s.name
        for value in [v for _, v in helper.kernel.temporaries] + list(helper.kernel.outputs)
        for s in value.free_symbols
        if s.name.startswith("f_")
    }
    assert read == {"f_" + field for field in _third_partials(SPARSE, ("x", "y", "z"))}


@pytest.mark.parametrize("text", ["x*exp(-alpha*x**2)*cos(y)", SPARSE, "exp(a*b + c*d)"])
def test_kernels_read_third_derivatives_only_through_the_helper(text: str) -> None:
    params = {"alpha": 0.5} if "alpha" in text else {}
    module = adgen.render(text, name="op", params=params).module_source
    helper = re.search(r"\ndef _third_times\(.*?\n\n\n", module, re.S)
    assert helper is not None
    inputs = [n for n in ("x", "y", "z", "a", "b", "c", "d") if re.search(rf"\b{n}\b", text)]
    thirds = {f"df.{field}" for field in _third_partials(text, tuple(inputs))}
    assert thirds, "the op has third derivatives"
    outside = module.replace(helper.group(0), "")
    classes = outside[outside.index("\nclass ") :]
    assert not [t for t in thirds if re.search(re.escape(t) + r"\b", classes)]
    assert all(re.search(re.escape(t) + r"\b", helper.group(0)) for t in thirds)


DENSE = "1/sqrt(x**2 + y**2 + z**2 + 1)"  # every third derivative is nonzero


def test_a_dense_third_derivative_helper_is_one_row_function_over_the_pairs() -> None:
    """Three inputs, every ∂³f a function of them: the three components, one
    shape, are one `row` function called with each component's entries, and
    each component is Σⱼₖ f_ijk·a_j·b_k (every ordered pair j, k)."""
    import torch

    module_source = adgen.render(DENSE, name="dense").module_source
    helper = re.search(r"\ndef _third_times\(.*?\n\n\n", module_source, re.S)
    assert helper is not None
    assert "    def row(" in helper.group(0)
    assert len(re.findall(r"\brow\(df\.", helper.group(0))) == 3

    op = adgen.load(DENSE, name="dense")
    module = sys.modules[op.__module__]
    generator = torch.Generator().manual_seed(0)
    x, y, z, *a_and_b = torch.randn(9, 5, dtype=torch.float64, generator=generator)
    df = module._partials(x, y, z, 3)
    a, b = a_and_b[:3], a_and_b[3:]
    components = module._third_times(df, *a, *b)
    for i in range(3):
        expected = sum(
            getattr(df, "".join("xyz"[k] for k in sorted((i, j, k)))) * a[j] * b[k]
            for j in range(3)
            for k in range(3)
        )
        torch.testing.assert_close(components[i], expected)


def test_second_derivatives_that_are_numbers_get_a_helper_without_a_table() -> None:
    """x*y + y*z + k*z*x: every ∂²f is a number or the parameter, every ∂³f is 0.
    The Hessian's products are one helper taking no table (the entries are in
    it), written once rather than in each kernel; there is no ∂³f helper."""
    import torch

    text = "x*y + y*z + k*z*x"
    module_source = adgen.render(text, name="quad", params={"k": 0.5}).module_source
    assert "\ndef _hessian_times(a_x, a_y, a_z, k, needed=(True, True, True)):" in module_source
    assert "_third_times" not in module_source
    backward = module_source[module_source.index("class QuadBackward(") :]
    backward = backward[: backward.index("\nclass ")]
    assert re.search(r"_hessian_times\(\s*gg_x \* grad, gg_y \* grad, gg_z \* grad, k,", backward)
    assert "_partials(x, y, z, 2)" not in module_source  # the helper needs no table

    op = adgen.load(text, name="quad", params={"k": 0.5})
    generator = torch.Generator().manual_seed(0)
    x, y, z, v_x, v_y, v_z = torch.randn(6, 4, dtype=torch.float64, generator=generator)
    inputs = [t.clone().requires_grad_() for t in (x, y, z)]
    grads = torch.autograd.grad(op(*inputs).sum(), inputs, create_graph=True)
    direction = (v_x, v_y, v_z)
    hessian_v = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, direction)), inputs)
    expected = (v_y + 0.5 * v_z, v_x + v_z, 0.5 * v_x + v_y)  # [[0, 1, k], [1, 0, 1], [k, 1, 0]]·v
    for got, want in zip(hessian_v, expected):
        torch.testing.assert_close(got, want)


def test_a_float_one_is_no_factor() -> None:
    """0.5*k*(x - y)**2: sympy's 2*0.5 is the float 1.0, an exact one. Neither
    the code nor the docstring multiplies by it."""
    one = re.compile(r"(?<![\d.])1\.0 ?\*|\* ?1\.0(?![\d])")
    module_source = adgen.render("0.5*k*(x - y)**2", name="bond", params={"k": 2.0}).module_source
    assert "∂f/∂x = k*(x - y)" in module_source
    assert not one.search(module_source)
    # sympy reads 2.0*x*0.5 as 1.0*x: the class and function docstrings say x.
    module_source = adgen.render("2.0*x*0.5*exp(-y)", name="damped").module_source
    assert "damped(x, y) = x*exp(-y)" in module_source
    assert not one.search(module_source.split("\n", 3)[3])  # after the header's expression
