"""Error of a formula as torch would compute it, in bits, at sampled points.

The selection stage (select.py) compares equivalent formulas by this measure,
the one Herbie uses: sample points (partly uniform over the floats' bit
patterns, so 1e-30 and 1e30 are as likely as 0.5; see sample_points), evaluate
each formula operation by operation with float32 or float64 rounding, and count
how many floats lie between the result and the truth (mpmath at 256 bits, more
where a sum cancels): bits = log2(1 + that count), averaged over the points.

No torch here (the generator must not need it): arithmetic is Python floats,
rounded to float32 after each operation for the float32 measure (a float64
operation on float32 operands, rounded once, is the float32 operation). Library
functions (exp, sigmoid, ...) are evaluated correctly rounded with mpmath, as a
good libm nearly is (softplus as torch's kernel, which is x above 20), so a
formula's error is its own, not the library's, and the measure is the same on
every machine.
"""

from __future__ import annotations

import array
import functools
import math
import operator
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import sympy

from . import functions

FLOAT32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
JOINT_SHARE = 8  # one point in this many draws every input far out together
SAMPLE_SIZE = 128  # Herbie uses 256; half keeps emit time reasonable
ORDINARY = 10.0  # a good part of the sample lies in [-10, 10]
MODERATE_OCTAVES = (-4.0, 10.0)
SEED = 20261126
TRUTH_BITS = 256
_LIBRARY_BITS = 64  # a library function's working precision before it rounds


class Unmeasurable(Exception):
    """A formula holds a node the evaluator has no definition for (an
    unevaluated Derivative, cot): selection leaves such a formula as it is."""


@dataclass(frozen=True)
class Sample:
    """Points at which formulas are compared: each input's values, one per point
    (float32 numbers, except float64's own tails, which only the float64
    measure uses: one truth serves both dtypes)."""

    inputs: tuple[str, ...]  # ("x", "y")
    columns: tuple[tuple[float, ...], ...]  # columns[i][k]: input i at point k
    params: tuple[tuple[str, float], ...]  # (("alpha", 0.5),): parameter values

    @functools.cached_property
    def in_float32(self) -> tuple[bool, ...]:
        """Whether float32 holds every input of each point exactly."""
        return tuple(
            all(_round32(c[k]) == c[k] for c in self.columns) for k in range(self.size)
        )

    @property
    def size(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def point(self, k: int) -> dict[str, float]:
        values = {name: column[k] for name, column in zip(self.inputs, self.columns)}
        return {**dict(self.params), **values}

    @functools.cached_property
    def floats(self) -> tuple[dict[str, float], ...]:
        """Each point as {name: value}, made once: every formula measured on the
        sample is evaluated on these (the evaluator only reads them)."""
        return tuple(self.point(k) for k in range(self.size))

    @functools.cached_property
    def exact(self) -> tuple[dict[str, mpmath.mpf], ...]:
        """Each point in mpmath numbers (floats convert exactly), for the truth."""
        return tuple({n: mpmath.mpf(v) for n, v in point.items()} for point in self.floats)


def sample_points(
    inputs: Sequence[str],
    domains: dict[str, tuple[float, float]],
    params: dict[str, float],
    size: int = SAMPLE_SIZE,
    seed: int = SEED,
) -> Sample:
    """`size` points, each input drawn independently: some uniform over the bit
    patterns of all float32 numbers (tails, overflow, underflow, tiny values:
    Herbie's sample), as many over those of all float64 numbers (for the float64
    measure only: the float32 one skips points float32 cannot hold), some at
    moderate magnitudes (2**-4 to 2**10, where exp overflows and activations
    saturate), and the rest uniform over [-ORDINARY, ORDINARY] widened to the
    input's `domains` interval where one is given (and then some by bit pattern
    inside it). Plus the interval's ends, +-1 and 0. Then, with several inputs,
    one point in JOINT_SHARE draws them all by bit pattern together. Points where
    the formula is not real drop out when the truth is computed."""
    rng = random.Random(seed)
    columns = []
    specials = []  # each input's interval ends, +-1 and 0
    bounds = []  # each input's interval, rounded inward to float32
    first, last = _ordinal32(-FLOAT32_MAX), _ordinal32(FLOAT32_MAX)
    for name in inputs:
        low, high = domains.get(name, (-ORDINARY, ORDINARY))
        low, high = _round32_up(max(low, -FLOAT32_MAX)), _round32_down(min(high, FLOAT32_MAX))
        special = [v for v in (low, high, 1.0, -1.0, 0.0) if low <= v <= high]
        values = [_round32(v) for v in special]
        specials.append(set(values))
        bounds.append((low, high))
        tails = (size - len(values)) * 3 // 16
        values += [_from_ordinal32(rng.randint(first, last)) for _ in range(tails)]
        # float64's own tails (1e-300, 1e300): only the float64 measure sees them.
        values += [_from_ordinal64(rng.randint(-_ORDINAL64_MAX, _ORDINAL64_MAX)) for _ in range(tails)]
        # Moderate magnitudes, 2**-4 to 2**10 of either sign, where exp overflows
        # (88 in float32, 709 in float64) and activations saturate: a bit-pattern
        # sample puts a point in this band once in a hundred.
        moderate = (size - len(values)) * 2 // 5
        values += [
            _round32(rng.choice((-1.0, 1.0)) * 2.0 ** rng.uniform(*MODERATE_OCTAVES))
            for _ in range(moderate)
        ]
        if name in domains:  # a given interval may span many octaves: some by bit pattern
            inside = (size - len(values)) // 3
            values += [
                _from_ordinal32(rng.randint(_ordinal32(low), _ordinal32(high)))
                for _ in range(inside)
            ]
        # The ordinary range also covers [-ORDINARY, ORDINARY] beyond a narrow given
        # interval: a test interval of [-2, 2] does not make x = 5 unimportant.
        near_low, near_high = min(low, -ORDINARY), max(high, ORDINARY)
        values += [_round32(rng.uniform(near_low, near_high)) for _ in range(size - len(values))]
        rng.shuffle(values)
        columns.append(values)
    # Joint tails: the columns above are shuffled independently, so a point
    # with every input far out (x tiny and sin(y) tiny in sin(y)/x, where
    # sin(y)/x**2 underflows) is rare. Some points draw every input by float64
    # bit pattern together (inside a given interval, by float32 bit pattern).
    # An interval's ends, +-1 and 0 stay where they are.
    if len(inputs) > 1:
        for index in rng.sample(range(size), size // JOINT_SHARE):
            for name, column, kept, (low, high) in zip(inputs, columns, specials, bounds):
                if column[index] in kept:
                    continue
                if name in domains:
                    column[index] = _from_ordinal32(rng.randint(_ordinal32(low), _ordinal32(high)))
                else:
                    column[index] = _from_ordinal64(rng.randint(-_ORDINAL64_MAX, _ORDINAL64_MAX))
    columns = [tuple(c) for c in columns]
    return Sample(tuple(inputs), tuple(columns), tuple(sorted(params.items())))


def truth(expr: sympy.Expr, sample: Sample, memo: dict | None = None) -> list[mpmath.mpf | None]:
    """`expr` at each point, correct to well beyond float64; None where it is not
    a finite real. Evaluated at TRUTH_BITS bits, and again at twice that (up to
    MOST_TRUTH_BITS) at each point where an addition cancelled more bits than
    the working precision can spare (1 - cos(1e-200), sqrt(1e300 + 1) - 1e150).
    `memo` shares subexpressions' values between formulas of one sample."""
    memo = {} if memo is None else memo
    environment = sample.exact
    with mpmath.workprec(TRUTH_BITS):
        values = _compile(expr, _TRUTH, memo.setdefault(TRUTH_BITS, {}))(environment)
    for k, value in enumerate(values):
        bits = TRUTH_BITS
        while value is LOST and bits < MOST_TRUTH_BITS:
            bits *= 2
            with mpmath.workprec(bits):
                point = memo.setdefault((k, bits), {})  # one point's memo at this precision
                value = _compile(expr, _TRUTH, point)([environment[k]])[0]
        values[k] = value
    return Truths(v if _finite_real(v) else None for v in values)


class Truths(list):
    """The truth at each point (None: no finite real value), with the truths as
    the floats of each dtype computed once for every formula measured against
    them (bits_of_error compares each formula's values with these)."""

    @functools.cached_property
    def ordinals(self) -> dict[str, list[int | None]]:
        return {
            "float32": _ordinals([None if t is None else float(t) for t in self], "float32"),
            "float64": _ordinals([None if t is None else float(t) for t in self], "float64"),
        }


def rounded_values(expr: sympy.Expr, sample: Sample, dtype: str, memo: dict) -> list[float | None]:
    """`expr` at each point as torch computes it in `dtype` ("float32" or
    "float64"): each operation rounded. `memo` shares subexpressions' values
    between the formulas measured on one sample (sympy nodes are hashable)."""
    arithmetic = _FLOAT32 if dtype == "float32" else _FLOAT64
    evaluate = _compile(expr, arithmetic, memo.setdefault(dtype, {}))
    values = evaluate(sample.floats)
    if dtype == "float32":  # None: a point float32 cannot hold (bits_of_error skips it)
        values = [v if held else None for v, held in zip(values, sample.in_float32)]
    return values


def bits_of_error(
    values: Sequence[float | None], truths: Sequence[mpmath.mpf | None], dtype: str
) -> tuple[float, ...]:
    """log2(1 + floats between value and truth) at each point with a truth and
    a value (None: a point this dtype cannot hold);
    a NaN where the truth is a number counts as the widest error."""
    widest = 32.0 if dtype == "float32" else 64.0
    if isinstance(truths, Truths):
        exact_ordinals = truths.ordinals[dtype]
    else:
        exact_ordinals = _ordinals([None if t is None else float(t) for t in truths], dtype)
    bits = []
    log2 = math.log2
    for value, exact, ordinal in zip(values, exact_ordinals, _ordinals(values, dtype)):
        if exact is None or value is None:
            continue
        if ordinal is None:  # a NaN where the truth is a number
            bits.append(widest)
            continue
        bits.append(min(widest, log2(1 + abs(ordinal - exact))))
    return tuple(bits)


def _ordinals(values: Sequence[float | None], dtype: str) -> list[int | None]:
    """_ordinal32 (after _round32) or _ordinal64 of each value, packed in one
    struct call; None for None and NaN."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    if dtype == "float32":
        kept = [_round32(v) for v in kept]  # inf beyond float32's range, as _round32
        patterns = struct.unpack(f"<{len(kept)}i", struct.pack(f"<{len(kept)}f", *kept))
        sign = 0x7FFFFFFF
    else:
        patterns = struct.unpack(f"<{len(kept)}q", struct.pack(f"<{len(kept)}d", *kept))
        sign = 0x7FFFFFFFFFFFFFFF
    ordinals = iter([p if p >= 0 else -(p & sign) for p in patterns])
    return [None if v is None or math.isnan(v) else next(ordinals) for v in values]


# --- evaluation ----------------------------------------------------------------


@dataclass(frozen=True)
class _Arithmetic:
    """How one number system evaluates each kind of node."""

    number: Callable[[sympy.Expr], object]  # a sympy number -> a value
    add: Callable[[object, object], object]
    mul: Callable[[object, object], object]
    div: Callable[[object, object], object]
    power: Callable[[object, object], object]
    function: Callable[[type, tuple], object]  # (sympy class, argument values) -> value
    # Each operation's results, rounded at once (float32: a C loop, not per value).
    round: Callable[[list], list] = list


def _compile(expr: sympy.Expr, arithmetic: _Arithmetic, memo: dict | None = None):
    """A function from the points' environments to `expr`'s value at each."""
    memo = {} if memo is None else memo

    def values(node: sympy.Basic, points: list[dict]) -> list:
        if node in memo:
            return memo[node]
        result = _node_values(node, points, arithmetic, values)
        memo[node] = result
        return result

    return lambda points: values(expr, points)


def _node_values(node, points, arithmetic: _Arithmetic, values) -> list:
    size = len(points)
    if node.is_Symbol:
        return [p[node.name] for p in points]
    if node.is_number and not isinstance(node, sympy.Piecewise):
        if node.is_extended_real is not True:  # log(-1) = I*pi: torch has no such constant
            raise Unmeasurable(f"the constant {node} is not real")
        return [arithmetic.number(node)] * size
    if node.is_Add or node.is_Mul:
        combine = arithmetic.add if node.is_Add else arithmetic.mul
        # The printer's order: terms left to right; a Mul's denominator divides last.
        if node.is_Mul:
            numerator, denominator = _split_fraction(node)
            if denominator:
                top = _product(numerator, points, arithmetic, values)
                bottom = _product(denominator, points, arithmetic, values)
                return arithmetic.round(list(map(arithmetic.div, top, bottom)))
        ordered = _ordered_terms(node) if node.is_Add else _ordered_factors(node)
        result = values(ordered[0], points)
        for term in ordered[1:]:
            result = arithmetic.round(list(map(combine, result, values(term, points))))
        return result
    if node.is_Pow:
        base, exponent = node.args
        if exponent == -1:
            ones = [arithmetic.number(sympy.S.One)] * size
            return arithmetic.round(list(map(arithmetic.div, ones, values(base, points))))
        bases, exponents = values(base, points), values(exponent, points)
        return arithmetic.round(list(map(arithmetic.power, bases, exponents)))
    if isinstance(node, sympy.Piecewise):
        return _piecewise(node, points, values)
    if isinstance(node, functions.held):  # its operations are rounded as they come
        return values(node.args[0], points)
    if isinstance(node, functions.guarded):
        value, safe, condition = node.args
        held = _conditions(condition, points, values)
        return [v if h else s for v, s, h in zip(values(value, points), values(safe, points), held)]
    if isinstance(node, sympy.Function):
        if type(node) not in DEFINITIONS:
            raise Unmeasurable(f"no definition of {type(node).__name__} in {node}")
        arguments = [values(a, points) for a in node.args]
        kind = type(node)
        return arithmetic.round([arithmetic.function(kind, args) for args in zip(*arguments)])
    raise Unmeasurable(f"cannot measure {type(node).__name__} in {node}")


# A node's order of operations, found once: the truth and both dtypes evaluate
# the same nodes (sorting a sum's terms cost as much as evaluating them).
_ORDER_CACHE_SIZE = 1 << 16


@functools.lru_cache(maxsize=_ORDER_CACHE_SIZE)
def _ordered_terms(node: sympy.Add) -> tuple:
    return tuple(node.as_ordered_terms())


@functools.lru_cache(maxsize=_ORDER_CACHE_SIZE)
def _ordered_factors(node: sympy.Mul) -> tuple:
    return tuple(node.as_ordered_factors())


@functools.lru_cache(maxsize=_ORDER_CACHE_SIZE)
def _split_fraction(node: sympy.Mul) -> tuple[tuple, tuple]:
    """(numerator factors, denominator factors), in the printer's order."""
    numerator, denominator = functions.printed_fraction(node)
    return numerator or (sympy.S.One,), tuple(base**k for base, k in denominator)


def _product(factors, points, arithmetic, values) -> list:
    result = values(factors[0], points)
    for factor in factors[1:]:
        result = arithmetic.round(list(map(arithmetic.mul, result, values(factor, points))))
    return result


def _piecewise(node: sympy.Piecewise, points, values) -> list:
    branches = [(values(v, points), _conditions(c, points, values)) for v, c in node.args]
    result = []
    for k in range(len(points)):
        for branch_values, held in branches:
            if held[k]:
                result.append(branch_values[k])
                break
        else:
            result.append(math.nan)
    return result


def _conditions(condition: sympy.Basic, points, values) -> list[bool]:
    if condition is sympy.true:
        return [True] * len(points)
    if condition is sympy.false:
        return [False] * len(points)
    if isinstance(condition, sympy.And):
        parts = [_conditions(c, points, values) for c in condition.args]
        return [all(p) for p in zip(*parts)]
    if isinstance(condition, sympy.Or):
        parts = [_conditions(c, points, values) for c in condition.args]
        return [any(p) for p in zip(*parts)]
    if isinstance(condition, sympy.Not):
        return [not c for c in _conditions(condition.args[0], points, values)]
    compare = _COMPARISONS[condition.rel_op]
    lhs, rhs = values(condition.lhs, points), values(condition.rhs, points)
    return [bool(compare(a, b)) for a, b in zip(lhs, rhs)]


_COMPARISONS = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}  # fmt: skip


# --- the definitions of the functions, in mpmath ----------------------------------


# Beyond this, e**x over- or underflows every float by a factor of 2**(2**24) or
# more: it is taken as inf or 0 (mpmath's exp of 1e300 is exact but slow), so a
# point where the truth hangs on such a value drops out, as inf*0 is NaN.
_EXP_SATURATES = 2**24


def _exp(x):
    if x > _EXP_SATURATES:
        return mpmath.inf
    if x < -_EXP_SATURATES:
        return mpmath.mpf(0)
    return mpmath.exp(x)


def _sigmoid(x):
    return 1 / (1 + _exp(-x))


def _softplus(x):
    return x + mpmath.log1p(_exp(-x)) if x > 0 else mpmath.log1p(_exp(x))


def _tanh(x):
    return mpmath.sign(x) if abs(x) > _EXP_SATURATES else mpmath.tanh(x)


def _sinh(x):
    return mpmath.sign(x) * mpmath.inf if abs(x) > _EXP_SATURATES else mpmath.sinh(x)


def _cosh(x):
    return mpmath.inf if abs(x) > _EXP_SATURATES else mpmath.cosh(x)


def _expm1(x):
    return _exp(x) - 1 if abs(x) > _EXP_SATURATES else mpmath.expm1(x)


def _xlogy(x, y):
    return mpmath.mpf(0) if x == 0 else x * mpmath.log(y)


def _heaviside(x, at_zero=mpmath.mpf(0.5)):
    return mpmath.mpf(1) if x > 0 else (at_zero if x == 0 else mpmath.mpf(0))


def _polygamma(order, x):
    return mpmath.psi(int(order), x)


# The textbook definition of every function a formula may hold, for the truth
# and for the correctly rounded library calls (tests/test_select.py checks that
# every registry row has one).
DEFINITIONS: dict[type, Callable[..., mpmath.mpf]] = {
    sympy.sin: mpmath.sin, sympy.cos: mpmath.cos, sympy.tan: mpmath.tan,
    sympy.asin: mpmath.asin, sympy.acos: mpmath.acos, sympy.atan: mpmath.atan,
    sympy.atan2: mpmath.atan2,
    sympy.sinh: _sinh, sympy.cosh: _cosh, sympy.tanh: _tanh,
    sympy.asinh: mpmath.asinh, sympy.acosh: mpmath.acosh, sympy.atanh: mpmath.atanh,
    sympy.exp: _exp, sympy.log: mpmath.log, sympy.Abs: abs,
    sympy.erf: mpmath.erf, sympy.erfc: mpmath.erfc, functions.erfc: mpmath.erfc,
    sympy.erfinv: mpmath.erfinv, sympy.loggamma: mpmath.loggamma,
    sympy.polygamma: _polygamma, sympy.sign: mpmath.sign, sympy.Heaviside: _heaviside,
    sympy.Max: max, sympy.Min: min,
    functions.sigmoid: _sigmoid,
    functions.softplus: _softplus,
    functions.relu: lambda x: max(x, mpmath.mpf(0)),
    functions.log1p: mpmath.log1p,
    functions.expm1: _expm1,
    functions.logaddexp: lambda a, b: max(a, b) + mpmath.log1p(_exp(-abs(a - b))),
    functions.xlogy: _xlogy,
    functions.hypot: lambda x, y: mpmath.sqrt(x * x + y * y),
}  # fmt: skip


def _finite_real(value) -> bool:
    return isinstance(value, mpmath.mpf) and mpmath.isfinite(value)


class _Lost:
    """The value of an addition that cancelled more bits than the working
    precision keeps: it needs a higher precision. Every operation passes it on."""

    def __lt__(self, other): return False  # noqa: E704 - a where() on it picks a branch
    __le__ = __gt__ = __ge__ = __lt__


LOST = _Lost()
MOST_TRUTH_BITS = 2048  # 1 - cos(1e-200) needs 1330: enough for float64 inputs
_SPARE_BITS = 64  # an addition must leave this many bits beyond float64's 53


def _truth_add(a, b):
    if a is LOST or b is LOST:
        return LOST
    result = a + b
    if _finite_real(result) and (a or b):
        largest = max(mpmath.mag(a) if a else -math.inf, mpmath.mag(b) if b else -math.inf)
        if not result or mpmath.mag(result) < largest - (mpmath.mp.prec - _SPARE_BITS):
            return LOST
    return result


def _passing_lost(operation):
    """The two-operand `operation`, passing LOST on."""

    def checked(a, b):
        return LOST if a is LOST or b is LOST else operation(a, b)

    return checked


def _truth_power(base, exponent):
    if base == 0 and exponent < 0:
        return mpmath.inf
    if exponent and mpmath.mag(exponent) > _LARGEST_MAGNITUDE:
        # erfc(2.5)**sinh(1e30): mpmath would multiply for hours; like a
        # function's argument that far out, the point has no truth.
        return mpmath.nan
    return mpmath.power(base, exponent)


# Beyond 2**(2**20) a function's argument (sin(exp(1e38))) would need a working
# precision of that many bits: such a point has no truth we can afford, and drops.
_LARGEST_MAGNITUDE = 2**20


# mpmath's special functions slow to a crawl far out (digamma at -1e300, a pole,
# or erfc at 1e30 at a raised precision): beyond 2**64 such a point has no truth.
_SPECIAL = (sympy.polygamma, sympy.loggamma, sympy.erf, sympy.erfc, functions.erfc, sympy.erfinv)
_LARGEST_SPECIAL = 64
_MOST_NEGATIVE_GAMMA = 1000


def _out_of_reach(cls: type, args: tuple) -> bool:
    """Arguments at which mpmath would take minutes: no value there."""
    finite = [a for a in args if a and mpmath.isfinite(a)]  # inf: the functions' own limits
    if any(mpmath.mag(a) > _LARGEST_MAGNITUDE for a in finite):
        return True
    if issubclass(cls, _SPECIAL) and any(mpmath.mag(a) > _LARGEST_SPECIAL for a in finite):
        return True
    # digamma and loggamma: mpmath recurs once per unit below 0 (minutes at -1e15)
    return issubclass(cls, (sympy.polygamma, sympy.loggamma)) and args[-1] < -_MOST_NEGATIVE_GAMMA


def _truth_function(cls: type, args: tuple):
    if any(a is LOST for a in args):
        return LOST
    if any(not _finite_real(a) for a in args) or _out_of_reach(cls, args):
        return mpmath.nan
    try:
        result = DEFINITIONS[cls](*args)
    except (ValueError, ZeroDivisionError, OverflowError, MemoryError):
        return mpmath.nan
    return result if isinstance(result, mpmath.mpf) else mpmath.nan


def _truth_divide(a, b):
    if not (_finite_real(a) and _finite_real(b)) or b == 0:
        return mpmath.nan
    return a / b


_TRUTH = _Arithmetic(
    number=lambda n: mpmath.mpf(n.evalf(mpmath.mp.dps + 5)),
    add=_truth_add,
    mul=_passing_lost(operator.mul),
    div=_passing_lost(_truth_divide),
    power=_passing_lost(
        lambda b, e: _truth_power(b, e) if _finite_real(b) and _finite_real(e) else mpmath.nan
    ),
    function=_truth_function,
)


# --- float64 and float32 -------------------------------------------------------


def _divide(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _power(base: float, exponent: float, rounding: Callable[[float], float] = float) -> float:
    """base**exponent as torch's pow kernel computes it: small integer powers
    by multiplication (each product rounded), halves by sqrt, others by pow."""
    if exponent in (2.0, 3.0, -2.0):
        square = rounding(base * base)
        if exponent == 3.0:
            return rounding(square * base)
        return square if exponent == 2.0 else _divide(1.0, square)
    if exponent == 0.5:
        return math.sqrt(base) if base >= 0 else math.nan
    if exponent == -0.5:
        return _divide(1.0, math.sqrt(base)) if base >= 0 else math.nan
    try:
        return math.pow(base, exponent)
    except OverflowError:
        negative = base < 0 and float(exponent).is_integer() and int(exponent) % 2 == 1
        return -math.inf if negative else math.inf
    except ValueError:  # a negative base to a fractional power, or 0 to a negative one
        if base == 0:
            return math.inf
        return math.nan


def _library(cls: type, args: tuple) -> float:
    """A library function as torch computes it: correctly rounded to float64
    (special values as IEEE), except where torch's kernel is not (softplus)."""
    if any(math.isnan(a) for a in args):
        return math.nan
    if cls is functions.softplus and args[0] > _SOFTPLUS_THRESHOLD:
        return args[0]  # torch.nn.functional.softplus(x) is x above its threshold
    return _rounded_library(cls, args)


# Both dtypes call the library on the same arguments wherever a function takes an
# input itself (exp(x) at a float32 point): each value is computed once. (0.0
# and -0.0 share an entry: mpmath has no signed zero, so their values are one.)
@functools.lru_cache(maxsize=1 << 16)
def _rounded_library(cls: type, args: tuple) -> float:
    with mpmath.workprec(_LIBRARY_BITS):
        arguments = tuple(mpmath.mpf(a) for a in args)
        if _out_of_reach(cls, arguments):
            return math.nan
        try:
            result = DEFINITIONS[cls](*arguments)
        except (ValueError, ZeroDivisionError, OverflowError):
            return math.nan
    if not isinstance(result, mpmath.mpf) or mpmath.isnan(result):
        return math.nan
    return float(result)


_SOFTPLUS_THRESHOLD = 20.0  # torch.nn.functional.softplus's default


def _round32(value: float) -> float:
    """The float32 nearest to `value` (inf beyond float32's range)."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _round32_down(value: float) -> float:
    rounded = _round32(value)
    return rounded if rounded <= value else _from_ordinal32(_ordinal32(rounded) - 1)


def _round32_up(value: float) -> float:
    rounded = _round32(value)
    return rounded if rounded >= value else _from_ordinal32(_ordinal32(rounded) + 1)


def _ordinal32(value: float) -> int:
    """Floats of float32 as consecutive integers (-0.0 and 0.0 both 0)."""
    (bits,) = struct.unpack("<i", struct.pack("<f", value))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


def _from_ordinal32(ordinal: int) -> float:
    bits = ordinal if ordinal >= 0 else (-ordinal) | -0x80000000
    return struct.unpack("<f", struct.pack("<i", bits))[0]


_ORDINAL64_MAX = 0x7FEFFFFFFFFFFFFF  # the largest finite float64's bit pattern


def _from_ordinal64(ordinal: int) -> float:
    bits = ordinal if ordinal >= 0 else (-ordinal) | -0x8000000000000000
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def _ordinal64(value: float) -> int:
    (bits,) = struct.unpack("<q", struct.pack("<d", value))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


_FLOAT64 = _Arithmetic(
    number=lambda n: float(n.evalf(20)),
    add=operator.add,
    mul=operator.mul,
    div=_divide,
    power=_power,
    function=_library,
)
def _round32_all(values: list[float]) -> list[float]:
    """Each value rounded to the nearest float32 (inf beyond its range)."""
    return array.array("f", values).tolist()


_FLOAT32 = _Arithmetic(
    number=lambda n: _round32(float(n.evalf(20))),
    add=operator.add,
    mul=operator.mul,
    div=_divide,
    power=lambda b, e: _power(b, e, _round32),
    function=_library,
    round=_round32_all,
)


# --- series near zero ------------------------------------------------------------

_FIT_POINTS = 16  # interpolation points, symmetric about 0 and avoiding it
_FIT_SPACING = mpmath.mpf(2) ** -12
_FIT_BITS = 512


def taylor_coefficients(
    expr: sympy.Expr, variable: str, degree: int, params: dict[str, float]
) -> list[float] | None:
    """The Taylor coefficients of `expr` at `variable` = 0 up to `degree`, as
    floats; None where `expr` is not smooth and real around 0 there. Found by
    interpolating values at points around 0 (not at 0, where the formula may
    read 0/0) in 512-bit arithmetic, so no symbolic series (slow on derivative
    formulas) is needed; the fit's error, h**(points - k), is far below float64's."""
    offsets = [(k - (_FIT_POINTS - 1) / 2) * _FIT_SPACING for k in range(_FIT_POINTS)]
    with mpmath.workprec(_FIT_BITS):
        evaluate = _compile(expr, _TRUTH)
        points = [{**{n: mpmath.mpf(v) for n, v in params.items()}, variable: h} for h in offsets]
        values = evaluate(points)
        if not all(_finite_real(v) for v in values):
            return None
        coefficients = _solve_fit(tuple(offsets), values)
        return [float(coefficients[k]) for k in range(degree + 1)]


@functools.lru_cache(maxsize=4)
def _fit_factorization(offsets: tuple) -> tuple:
    """The LU factors of the fit's Vandermonde matrix (the same for every fit:
    factoring it took most of the fit's time), as mpmath.lu_solve factors it."""
    with mpmath.workprec(_FIT_BITS + _LU_GUARD_BITS):
        matrix = mpmath.matrix([[h**k for k in range(len(offsets))] for h in offsets])
        return mpmath.mp.LU_decomp(matrix, use_cache=False)


_LU_GUARD_BITS = 10  # what mpmath.lu_solve adds to the working precision


def _solve_fit(offsets: tuple, values: list) -> mpmath.matrix:
    """mpmath.lu_solve(Vandermonde(offsets), values), step for step (so to the
    same bits), with the factorization made once."""
    factors, pivots = _fit_factorization(offsets)
    with mpmath.workprec(_FIT_BITS + _LU_GUARD_BITS):
        return mpmath.mp.U_solve(factors, mpmath.mp.L_solve(factors, mpmath.matrix(values), pivots))
