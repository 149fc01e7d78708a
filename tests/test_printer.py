"""Printer: exact strings. Constants are Python floats, integer powers stay
integers, functions map through the table."""

from __future__ import annotations

import pytest
import sympy

from adgen.errors import InputError
from adgen.parse import parse_expression
from adgen.printer import torch_code

x = sympy.Symbol("x", real=True)

CASES = [
    ("sin(x)", "torch.sin(x)"),
    ("sqrt(2)*x", "1.4142135623730951*x"),
    ("x/2", "0.5*x"),
    ("pi/2*x", "1.5707963267948966*x"),
    ("-sqrt(2)*x*y", "-1.4142135623730951*x*y"),
    ("1/x", "1.0 / x"),
    ("x**-2", "x**(-2)"),
    ("x**3", "x**3"),
    ("x**1.5", "x**1.5"),
    ("x**(1/3)", "x**0.3333333333333333"),
    ("2**x", "2.0**x"),
    ("x**y", "x**y"),
    ("(x + 1)**2", "(x + 1.0)**2"),
    ("sqrt(x)", "torch.sqrt(x)"),
    ("1/sqrt(x)", "torch.rsqrt(x)"),
    ("exp(x) + e**y", "torch.exp(x) + torch.exp(y)"),
    ("abs(x) - 3", "torch.abs(x) - 3.0"),
    ("atan2(y, x)", "torch.atan2(y, x)"),
    ("lgamma(x)", "torch.lgamma(x)"),
    ("erfc(x)", "torch.erfc(x)"),
    ("10**100*x", "1e+100*x"),
]


@pytest.mark.parametrize("text, code", CASES)
def test_exact_strings(text: str, code: str) -> None:
    assert torch_code(parse_expression(text).expr) == code


def test_numbers_never_become_tensors() -> None:
    for number in (sympy.Integer(2), sympy.Rational(1, 3), sympy.sqrt(2), sympy.pi, sympy.E, sympy.log(3)):
        code = torch_code(number)
        assert float(code) == pytest.approx(float(number), rel=1e-15)


def test_derivative_functions() -> None:
    assert torch_code(sympy.diff(sympy.loggamma(x), x)) == "torch.special.digamma(x)"
    assert torch_code(sympy.diff(sympy.loggamma(x), x, 2)) == "torch.special.polygamma(1, x)"
    assert torch_code(sympy.sign(x)) == "torch.sign(x)"


def test_every_parser_function_prints() -> None:
    from adgen.parse import FUNCTIONS

    for name, (_, arity) in FUNCTIONS.items():
        args = "x > y, x, y" if name == "where" else ", ".join(["x", "y"][:arity])
        code = torch_code(parse_expression(f"{name}({args})").expr)
        assert code.startswith(("torch.", "(")), (name, code)


VOCABULARY = [
    ("sigmoid(x)", "torch.sigmoid(x)"),
    ("softplus(x)", "torch.nn.functional.softplus(x)"),
    ("relu(x)", "torch.relu(x)"),
    ("log1p(x) + expm1(x)", "torch.expm1(x) + torch.log1p(x)"),
    ("logaddexp(x, y)", "torch.logaddexp(x, y)"),
    ("logaddexp(x, 2)", "torch.nn.functional.softplus(x - 2.0) + 2.0"),
    ("xlogy(x, y)", "torch.special.xlogy(x, y)"),
    ("hypot(x, y)", "torch.hypot(x, y)"),
    ("hypot(x, 3)", "torch.sqrt(x**2 + 9.0)"),
    ("atan2(2, x)", "torch.atan2(torch.full_like(x, 2.0), x)"),
    ("erfinv(x)", "torch.erfinv(x)"),
    ("digamma(x)", "torch.special.digamma(x)"),
    ("where(x > 0, x, 2*x)", "torch.where(x > 0.0, x, 2.0*x)"),
    ("where(0 < x <= 1, x, y)", "torch.where((x <= 1.0) & (x > 0.0), x, y)"),
    ("max(x, 0)", "torch.clamp(x, min=0.0)"),
    ("min(x, y)", "torch.minimum(x, y)"),
    ("heaviside(x)", "torch.sign(torch.relu(x))"),
    ("sign(x)", "torch.sign(x)"),
]


@pytest.mark.parametrize("text, code", VOCABULARY)
def test_vocabulary(text: str, code: str) -> None:
    assert torch_code(parse_expression(text).expr) == code


def test_functions_of_parameters_use_math() -> None:
    expr = parse_expression("x*log(alpha) + sigmoid(alpha)").expr
    assert torch_code(expr, frozenset({"alpha"})) == (
        "x*math.log(alpha) + torch.sigmoid(torch.tensor(alpha, dtype=torch.float64))"
    )


def test_unsupported_construct_is_named() -> None:
    with pytest.raises(InputError, match="besselj"):
        torch_code(sympy.besselj(0, x))


def test_complex_constant_is_rejected() -> None:
    with pytest.raises(InputError, match="not a real number"):
        torch_code(x + sympy.I)
