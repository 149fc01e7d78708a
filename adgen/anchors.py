"""Anchor values for the generated test: the op's value and first derivatives at
a few points, computed at emit time with mpmath (through sympy's evalf) from the
parsed expression.

The generated test's `reference()` is printed by the same printer from the same
parse as the op, so a printer bug they share passes it. The anchors share
neither: adgen's own functions are rewritten into sympy's elementary ones
(`elementary`), so `sympy.diff` uses sympy's rules and not adgen's `fdiff`, and
the numbers come from mpmath, not from torch.

The value itself comes from a second reading that shares nothing with the
parser either: `text_value` walks Python's `ast` of the user's text with its own
table of textbook definitions in mpmath (`_DEFINITIONS`). So a parser that maps
a name to the wrong function (`maximum` to Min) makes an op whose value misses
its anchors, although its `reference()` makes the same mistake.

Each anchor also carries an error scale for each number, in units of float64's
eps: a first-order bound on the rounding error of evaluating the formula as
written (`_evaluate`) plus its conditioning. The test allows a fixed
multiple of eps times that scale.
"""

from __future__ import annotations

import ast
import itertools
import math
from collections.abc import Callable, Mapping
import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import mpmath
import sympy

from .derive import OpModel
from .domain import Domain
from .functions import elementary

# Where in each input's interval the anchors sit: fractions of the interval
# that are no simple number, so that no anchor falls on a kink of where(),
# abs, max ... (which sit at round numbers such as 0 or 1). Input i starts at
# the i-th fraction, so that two inputs with one interval differ (max(x, y)).
_FRACTIONS = (0.2317, 0.5743, 0.8129, 0.3871, 0.6954, 0.1139, 0.9061)
ANCHOR_COUNT = 3
_DIGITS = 30  # mpmath precision; float64 needs 17
_LARGEST = sympy.Float("1e300")  # beyond this a float64 evaluation would overflow
# Rounding error of one call of a library function (torch.sin, torch.lgamma ...)
# in float64, in epsilons of its result: the common ones are within 1-2.
_LIBRARY_ULPS = 4
# Except torch's polygamma kernels, measured against mpmath on [0.05, 3] in
# float64: digamma is off by up to 880 eps (near its root), trigamma by 2.2e6.
_DIGAMMA_ULPS = 2**10
_POLYGAMMA_ULPS = 2**23
# Expressions larger than this (in sympy operations, after differentiation)
# get no anchors: evalf of each node costs time, and a 300-operation input's
# second derivatives are large. The other generated tests still cover them.
_MAX_OPERATIONS = 4000


@dataclass(frozen=True)
class Anchor:
    """The op's value and gradient at one point, with an error scale for each."""

    point: tuple[float, ...]  # (0.3172, -1.0743): one exact float per input
    values: tuple[float, ...]  # (f, ∂f/∂x, ∂f/∂y) at the point, correctly rounded
    scales: tuple[float, ...]  # error scale of each value, in eps (see _anchor_at)


def anchors(
    model: OpModel, domains: tuple[Domain, ...], param_values: dict[str, float]
) -> tuple[Anchor, ...]:
    """Up to ANCHOR_COUNT anchors inside `domains`, with params at `param_values`
    (the values the generated test passes). Points where the value or a
    derivative is not a finite real number are skipped; none found, none given."""
    try:
        return _anchors(model, domains, param_values)
    except (ArithmeticError, ValueError, TypeError, RecursionError, NotImplementedError):
        return ()  # an expression sympy cannot evaluate: the other tests remain


AnyAnchor = TypeVar("AnyAnchor")  # Anchor, DirectionalAnchor


def output_anchors(
    model: OpModel,
    domains: tuple[Domain, ...],
    param_values: dict[str, float],
    of_one: Callable[[OpModel, tuple[Domain, ...], dict[str, float]], tuple[AnyAnchor, ...]] = anchors,
) -> tuple[tuple[AnyAnchor, ...], ...]:
    """`anchors` (or `of_one`, directional_anchors) of each output of an op
    with several, from that output's reference formula and its own text (the
    item of the top-level tuple)."""
    items = ast.parse(model.text, mode="eval").body.elts  # parsed, never evaluated
    texts = [ast.get_source_segment(model.text, item) or "" for item in items]
    return tuple(of_one(_output(model, k, texts[k]), domains, param_values) for k in range(len(texts)))


def _output(model: OpModel, k: int, text: str) -> OpModel:
    """Output k of an op with several, as an op of its own: its text, formulas,
    table entries and forward."""
    tables = model.partials
    mine = [(e, out) for e, out in zip(tables.entries, tables.outputs) if e.output == k]
    partials = dataclasses.replace(
        tables,
        entries=tuple(dataclasses.replace(e, output=0) for e, _ in mine),
        outputs=tuple(out for _, out in mine),
        by_index=tables.by_output[k],
        by_output=(),
    )
    op = model.functions[0]
    forward = dataclasses.replace(op.forward, outputs=(op.forward.outputs[k],))
    return dataclasses.replace(
        model,
        text=text,
        reference=model.references[k],
        expr=model.exprs[k],
        partials=partials,
        functions=(dataclasses.replace(op, forward=forward), *model.functions[1:]),
    )


def _anchors(
    model: OpModel, domains: tuple[Domain, ...], param_values: dict[str, float]
) -> tuple[Anchor, ...]:
    symbols = [sympy.Symbol(name, real=True) for name in model.inputs]
    params = {
        sympy.Symbol(name, real=True): sympy.Float(value, _DIGITS)
        for name, value in param_values.items()
    }
    f = _almost_everywhere(elementary(model.reference)).xreplace(params)
    gradient = [_derivative(f, s) for s in symbols]
    # The conditioning of each number: its derivatives by every input.
    hessian = [[_derivative(g, s) for s in symbols] for g in [f, *gradient]]
    if sum(sympy.count_ops(e) for row in hessian for e in row) > _MAX_OPERATIONS:
        return ()
    ordered = _ordered(model, domains)
    found: list[Anchor] = []
    for k in range(len(_FRACTIONS)):
        if len(found) == ANCHOR_COUNT:
            break
        point = _point(ordered, k)
        # Binary floats at _DIGITS digits hold each input exactly. (Exact
        # rationals would too, but x**1024**2 of one has millions of digits.)
        exact = {s: sympy.Float(x, _DIGITS) for s, x in zip(symbols, point)}
        anchor = _anchor_at(point, exact, [f, *gradient], hessian)
        value = text_value(model.text, {**dict(zip(model.inputs, point)), **param_values})
        if anchor is not None and value is not None:
            found.append(Anchor(anchor.point, (value, *anchor.values[1:]), anchor.scales))
    return tuple(found)


@dataclass(frozen=True)
class DirectionalAnchor:
    """The op's value and first three derivatives along `direction` at one
    point and one setting of its parameters, with an error scale for each."""

    params: tuple[tuple[str, float], ...]  # (("beta", 1.5),): the parameters there
    point: tuple[float, ...]  # (0.0083844,): one exact float per input
    values: tuple[float, ...]  # f(p + t·v) and its t-derivatives 1 to 3 at t = 0
    scales: tuple[float, ...]  # error scale of each value, in eps (as Anchor's)


def direction(count: int) -> tuple[float, ...]:
    """The direction v of the directional derivatives, one component per input:
    1, -0.9375, 0.875, ... (exact binary fractions, no two alike, so that no
    mixed partial drops out of the sum)."""
    return tuple((-1) ** i * (16 - i % 8) / 16 / 2 ** (i // 8) for i in range(count))


# Near-zero points: each input whose interval holds 0 at its own fraction of
# these, on the side of 0 its first anchor is on. 2**-24 is inside every series
# regime (select.REGIME_THRESHOLDS reach down to 2**-20), where a series' first
# terms dominate; 2**-7 inside the wider ones, where its later ones count.
_NEAR_ZERO = (2.0**-7, 2.0**-24)
_MOST_DIGITS = 400  # past this a cancellation is left unresolved: no anchor there


def directional_anchors(
    model: OpModel, domains: tuple[Domain, ...], param_values: dict[str, float]
) -> tuple[DirectionalAnchor, ...]:
    """Value and derivatives to the third along `direction` where the op's
    other tests do not look: at points near 0, where the op may use a Taylor
    series in place of a formula that cancels there; and, for an op with
    parameters, at other values of them (`other_parameters`), which the
    series' coefficients must follow. The values are sympy's derivatives of
    the expression as written (its elementary functions), evaluated with
    mpmath at as many digits as they cancel; the error scales are the rounding
    bounds of the op's own formulas (the forms adgen chose, series included).
    None where the expression is too large."""
    try:
        return _directional_anchors(model, domains, param_values)
    except (ArithmeticError, ValueError, TypeError, RecursionError, NotImplementedError):
        return ()


def other_parameters(param_values: dict[str, float]) -> dict[str, float]:
    """Parameters moved from the values the tests use: ×1.5 (0.5 for 0)."""
    return {name: value * 1.5 if value else 0.5 for name, value in param_values.items()}


def _directional_anchors(
    model: OpModel, domains: tuple[Domain, ...], param_values: dict[str, float]
) -> tuple[DirectionalAnchor, ...]:
    ordered = _ordered(model, domains)
    start = _point(ordered, 0)  # the first anchor's
    points = _near_zero_points(ordered, start)
    settings = [(param_values, points)] if points else []
    if param_values:
        settings.append((other_parameters(param_values), points or [start]))
    if not settings:
        return ()
    symbols = [sympy.Symbol(name, real=True) for name in model.inputs]
    v = [sympy.Float(c) for c in direction(len(symbols))]
    truths = _along(_almost_everywhere(elementary(model.reference)), symbols, v)
    if truths is None:
        return ()
    ours = _as_the_op_computes(model, symbols, v)
    found = []
    for params, at in settings:
        values = {sympy.Symbol(n, real=True): sympy.Float(x, _DIGITS) for n, x in params.items()}
        formulas = [g.xreplace(values) for g in truths]
        bounded = [g.xreplace(values) for g in ours]
        for point in at:
            anchor = _precise_anchor_at(point, symbols, formulas, bounded)
            if anchor is not None:
                found.append(DirectionalAnchor(tuple(params.items()), point, anchor.values, anchor.scales))
    return tuple(found)


def _ordered(model: OpModel, domains: tuple[Domain, ...]) -> list[Domain]:
    """The inputs' intervals, in the inputs' order."""
    by_name = {d.name: d for d in domains}
    return [by_name[name] for name in model.inputs]


def _point(ordered: list[Domain], k: int) -> tuple[float, ...]:
    """The k-th anchor point: input i at fraction k + i of its interval."""
    return tuple(_inside(d, _FRACTIONS[(k + i) % len(_FRACTIONS)]) for i, d in enumerate(ordered))


def _near_zero_points(ordered: list[Domain], start: tuple[float, ...]) -> list[tuple[float, ...]]:
    """For each of _NEAR_ZERO, `start` (the first anchor's point) with its
    inputs whose interval holds 0 moved near 0, on their side of it; none where
    no interval holds 0."""
    if not any(d.low <= 0 <= d.high for d in ordered):
        return []
    points = []
    for scale in _NEAR_ZERO:
        point = []
        for i, (d, x) in enumerate(zip(ordered, start)):
            if d.low <= 0 <= d.high:
                near = math.copysign(float(f"{_FRACTIONS[i % len(_FRACTIONS)] * scale:.5g}"), x)
                x = min(max(near, d.low), d.high)
            point.append(x)
        points.append(tuple(point))
    return points


def _along(f: sympy.Expr, symbols: list[sympy.Symbol], v: list[sympy.Float]) -> list[sympy.Expr] | None:
    """h(t) = f(x + t*v) and its first three t-derivatives at t = 0: one
    derivative per order, where Σ v_i ∂/∂x_i would take one per input. None
    where they grow past _MAX_OPERATIONS."""
    t = sympy.Dummy("t", real=True)
    h = f.xreplace({s: s + c * t for s, c in zip(symbols, v)})
    formulas = [f]
    for _ in range(3):
        h = _derivative(h, t)
        formulas.append(h.xreplace({t: 0}))
        if sympy.count_ops(formulas[-1]) > _MAX_OPERATIONS:
            return None
    return formulas


def _as_the_op_computes(
    model: OpModel, symbols: list[sympy.Symbol], v: list[sympy.Float]
) -> list[sympy.Expr]:
    """h and its three derivatives from the op's own formulas: its forward's
    value, then Σ f_i·v_i, Σ f_ij·v_i·v_j ... over its table entries (a partial that is no entry is a
    number: from the expression as written). Evaluated for the error scales."""
    tables = model.partials
    entries = {e.name: e.formula for e in tables.entries}
    written: dict[tuple[int, ...], sympy.Expr] = {(): _almost_everywhere(elementary(model.reference))}

    def as_written(index: tuple[int, ...]) -> sympy.Expr:  # each derivative taken once
        if index not in written:
            written[index] = _derivative(as_written(index[:-1]), symbols[index[-1]])
        return written[index]

    def partial(index: tuple[int, ...]) -> sympy.Expr:
        name = tables.by_index.get(index)
        return _almost_everywhere(elementary(entries[name])) if name else as_written(index)

    formulas = [_almost_everywhere(elementary(_forward_value(model)))]
    for order in (1, 2, 3):
        terms = []
        for index in itertools.combinations_with_replacement(range(len(symbols)), order):
            ways = math.factorial(order) // math.prod(math.factorial(index.count(i)) for i in set(index))
            terms.append(ways * partial(index) * sympy.Mul(*(v[i] for i in index)))
        formulas.append(sympy.Add(*terms))
    return formulas


def _forward_value(model: OpModel) -> sympy.Expr:
    """The op's (first) output as its forward computes it: the form adgen chose
    (a series near 0 included), its temporaries written back in."""
    forward = model.functions[0].forward
    value = forward.outputs[0]
    for name, temporary in reversed(forward.temporaries):
        value = value.xreplace({sympy.Symbol(name, real=True): temporary})
    return value


def _precise_anchor_at(
    point: tuple[float, ...],
    symbols: list[sympy.Symbol],
    formulas: list[sympy.Expr],
    bounded: list[sympy.Expr],
) -> Anchor | None:
    """The values of `formulas` at as many digits as their cancellation takes
    (a value's error bound over the value says how many of the working digits
    cancel: the third derivative of tanh(a*x)/x at x = 1e-7 cancels terms of
    1e28), each with the rounding bound of the matching formula of `bounded`
    as its scale (that of `formulas`, where one of `bounded` cannot be
    evaluated). No conditioning: the inputs are exact."""
    digits = _DIGITS
    while digits <= _MOST_DIGITS:
        exact = {s: sympy.Float(x, digits) for s, x in zip(symbols, point)}
        memo: dict = {}
        evaluated = [_evaluate(g, exact, memo, digits) for g in formulas]
        if any(e is None for e in evaluated):
            return None
        needed = max(_digits_needed(value, error, digits) for value, error in evaluated)
        if needed <= digits:
            break
        digits = needed
    else:
        return None
    at = {s: sympy.Float(x, _DIGITS) for s, x in zip(symbols, point)}
    ours: dict = {}
    values, scales = [], []
    for (value, rounding), formula in zip(evaluated, bounded):
        if abs(value) > _LARGEST:
            return None
        if _cancelled(value, rounding, digits):
            value = sympy.S.Zero
        op = _evaluate(formula, at, ours)
        values.append(float(value))
        scales.append(float(rounding if op is None else op[1]))
    return Anchor(point=point, values=tuple(values), scales=tuple(scales))


def _digits_needed(value: sympy.Float, error: sympy.Float, digits: int) -> int:
    """The working digits that leave _DIGITS of `value` after cancellation.
    Past the first escalation, a value still below what the working digits
    resolve of its terms is 0 (sin(x)**2 + cos(x)**2 - 1 cancels at every
    precision): those digits are enough."""
    if not error:
        return _DIGITS
    if digits > _DIGITS and _cancelled(value, error, digits):
        return digits
    if not value:
        return 2 * digits
    return _DIGITS + max(0, math.ceil(math.log10(float(error / abs(value)))))


def _cancelled(value: sympy.Float, rounding: sympy.Float, digits: int) -> bool:
    """Whether `value`, worked out at `digits` digits, is noise far below any
    float64 rounding of its terms (`rounding`, in eps): a cancellation such as
    sin(x)**2 + cos(x)**2 - 1, whose value is 0."""
    return abs(value) < rounding * sympy.Float(10) ** (8 - digits)


def _inside(domain: Domain, fraction: float) -> float:
    """A float with a short decimal spelling (the test file shows it); the
    anchor is computed at exactly that float."""
    point = float(f"{domain.low + fraction * (domain.high - domain.low):.5g}")
    return min(max(point, domain.low), domain.high)


def _derivative(expr: sympy.Expr, symbol: sympy.Symbol) -> sympy.Expr:
    return _almost_everywhere(sympy.diff(expr, symbol))


def _almost_everywhere(expr: sympy.Expr) -> sympy.Expr:
    """Derivatives as PyTorch takes them: the Dirac delta of a step is zero."""
    return expr.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)


def _anchor_at(
    point: tuple[float, ...],
    exact: dict[sympy.Symbol, sympy.Float],
    formulas: list[sympy.Expr],
    hessian: list[list[sympy.Expr]],
) -> Anchor | None:
    values = []
    scales = []
    # The formulas are derivatives of one f: most of their nodes are shared.
    memo: dict[sympy.Basic, tuple[sympy.Float, sympy.Float]] = {}
    for formula, row in zip(formulas, hessian):
        evaluated = _evaluate(formula, exact, memo)
        slopes = [_evaluate(h, exact, memo) for h in row]
        if evaluated is None or any(s is None for s in slopes):
            return None
        value, rounding = evaluated
        if abs(value) > _LARGEST:
            return None
        # Rounding an input x by one epsilon moves the result by |x·∂g/∂x|·eps:
        # the condition of the number, which no float64 evaluation escapes.
        conditioning = sum(abs(x * s) for x, (s, _) in zip(point, slopes))
        scales.append(float(rounding + conditioning))
        if _cancelled(value, rounding, _DIGITS):
            value = sympy.S.Zero
        values.append(float(value))
    return Anchor(point=point, values=tuple(values), scales=tuple(scales))


def _evaluate(
    expr: sympy.Expr,
    point: dict[sympy.Symbol, sympy.Float],
    memo: dict[sympy.Basic, tuple[sympy.Float, sympy.Float]] | None = None,
    digits: int = _DIGITS,
) -> tuple[sympy.Float, sympy.Float] | None:
    """The value of `expr` at `point` (exact inputs), node by node
    at `digits` digits (sympy's adaptive evalf can take minutes on a large
    expression whose value cancels to 0), and a first-order bound, in units of
    eps, on the rounding error of evaluating it in float64 as written: each
    operation rounds its result by one eps, each library function by
    _LIBRARY_ULPS, and errors in an argument propagate by the local
    derivative. Cancellation shows: sin(x)**2 + cos(x)**2 - 1 is 0, but its
    terms are of size 1, and so is its bound. None where a node cannot be
    evaluated (the point is then not used). `memo` holds the nodes already
    evaluated at this `point` (by other formulas)."""
    memo = {} if memo is None else memo

    def visit(node: sympy.Expr) -> tuple[sympy.Float, sympy.Float]:
        if node in memo:
            return memo[node]
        if isinstance(node, sympy.Piecewise):  # the branch taken, as torch.where
            conditions = [pair.cond.xreplace(point) for pair in node.args]
            if any(c not in (sympy.true, sympy.false) for c in conditions):
                raise _NotANumber(node)  # a condition the numbers did not decide
            result = visit(node.args[conditions.index(sympy.true)].expr)
        elif node in point:
            result = (point[node], sympy.S.Zero)  # an input: exact
        elif node.is_Atom:
            value = _float(node, digits)
            result = (value, sympy.S.Zero if _is_float64(node) else abs(value))
        else:
            parts = [visit(arg) for arg in node.args]
            values = [v for v, _ in parts]
            errors = [e for _, e in parts]
            if node.is_Add:
                value = _float(sympy.Add(*values), digits)
                error = sum(errors) + sum(abs(v) for v in values)
            elif node.is_Mul:
                value = _float(sympy.Mul(*values), digits)
                error = len(values) * abs(value)
                for i, e in enumerate(errors):
                    others = sympy.Mul(*(v for j, v in enumerate(values) if j != i))
                    error += e * abs(others)
            elif node.is_Pow:
                (base, exponent), (e_base, e_exponent) = values, errors
                value = _float(base**exponent, digits)
                error = abs(value) + e_base * abs(_float(exponent * base ** (exponent - 1), digits))
                if e_exponent:
                    error += e_exponent * abs(value * _float(sympy.log(abs(base)), digits))
            else:  # sin, erf, Max, Heaviside ...: one call of a library function
                value = _float(node.func(*values), digits)
                call = node.func(*values, evaluate=False)  # for its derivative
                error = _library_ulps(call) * abs(value)
                for i, e in enumerate(errors, start=1):
                    if e:
                        error += e * abs(_float(_almost_everywhere(call.fdiff(i)), digits))
            result = (value, error)
        memo[node] = result
        return result

    try:
        return visit(expr)
    except (_NotANumber, ArithmeticError, ValueError, TypeError, AttributeError, IndexError):
        return None


def _library_ulps(call: sympy.Expr) -> int:
    if isinstance(call, sympy.polygamma):
        return _DIGAMMA_ULPS if call.args[0].is_zero else _POLYGAMMA_ULPS
    return _LIBRARY_ULPS


def _is_float64(number: sympy.Expr) -> bool:
    """Whether a number is exactly a float64 (the parameters, 0.5, 3)."""
    if not (number.is_Rational or number.is_Float) or not number.is_finite:
        return False
    return sympy.Rational(float(number)) == sympy.Rational(number)


class _NotANumber(Exception):
    pass


def _float(expr: sympy.Expr, digits: int = _DIGITS) -> sympy.Float:
    value = sympy.N(expr, digits)
    if not (value.is_number and value.is_real and value.is_finite):
        raise _NotANumber(expr)
    return sympy.Float(value, digits)


# -- the value, read from the text itself -------------------------------------

def _sigmoid(x: mpmath.mpf) -> mpmath.mpf:
    return 1 / (1 + mpmath.exp(-x))


def _xlogy(x: mpmath.mpf, y: mpmath.mpf) -> mpmath.mpf:
    return mpmath.mpf(0) if x == 0 else x * mpmath.log(y)


# Every function of the expression language, by its textbook definition; kept
# apart from the registry on purpose (a test checks that it covers every name).
_DEFINITIONS: dict[str, Callable[..., mpmath.mpf]] = {
    "sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan,
    "asin": mpmath.asin, "acos": mpmath.acos, "atan": mpmath.atan,
    "atan2": mpmath.atan2,
    "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh,
    "asinh": mpmath.asinh, "acosh": mpmath.acosh, "atanh": mpmath.atanh,
    "exp": mpmath.exp, "log": mpmath.log, "sqrt": mpmath.sqrt,
    "abs": abs, "Abs": abs,
    "erf": mpmath.erf, "erfc": mpmath.erfc, "erfinv": mpmath.erfinv,
    "loggamma": mpmath.loggamma, "lgamma": mpmath.loggamma, "digamma": mpmath.digamma,
    "sigmoid": _sigmoid,
    "softplus": lambda x: mpmath.log(1 + mpmath.exp(x)),
    "relu": lambda x: max(x, mpmath.mpf(0)),
    "log1p": lambda x: mpmath.log(1 + x),
    "expm1": lambda x: mpmath.exp(x) - 1,
    "logaddexp": lambda a, b: mpmath.log(mpmath.exp(a) + mpmath.exp(b)),
    "xlogy": _xlogy,
    "hypot": lambda x, y: mpmath.sqrt(x * x + y * y),
    "sign": mpmath.sign,
    "heaviside": lambda x: mpmath.mpf(1 if x > 0 else 0),
    "Heaviside": lambda x: mpmath.mpf(1 if x > 0 else 0),
    "max": max, "Max": max, "maximum": max,
    "min": min, "Min": min, "minimum": min,
}
_CONSTANTS = {"pi": mpmath.pi, "e": mpmath.e, "E": mpmath.e}
_OPERATORS: dict[type, Callable[[mpmath.mpf, mpmath.mpf], mpmath.mpf]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARISONS: dict[type, Callable[[mpmath.mpf, mpmath.mpf], bool]] = {
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
}


def text_value(text: str, values: Mapping[str, float]) -> float | None:
    """The expression `text` at `values` (every symbol's value), evaluated from
    its `ast` at _DIGITS digits; None where it is not a finite real number.
    Nothing is evaluated as Python: the walk knows numbers, names, operators,
    comparisons inside where(), and the functions of _DEFINITIONS."""
    try:
        with mpmath.workdps(_DIGITS):
            result = _value(ast.parse(text.strip(), mode="eval").body, values)
            if not isinstance(result, mpmath.mpf) or not mpmath.isfinite(result):
                return None
            number = float(result)
    except (ArithmeticError, ValueError, TypeError, KeyError, RecursionError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _value(node: ast.AST, values: Mapping[str, float]) -> mpmath.mpf:
    if isinstance(node, ast.Constant):
        return mpmath.mpf(node.value)  # exactly the float64 (or int) the op uses
    if isinstance(node, ast.Name):
        if node.id in values:
            return mpmath.mpf(values[node.id])
        return +_CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _value(node.operand, values)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_value(node.left, values), _value(node.right, values))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name == "where":
            condition, chosen, otherwise = node.args
            return _value(chosen if _holds(condition, values) else otherwise, values)
        return mpmath.mpf(_DEFINITIONS[name](*(_value(a, values) for a in node.args)))
    raise TypeError(f"no value for {ast.dump(node)}")


def _holds(node: ast.AST, values: Mapping[str, float]) -> bool:
    if not isinstance(node, ast.Compare):
        raise TypeError("where() needs a comparison")
    operands = [_value(node.left, values)] + [_value(c, values) for c in node.comparators]
    return all(
        _COMPARISONS[type(op)](a, b) for op, a, b in zip(node.ops, operands, operands[1:])
    )
