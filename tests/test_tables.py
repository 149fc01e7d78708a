"""The module shape: partial-derivative tables computed once, in one helper, and
every other kernel a contraction of them (issue #12)."""

from __future__ import annotations

import re

import pytest
import sympy

import adgen
from adgen.derive import Param, build_model
from adgen.functions import elementary
from adgen.parse import parse_expression


def _model(text: str, **kwargs):
    return build_model(parse_expression(text), "op", **kwargs)


def _entries(text: str, params: tuple[str, ...] = ()) -> dict[str, sympy.Expr]:
    model = _model(text, params=tuple(Param(p, 1.0) for p in params))
    return {e.name: e.formula for e in model.partials.entries}


def test_entries_are_the_partial_derivatives() -> None:
    """Each entry is the mixed partial it is named after (sympy.diff of the
    elementary form as the oracle), for orders 1 to 3."""
    text = "x*exp(-x**2/2)*cos(y) + sigmoid(x*y)"
    expr = elementary(parse_expression(text).expr)
    x, y = sympy.symbols("x y", real=True)
    entries = _entries(text)
    assert len(entries) == 2 + 3 + 4
    for name, formula in entries.items():
        variables = [x if c == "x" else y for c in name.removeprefix("f_")]
        expected = sympy.diff(expr, *variables)
        difference = elementary(formula) - expected
        for point in ({x: 0.3, y: -0.7}, {x: -1.1, y: 0.4}):
            assert abs(difference.evalf(30, subs=point)) < 1e-25, name


def test_zero_and_constant_entries_are_not_computed() -> None:
    """sin(x) + y*z: f_xy, f_xz ... are 0 and f_yz is 1: only f_x, f_y, f_z,
    f_xx, f_xxx depend on a tensor."""
    assert sorted(_entries("sin(x) + y*z")) == ["f_x", "f_xx", "f_xxx", "f_y", "f_z"]
    # A parameter alone is a Python float, inlined where it is used.
    assert _entries("alpha*x", params=("alpha",)) == {}


def test_many_inputs_do_not_build_a_dense_table() -> None:
    names = [f"x{i}" for i in range(8)]
    text = " + ".join(f"sin({a})*{b}" for a, b in zip(names, names[1:]))
    entries = _entries(text)
    dense = 8 + 36 + 120
    assert len(entries) < dense / 3
    assert "f_x0_x1" in entries and "f_x0_x2" not in entries


@pytest.mark.parametrize(
    "text, options",
    [
        ("x*exp(-alpha*x**2)*cos(y)", {"params": {"alpha": 0.5}}),
        ("x*tanh(softplus(x))", {}),
        ("q/sqrt(x**2 + y**2 + z**2 + eps**2)", {"params": {"q": 1.0, "eps": 0.1}}),
    ],
)
def test_each_partial_is_written_once_and_kernels_contract_it(text: str, options) -> None:
    source = adgen.render(text, name="op", **options).module_source
    fields = re.search(r'namedtuple\(\s*"_Partials",\s*"([^"]*)"', source).group(1).split()
    for field in fields:
        assert len(re.findall(rf"^\s*f_{field} = ", source, re.M)) == 1, field
    # Outside the helper, no kernel computes a transcendental function of an
    # input except the op's own forward (the value).
    kernels = source[source.index("class "):]
    forward_of_op = re.search(r"class Op\(.*?def backward", kernels, re.S).group(0)
    rest = kernels.replace(forward_of_op, "")
    assert not re.search(r"torch\.(exp|tanh|sigmoid|sqrt|rsqrt|cos|sin)\(", rest)
    assert "df = _partials(" in rest


def test_entry_names_stay_distinct_when_input_names_have_underscores() -> None:
    """Inputs a, b, a_b: ∂²f/∂a∂b and ∂f/∂a_b may not both be f_a_b."""
    import torch

    op = adgen.load("sin(a*b) + sin(a_b)", name="op")
    a, b, ab = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.3, 0.2, 0.5))
    first = torch.autograd.grad(op(a, b, ab), (a, b, ab), create_graph=True)
    second = torch.autograd.grad(first[0], b)[0]  # ∂²f/∂a∂b = cos(ab) - ab sin(ab)
    torch.testing.assert_close(second, torch.cos(a * b) - a * b * torch.sin(a * b))
    torch.testing.assert_close(first[2], torch.cos(ab))


def test_a_long_product_entry_gets_its_sum_on_a_line_of_its_own() -> None:
    """mish's f_xxx is a product with a long sum among its factors: the sum is
    written first, on its own, and the entry multiplies it, in the order the
    product had; black would break the product one factor per line."""
    source = adgen.render("x*tanh(softplus(x))", name="op").module_source
    assert re.search(r"^    f_xxx_sum = \($", source, re.M)
    (product,) = re.findall(r"^    f_xxx = (.*)$", source, re.M)
    assert product.endswith(" * f_xxx_sum") and "(" not in product
