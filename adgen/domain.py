"""Where the generated test samples each input: `--domain`, else an interval found
by evaluating the expression and its gradient on a few candidate intervals.

The check is numeric and bounded (a fixed number of evaluations), so it never
stalls on a large expression the way symbolic domain analysis can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InputError

# sympy (and functions, which needs it) is imported inside the functions that
# probe formulas: a warm `adgen emit --domain ...` checks its bounds here and
# must not pay for sympy (issue #13).
if TYPE_CHECKING:
    import sympy

# Tried in order; the first on which the expression and its gradient are real
# and finite at every probe point wins.
CANDIDATE_INTERVALS: tuple[tuple[float, float], ...] = (
    (-2.0, 2.0),
    (-0.9, 0.9),
    (0.1, 2.0),
    (0.1, 0.9),
    (1.1, 3.0),
)
# Values beyond this at a probe point mean a singularity nearby (1/(x - 0.3)):
# the test's random points could land on it, so the interval is not used.
LARGEST_PROBED_VALUE = 1e6
PROBE_POINTS = 17  # per input; spaced over the interval, endpoints and centre included
# Value of a --param without default in the generated test.
PARAM_TEST_VALUE = 0.75
_STRIDES = (1, 3, 5, 7, 9, 11)  # coprime with PROBE_POINTS: each walk visits every point


@dataclass(frozen=True)
class Domain:
    """The interval the generated test draws one input from."""

    name: str  # "x"
    low: float  # -2.0
    high: float  # 2.0


def parse_domain(text: str) -> Domain:
    """`x=-1:2` -> Domain("x", -1.0, 2.0), or InputError naming what is wrong."""
    usage = f"`--domain` expects NAME=LO:HI, got {text!r}"
    name, equals, bounds = text.partition("=")
    low_text, colon, high_text = bounds.partition(":")
    if not equals or not colon or not name.strip():
        raise InputError(usage)
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise InputError(usage) from None
    return checked_domain(name.strip(), low, high, f"`--domain {text}`")


def checked_domain(name: str, low: float, high: float, where: str) -> Domain:
    """Domain(name, low, high), or InputError unless LO < HI, both finite."""
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"{where}: LO must be finite and less than HI")
    return Domain(name, low, high)


def choose_domains(
    expr: sympy.Expr,
    gradient: tuple[sympy.Expr, ...],
    inputs: tuple[str, ...],
    param_values: dict[str, float],
    given: tuple[Domain, ...],
) -> tuple[tuple[Domain, ...], tuple[str, ...]]:
    """One Domain per input, and warnings for inputs where no candidate worked."""
    by_name = {d.name: d for d in given}
    unknown = sorted(set(by_name) - set(inputs))
    if unknown:
        raise InputError(
            f"--domain names {unknown[0]!r}, which is not an input ({', '.join(inputs)})"
        )
    free = [n for n in inputs if n not in by_name]
    if not free:
        return tuple(by_name[n] for n in inputs), ()
    for low, high in CANDIDATE_INTERVALS:
        trial = dict(by_name)
        trial.update({n: Domain(n, low, high) for n in free})
        if _well_defined(expr, gradient, inputs, trial, param_values):
            return tuple(trial[n] for n in inputs), ()
    low, high = CANDIDATE_INTERVALS[0]
    chosen = dict(by_name)
    chosen.update({n: Domain(n, low, high) for n in free})
    warning = (
        f"could not find an interval where the expression is real and finite for "
        f"{', '.join(free)}; the generated test uses [{low}, {high}]: "
        f"pass --domain NAME=LO:HI"
    )
    return tuple(chosen[n] for n in inputs), (warning,)


def probe_values(domain: Domain, input_index: int) -> list[float]:
    """Probe points for one input; each input walks its grid with another stride so
    that multi-input expressions are probed at mixed, not only diagonal, points."""
    stride = _STRIDES[input_index % len(_STRIDES)]
    steps = PROBE_POINTS - 1
    return [
        domain.low + (domain.high - domain.low) * ((j * stride) % PROBE_POINTS) / steps
        for j in range(PROBE_POINTS)
    ]


def _poles(formulas: tuple[sympy.Expr, ...], name: str, params: dict[str, float]) -> list[float]:
    """Real points where a formula divides by zero or takes log(0), found exactly
    for the common case of a polynomial in one input (1/(x - 0.3), log(1 - x))."""
    import sympy

    from .functions import log1p

    symbol = sympy.Symbol(name, real=True)
    substitutions = {sympy.Symbol(n, real=True): v for n, v in params.items()}
    bases = set()
    for formula in formulas:
        for node in sympy.preorder_traversal(formula):
            if node.is_Pow and node.exp.is_negative:
                bases.add(node.base)
            elif isinstance(node, sympy.log):
                bases.add(node.args[0])
            elif isinstance(node, log1p):
                bases.add(node.args[0] + 1)
    poles = []
    for base in bases:
        base = base.subs(substitutions)
        if base.free_symbols != {symbol} or not base.is_polynomial(symbol):
            continue
        poles += _real_roots(base, symbol)
    return poles


def _real_roots(polynomial: sympy.Expr, symbol: sympy.Symbol) -> list[float]:
    """Real roots of a polynomial of low degree, numerically (coefficients such as
    pi defeat sympy's exact root isolation)."""
    import sympy

    try:
        poly = sympy.Poly(polynomial.evalf(20), symbol)
        if poly.degree() > 8:
            return []
        roots = poly.nroots(n=15)
    except (sympy.PolynomialError, NotImplementedError, ValueError, TypeError):
        return []
    return [float(sympy.re(r)) for r in roots if abs(sympy.im(r)) < 1e-12]


def _well_defined(
    expr: sympy.Expr,
    gradient: tuple[sympy.Expr, ...],
    inputs: tuple[str, ...],
    domains: dict[str, Domain],
    param_values: dict[str, float],
) -> bool:
    from .functions import elementary

    expr = elementary(expr)  # sympy evaluates its own functions, not sigmoid ...
    gradient = tuple(elementary(g) for g in gradient)
    for name in inputs:
        domain = domains[name]
        margin = 0.05 * (domain.high - domain.low)
        for pole in _poles((expr, *gradient), name, param_values):
            if domain.low - margin <= pole <= domain.high + margin:
                return False
    # Every formula's symbols: an output may use an input the first one does not.
    symbols = {s.name: s for f in (expr, *gradient) for s in f.free_symbols}
    columns = [probe_values(domains[n], i) for i, n in enumerate(inputs)]
    for point in zip(*columns):
        values = {symbols[n]: v for n, v in zip(inputs, point) if n in symbols}
        values.update({symbols[n]: v for n, v in param_values.items() if n in symbols})
        for formula in (expr, *gradient):
            try:
                # subs before evalf: evalf(subs=...) hides 1/(x - 0.5) at x=0.5
                # behind a tiny nonzero value from its cancellation handling.
                number = formula.subs(values).evalf(15)
            except (ArithmeticError, ValueError):  # mpmath raises on 1/0
                return False
            if not (number.is_number and number.is_real and number.is_finite):
                return False
            try:
                magnitude = float(abs(number))
            except TypeError:  # Heaviside(zoo, 0): sympy cannot say what it is
                return False
            if magnitude > LARGEST_PROBED_VALUE:
                return False
    return True
