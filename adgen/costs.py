"""Provisional cost table (replaced by benchmarks/op_cost.py's measured table)."""

from __future__ import annotations

import sympy

COSTS: dict[str, float] = {
    "add": 1.0, "sub": 1.0, "mul": 1.0, "div": 1.1, "neg": 1.0, "reciprocal": 1.1,
    "square": 1.0, "pow_int": 1.5, "sqrt": 1.2, "rsqrt": 1.5, "pow": 6.0, "where": 1.5,
    "abs": 1.0, "gt": 1.0, "max": 1.0, "min": 1.0,
    "sin": 4.0, "cos": 4.0, "tan": 6.0, "asin": 6.0, "acos": 6.0, "atan": 6.0, "atan2": 8.0,
    "sinh": 6.0, "cosh": 6.0, "tanh": 4.0, "asinh": 8.0, "acosh": 8.0, "atanh": 8.0,
    "exp": 3.0, "log": 3.0, "sqrt_fn": 1.2, "erf": 4.0, "erfc": 5.0, "loggamma": 12.0,
    "sigmoid": 3.5, "softplus": 6.0, "relu": 1.0, "log1p": 4.0, "expm1": 4.0,
    "logaddexp": 8.0, "xlogy": 4.0, "hypot": 3.0, "erfinv": 10.0, "digamma": 15.0,
    "sign": 1.0, "heaviside": 1.5,
}  # fmt: skip


def function_cost(cls: type) -> float:
    from .registry import REGISTRY

    for row in REGISTRY:
        if row.sympy_class is cls:
            return COSTS.get(row.names[0] if row.names else cls.__name__.lower(), 5.0)
    return 5.0
