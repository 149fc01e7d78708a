"""The stable vocabulary: sympy functions that sympy lacks, each with a derivative
written in a numerically stable form (sigmoid' = sigmoid(x)*sigmoid(-x),
softplus' = sigmoid, logaddexp' = sigmoid of the difference ...).

The parser maps user names onto these, derive differentiates them, the printer
maps them onto torch's stable kernels.
"""

from __future__ import annotations

import sympy
from sympy.codegen.cfunctions import expm1, log1p

__all__ = [
    "erfc",
    "guarded",
    "held",
    "hold",
    "unheld",
    "expm1",
    "hypot",
    "log1p",
    "printed_fraction",
    "logaddexp",
    "relu",
    "sigmoid",
    "softplus",
    "xlogy",
]


class _Ours(sympy.Function):
    """A function sympy does not know: evalf of it at numbers gives its number
    (relu(0) is 0, softplus(2) 2.127) through the elementary form, where sympy
    would leave it unevaluated and float() of a constant holding it would fail.
    At symbols it stays as it is, as sympy leaves any function it cannot number."""

    def _eval_evalf(self, prec: int) -> sympy.Expr | None:
        if not all(argument.is_number for argument in self.args):
            return None
        return self._eval_rewrite_as_exp(*self.args)._evalf(prec)


class sigmoid(_Ours):
    """1/(1 + exp(-x))"""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        x = self.args[0]
        return sigmoid(x) * sigmoid(-x)

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        return sympy.S.Half if x.is_zero else None

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_exp(self, x: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return 1 / (1 + sympy.exp(-x))


class softplus(_Ours):
    """log(1 + exp(x))"""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sigmoid(self.args[0])

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_exp(self, x: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.log(1 + sympy.exp(x))


class relu(_Ours):
    """max(x, 0); its derivative at 0 is 0, as in PyTorch."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.Heaviside(self.args[0], 0)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_exp(self, x: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.Max(x, 0)


class logaddexp(_Ours):
    """log(exp(a) + exp(b))"""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        a, b = self.args
        return sigmoid(a - b) if argindex == 1 else sigmoid(b - a)

    def _eval_is_real(self) -> bool | None:
        return all(arg.is_real for arg in self.args) or None

    def _eval_rewrite_as_exp(self, a: sympy.Expr, b: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.log(sympy.exp(a) + sympy.exp(b))


class xlogy(_Ours):
    """x*log(y), and 0 where x is 0."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        x, y = self.args
        return sympy.log(y) if argindex == 1 else x / y

    def _eval_is_real(self) -> bool | None:
        x, y = self.args
        return (x.is_real and y.is_positive) or None

    def _eval_rewrite_as_exp(self, x: sympy.Expr, y: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return x * sympy.log(y)


class hypot(_Ours):
    """sqrt(x**2 + y**2) without overflow or underflow in between."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return self.args[argindex - 1] / hypot(*self.args)

    def _eval_is_real(self) -> bool | None:
        return all(arg.is_real for arg in self.args) or None

    def _eval_rewrite_as_exp(self, x: sympy.Expr, y: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.sqrt(x**2 + y**2)


class erfc(_Ours):
    """1 - erf(x), kept as written: sympy's own erfc turns erfc(-x) into
    2 - erfc(x), the cancellation this function exists to avoid."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        x = self.args[0]
        return -2 * sympy.exp(-(x**2)) / sympy.sqrt(sympy.pi)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_exp(self, x: sympy.Expr, **kwargs: object) -> sympy.Expr:
        return sympy.erfc(x)


class guarded(sympy.Function):
    """guarded(x, safe, condition): x where condition holds, else safe. An opaque
    where(): sympy would fold sqrt(where(c, x, 1)) into where(c, sqrt(x), 1),
    which is the NaN-gradient trap the guard exists to avoid."""

    nargs = 3

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real


class held(sympy.Function):
    """held(e) is e, computed as its own operation: sympy would fold
    (a/b)/b into a/b**2, whose b**2 overflows where the two divisions do not.
    Derivatives in autograd's order of operations hold their intermediates."""

    nargs = 1

    @classmethod
    def eval(cls, arg: sympy.Expr) -> sympy.Expr | None:
        # Nothing to hold in an atom or a call (a CSE temporary replacing what
        # was held included): held(t0) is t0.
        if arg.is_Atom or isinstance(arg, sympy.Function):
            return arg
        return None

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.S.One

    def _sympystr(self, printer) -> str:
        return f"({printer._print(self.args[0])})"


def printed_fraction(
    product: sympy.Mul,
) -> tuple[tuple[sympy.Expr, ...], tuple[tuple[sympy.Expr, sympy.Expr], ...]]:
    """A product as the printer writes it: the numerator's factors, then the
    denominator's as (b, k) for each factor b**-k (written /b**k), both in
    sympy's printing order. No denominator: no division."""
    numerator, denominator = [], []
    for factor in product.as_ordered_factors():
        if factor.is_Pow and factor.exp.is_Number and factor.exp < 0:
            denominator.append((factor.base, -factor.exp))
        else:
            numerator.append(factor)
    return tuple(numerator), tuple(denominator)


def unheld(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with every held(e) replaced by e: the formula as mathematics."""
    return expr.replace(lambda e: isinstance(e, held), lambda e: e.args[0])


def exact_ones(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with each float one (the user's 0.5 times a 2) an exact one, so
    that no factor 1.0 is left: k*x, not 1.0*k*x (multiplying by 1 is exact)."""
    return expr.xreplace({f: sympy.Integer(int(f)) for f in expr.atoms(sympy.Float) if abs(float(f)) == 1.0})


def math_text(expr: sympy.Expr) -> str:
    """`expr` written as mathematics for docstrings: held order dropped, float
    ones exact."""
    return sympy.sstr(exact_ones(unheld(expr)))


def hold(expr: sympy.Expr) -> sympy.Expr:
    """`expr` as an operation of its own where sympy could merge it into another
    (atoms, numbers, calls and what is already held need no holding)."""
    if expr.is_Atom or expr.is_number or isinstance(expr, sympy.Function):
        return expr
    if expr.is_Mul and len(expr.args) == 2 and expr.args[0] == -1:
        return -hold(expr.args[1])  # negation is exact
    return held(expr)


_OURS = (sigmoid, softplus, relu, logaddexp, xlogy, hypot, erfc)


def elementary(expr: sympy.Expr) -> sympy.Expr:
    """`expr` in sympy's own functions only, for evaluation by sympy/mpmath."""
    expr = expr.replace(lambda e: isinstance(e, (guarded, held)), lambda e: e.args[0])
    expr = expr.replace(
        lambda e: isinstance(e, _OURS), lambda e: e._eval_rewrite_as_exp(*e.args)
    )
    return expr.replace(
        lambda e: isinstance(e, (log1p, expm1)), lambda e: e.expand(func=True)
    )
