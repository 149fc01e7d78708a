"""The one table of functions an expression may call.

One row per function: the names a user may write, how the parser builds the
sympy node, the node's class, arity, torch spelling, `math` spelling (for
parameters, which are Python floats), in-place tensor method, and the interval
where it is real and smooth. The parser's whitelist, the printer's tables and
the in-place lowering are all derived from it, so adding a function is one row
here (plus, for a function sympy lacks, its class with its derivative rule in
functions.py). The derivative rule of each row is its sympy class's `fdiff`:
sympy's own for sympy's functions, ours (in a stable form) for the vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy

from . import functions

_EVERYWHERE = (-math.inf, math.inf)


@dataclass(frozen=True)
class KnownFunction:
    """One function of the expression language."""

    names: tuple[str, ...]  # ("abs", "Abs"): what a user may call it; () for internal nodes
    sympy_class: type  # sympy.Abs: the node that derive and the printer see
    arity: int  # 1
    torch: str | None  # "torch.abs"; None where the printer has a method (_print_Max)
    math: str | None = None  # "abs": the same function of Python floats (parameters)
    in_place: str | None = None  # "abs": the tensor method abs_() in buffer-reusing kernels
    # (0.0, inf) for log: where every argument may lie for it to be real and
    # smooth; tests sample there (the generated tests probe each op's domain).
    domain: tuple[float, float] = _EVERYWHERE
    tensors_only: bool = False  # True: torch's kernel rejects a Python number argument
    build: Callable[..., sympy.Expr] | None = None  # the parser's constructor; None: sympy_class

    def construct(self, *args: sympy.Basic) -> sympy.Expr:
        """The sympy node for a call with these (converted) arguments."""
        return (self.build or self.sympy_class)(*args)


def _unary(name: str, sympy_class: type, *, math_name: str | None = "", in_place: str | None = "",
           domain: tuple[float, float] = _EVERYWHERE, torch_name: str | None = None,
           aliases: tuple[str, ...] = ()) -> KnownFunction:
    """A one-argument function whose torch, math and in-place spellings default to its name."""
    return KnownFunction(
        names=(name, *aliases),
        sympy_class=sympy_class,
        arity=1,
        torch=torch_name or f"torch.{name}",
        math=f"math.{name}" if math_name == "" else math_name,
        in_place=name if in_place == "" else in_place,
        domain=domain,
    )


def _heaviside(x: sympy.Expr) -> sympy.Expr:
    return sympy.Heaviside(x, 0)  # step(0) = 0, as relu'(0) in PyTorch


def _where(condition: sympy.Basic, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return sympy.Piecewise((a, condition), (b, True))


REGISTRY: tuple[KnownFunction, ...] = (
    _unary("sin", sympy.sin),
    _unary("cos", sympy.cos),
    _unary("tan", sympy.tan, domain=(-1.5, 1.5)),
    _unary("asin", sympy.asin, domain=(-1.0, 1.0)),
    _unary("acos", sympy.acos, domain=(-1.0, 1.0)),
    _unary("atan", sympy.atan),
    KnownFunction(("atan2",), sympy.atan2, 2, "torch.atan2", "math.atan2", tensors_only=True),
    _unary("sinh", sympy.sinh),
    _unary("cosh", sympy.cosh),
    _unary("tanh", sympy.tanh),
    _unary("asinh", sympy.asinh),
    _unary("acosh", sympy.acosh, domain=(1.0, math.inf)),
    _unary("atanh", sympy.atanh, domain=(-1.0, 1.0)),
    _unary("exp", sympy.exp),
    _unary("log", sympy.log, domain=(0.0, math.inf)),
    # sqrt(x) is the node x**(1/2): the printer writes powers (torch.sqrt, rsqrt).
    KnownFunction(("sqrt",), sympy.Pow, 1, None, domain=(0.0, math.inf), build=sympy.sqrt),
    _unary("abs", sympy.Abs, math_name="abs", aliases=("Abs",)),
    _unary("erf", sympy.erf),
    # ours: sympy's erfc rewrites erfc(-x) as 2 - erfc(x), the cancellation erfc avoids
    _unary("erfc", functions.erfc),
    KnownFunction((), sympy.erfc, 1, "torch.erfc", "math.erfc", "erfc"),  # from sympy's rules
    _unary("loggamma", sympy.loggamma, math_name="math.lgamma", in_place="lgamma",
           domain=(0.0, math.inf), torch_name="torch.lgamma", aliases=("lgamma",)),
    # The stable vocabulary (functions.py): torch's stable kernels.
    _unary("sigmoid", functions.sigmoid, math_name=None),
    _unary("softplus", functions.softplus, math_name=None, in_place=None,
           torch_name="torch.nn.functional.softplus"),
    _unary("relu", functions.relu, math_name=None),
    _unary("log1p", functions.log1p, domain=(-1.0, math.inf)),
    _unary("expm1", functions.expm1),
    KnownFunction(("logaddexp",), functions.logaddexp, 2, "torch.logaddexp", tensors_only=True),
    KnownFunction(("xlogy",), functions.xlogy, 2, "torch.special.xlogy", domain=(0.0, math.inf)),
    KnownFunction(("hypot",), functions.hypot, 2, "torch.hypot", tensors_only=True),
    _unary("erfinv", sympy.erfinv, math_name=None, domain=(-1.0, 1.0)),
    # digamma(x) is the node polygamma(0, x): the printer has a method for it.
    KnownFunction(("digamma",), sympy.polygamma, 1, None, domain=(0.0, math.inf),
                  build=sympy.digamma),
    _unary("sign", sympy.sign, math_name=None),
    KnownFunction(("heaviside", "Heaviside"), sympy.Heaviside, 1, None, build=_heaviside),
    KnownFunction(("max", "Max", "maximum"), sympy.Max, 2, None),
    KnownFunction(("min", "Min", "minimum"), sympy.Min, 2, None),
    KnownFunction(("where",), sympy.Piecewise, 3, None, build=_where),
)

BY_NAME: dict[str, KnownFunction] = {name: row for row in REGISTRY for name in row.names}
TORCH_NAMES: dict[type, str] = {r.sympy_class: r.torch for r in REGISTRY if r.torch}
MATH_NAMES: dict[type, str] = {r.sympy_class: r.math for r in REGISTRY if r.math}
IN_PLACE_METHODS: dict[type, str] = {r.sympy_class: r.in_place for r in REGISTRY if r.in_place}
TENSORS_ONLY: tuple[type, ...] = tuple(r.sympy_class for r in REGISTRY if r.tensors_only)
