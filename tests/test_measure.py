"""The measure's shortcuts (measure.py) give the bits of its definitions: truths'
ordinals made once, the order of a node's operations cached, library values
shared between dtypes. Each is checked against the plain definition."""

from __future__ import annotations

import math
import random

import mpmath
import pytest
import sympy

from adgen import functions, measure
from adgen.parse import parse_expression


def _bits_by_definition(values, truths, dtype: str) -> tuple[float, ...]:
    """bits_of_error as the module docstring defines it, point by point."""
    ordinal = measure._ordinal32 if dtype == "float32" else measure._ordinal64
    rounding = measure._round32 if dtype == "float32" else float
    widest = 32.0 if dtype == "float32" else 64.0
    bits = []
    for value, exact in zip(values, truths):
        if exact is None or value is None:
            continue
        if math.isnan(value):
            bits.append(widest)
            continue
        distance = abs(ordinal(rounding(value)) - ordinal(rounding(float(exact))))
        bits.append(min(widest, math.log2(1 + distance)))
    return tuple(bits)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bits_of_error_is_its_definition(dtype: str) -> None:
    rng = random.Random(7)
    specials = [None, math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e-45, 3.4e38]
    for _ in range(200):
        values = [
            rng.choice(specials) if rng.random() < 0.2
            else rng.uniform(-1, 1) * 10 ** rng.uniform(-40, 38)  # not a float32 in general
            for _ in range(64)
        ]
        truths = [
            None if rng.random() < 0.1 else mpmath.mpf(rng.uniform(-1, 1) * 10 ** rng.uniform(-300, 300))
            for _ in range(64)
        ]
        expected = _bits_by_definition(values, truths, dtype)
        assert measure.bits_of_error(values, truths, dtype) == expected
        # A truth() result carries its ordinals: the same bits, however often asked.
        cached = measure.Truths(truths)
        assert measure.bits_of_error(values, cached, dtype) == expected
        assert measure.bits_of_error(values, cached, dtype) == expected


def test_truth_carries_its_ordinals() -> None:
    sample = measure.sample_points(("x",), {}, {}, size=32)
    truths = measure.truth(sympy.exp(sympy.Symbol("x", real=True)), sample)
    assert isinstance(truths, measure.Truths)
    values = measure.rounded_values(sympy.exp(sympy.Symbol("x", real=True)), sample, "float64", {})
    assert measure.bits_of_error(values, truths, "float64") == _bits_by_definition(
        values, list(truths), "float64"
    )


@pytest.mark.parametrize("cls", list(measure.DEFINITIONS), ids=lambda c: c.__name__)
def test_both_zeros_have_one_library_value(cls: type) -> None:
    """The library cache shares an entry between 0.0 and -0.0 (they hash and compare
    equal): right only while every definition gives them the same value."""
    arity = 2 if cls in (sympy.atan2, sympy.Max, sympy.Min, sympy.polygamma, sympy.Heaviside,
                         functions.logaddexp, functions.xlogy, functions.hypot) else 1
    compute = measure._rounded_library.__wrapped__  # the uncached function
    for other in (0.0, -0.0, 1.5, -2.0) if arity == 2 else (None,):
        for position in range(arity):
            def args(zero: float) -> tuple[float, ...]:
                if arity == 1:
                    return (zero,)
                return (zero, other) if position == 0 else (other, zero)

            plus, minus = compute(cls, args(0.0)), compute(cls, args(-0.0))
            assert plus == minus or (math.isnan(plus) and math.isnan(minus)), (cls, args(-0.0))


@pytest.mark.parametrize(
    "text",
    ["x*y - x/y + x**3", "exp(x) - sin(y)*x/(1 + y**2)", "sigmoid(x)*softplus(y) + log1p(abs(x))"],
)
def test_the_measure_is_the_same_with_its_caches_cold_or_warm(text: str) -> None:
    expr = parse_expression(text).expr
    sample = measure.sample_points(("x", "y"), {}, {}, size=48)

    def measured() -> list:
        truths = list(measure.truth(expr, sample))
        return [truths] + [measure.rounded_values(expr, sample, d, {}) for d in ("float32", "float64")]

    for cached in (measure._rounded_library, measure._ordered_terms, measure._ordered_factors, measure._split_fraction):
        cached.cache_clear()
    cold = measured()
    if expr.atoms(sympy.Function):  # both dtypes shared the library's values
        assert measure._rounded_library.cache_info().hits > 0
    warm = measured()
    assert repr(warm) == repr(cold)  # NaN-aware, bit for bit
