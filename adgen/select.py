"""Stage 2b: choose, for the op's value and each partial-derivative table entry,
the form that torch computes most cheaply among the most accurate.

derive hands over each formula twice: in its stable form (stable.py's rewrites,
applied before and after differentiation) and as the derivative of the formula
as the user wrote it. Rewrites that keep the value (the rules below, each with a
soundness test, plus sympy's `together` and `factor_terms`) grow a small set of
equivalent candidates from both. Each candidate's error is measured (measure.py:
bits of error in float32 and float64 at sampled points against an mpmath truth)
and its cost counted from the repo's table of per-operation costs (costs.py),
where subexpressions already computed by a lower-order entry are free. The
choice:

  - accurate enough: total error (float32 + float64 mean bits) within
    TOLERANCE_BITS of the most accurate candidate, at no point more than
    POINTWISE_SLACK_BITS worse than it nor than the stable form unless better
    than the stable form by CLEAR_GAIN_BITS in total, right where the stable
    form has no correct bit (overflow, NaN), and no more costly, and in neither
    dtype worse on average than the formula as written (in Python's order of
    operations; its first derivatives in autograd's) by more than
    TOLERANCE_BITS;
  - where no candidate qualifies: the stable form, unless the formula as
    written keeps half the bits somewhere the stable form has none (then the
    most accurate of the forms that keep half the bits wherever that formula
    does, itself included: never a failure where autograd of it has none);
  - among those, the cheapest; ties go to the more accurate, then to the stable
    form, then to the first found (the search order is fixed).

It also decides, by the same cost table, whether the first-order Backward
recomputes its table in the next backward or keeps it under create_graph
(`partials_to_save`).

Nothing depends on timing or the machine: the points come from a fixed seed
and the arithmetic is IEEE's, so the same formula is chosen everywhere.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy
from sympy.functions.elementary.piecewise import ExprCondPair

from . import costs, functions, timing
from .functions import expm1, hypot, log1p, sigmoid, softplus
from .measure import (
    Sample,
    Unmeasurable,
    bits_of_error,
    rounded_values,
    sample_points,
    taylor_coefficients,
    truth,
)
from .registry import REGISTRY
from .stable import Bindings, match, stabilize

if TYPE_CHECKING:
    from .derive import PartialTables

# Selection gives up nothing measurable: a cheaper form may lose at most this
# many bits (float32 + float64, mean over the sample) against the best.
TOLERANCE_BITS = 0.25
# ... and at no sample point more than this (1 bit: twice the error), nor
# than the stable form, unless it beats the stable form by CLEAR_GAIN_BITS in
# total and repairs its failures at no extra cost (a/b**2 -> (a/b)/b: right
# where b**2 overflows, a bit worse elsewhere). A costlier repair of inputs no
# one trains on (gelu's x**3 overflowing beyond 2e13 in float32) is not worth the time.
POINTWISE_SLACK_BITS = 1.0
CLEAR_GAIN_BITS = 1.0
MAX_CANDIDATES = 24  # per formula: rewrites beyond this are not tried
SEARCH_DEPTH = 2  # rewrites applied in sequence
WHOLE_FORMULA_NODES = 150  # sympy nodes: larger formulas get the local rewrites only
LARGEST_FORMULA = 400  # sympy operations: larger formulas keep their stable form
# A series regime (a where()) must earn its cost: this many bits better in total.
REGIME_GAIN_BITS = 1.0
REGIME_THRESHOLDS = (2.0**-20, 2.0**-12, 2.0**-8, 2.0**-5, 2.0**-3, 0.5)
SERIES_DEGREE = 10
# Where a regime's threshold is chosen: 1.3125 * 2**-k and -1.8125 * 2**-k
# (float32 numbers) for k = 1 to 26, from 0.66 down to 2e-8.
NEAR_ZERO = tuple(m * 2.0**-k for k in range(1, 27) for m in (1.3125, -1.8125))
SYMBOLIC_SERIES_OPS = 80  # sympy operations: larger formulas with parameters get no regime


@dataclass(frozen=True)
class Rewrite:
    """An identity `pattern = replacement(bindings)`, true wherever both sides are real."""

    name: str  # "sigmoid complement"
    pattern: sympy.Expr  # sigmoid(a)
    replacement: Callable[[Bindings], sympy.Expr | None]  # 1 - sigmoid(-a); None: not here


a, b, rest = sympy.Wild("a"), sympy.Wild("b"), sympy.Wild("rest")


def _rationalised(
    bindings: Bindings,
    root: Callable[[sympy.Expr], sympy.Expr] = sympy.sqrt,
    square: Callable[[sympy.Expr], sympy.Expr] = lambda v: v,
) -> sympy.Expr:
    """sqrt(a) - root(b) = (a - square(b))/(sqrt(a) + root(b)), with the
    numerator expanded so that its cancellation happens exactly (x + 1 - x = 1):
    root(b) is sqrt(b), or |b|, as sympy writes sqrt(b**2) (sqrt(x**2 + delta**2)
    - |delta|), square(b) its square."""
    u, v = bindings[a], bindings[b]
    return sympy.expand(u - square(v)) / (sympy.sqrt(u) + root(v)) + bindings.get(rest, 0)


def _log_quotient(bindings: Bindings) -> sympy.Expr:
    """log(a) - log(b) = log1p((a - b)/b)."""
    u, v = bindings[a], bindings[b]
    return log1p(sympy.expand(u - v) / v) + bindings.get(rest, 0)


def _reciprocal_difference(bindings: Bindings) -> sympy.Expr:
    """1/a - 1/b = (b - a)/(a*b)."""
    u, v = bindings[a], bindings[b]
    return sympy.expand(v - u) / (u * v) + bindings.get(rest, 0)


def _hypot_of_constant(bindings: Bindings) -> sympy.Expr | None:
    """sqrt(a**2 + c) = hypot(a, sqrt(c)) for a positive number c: a**2 need not
    overflow (nor underflow) on the way."""
    c = bindings[b]
    if not (c.is_number and c.is_positive):
        return None
    return hypot(bindings[a], sympy.sqrt(c))


def _replace(template: sympy.Expr) -> Callable[[Bindings], sympy.Expr]:
    return lambda bindings: template.xreplace(bindings)


REWRITES: tuple[Rewrite, ...] = (
    # The stable vocabulary's other spellings: one transcendental call where two
    # would be spent on σ(x) and σ(-x), softplus(x) and softplus(-x), ...
    Rewrite("sigmoid complement", sigmoid(a), _replace(1 - sigmoid(-a))),
    Rewrite("one minus sigmoid", 1 - sigmoid(a) + rest, _replace(sigmoid(-a) + rest)),
    Rewrite("softplus complement", softplus(a), _replace(a + softplus(-a))),
    Rewrite("tanh as sigmoid", sympy.tanh(a), _replace(2 * sigmoid(2 * a) - 1)),
    Rewrite("sigmoid as tanh", sigmoid(a), _replace((1 + sympy.tanh(a / 2)) / 2)),
    Rewrite("expm1 as exp", expm1(a), _replace(sympy.exp(a) - 1)),
    Rewrite("log1p as log", log1p(a), _replace(sympy.log(1 + a))),
    Rewrite("exp minus one", sympy.exp(a) - 1 + rest, _replace(expm1(a) + rest)),
    Rewrite("one plus as log1p", sympy.log(1 + a), _replace(log1p(a))),
    Rewrite("exp difference", sympy.exp(a) - sympy.exp(b) + rest,
            _replace(sympy.exp(b) * expm1(a - b) + rest)),
    # Cancellation removed by algebra (Herbie's classic rewrites).
    Rewrite("difference of roots", sympy.sqrt(a) - sympy.sqrt(b) + rest, _rationalised),
    Rewrite("difference of a root and a magnitude", sympy.sqrt(a) - sympy.Abs(b) + rest,
            functools.partial(_rationalised, root=sympy.Abs, square=lambda v: v**2)),
    Rewrite("difference of logs", sympy.log(a) - sympy.log(b) + rest, _log_quotient),
    Rewrite("difference of reciprocals", 1 / a - 1 / b + rest, _reciprocal_difference),
    Rewrite("one minus cos", 1 - sympy.cos(a) + rest, _replace(2 * sympy.sin(a / 2) ** 2 + rest)),
    Rewrite("hypot", sympy.sqrt(a**2 + b**2), _replace(hypot(a, b))),
    Rewrite("hypot of a constant", sympy.sqrt(a**2 + b), _hypot_of_constant),
)  # fmt: skip

def _divided_in_steps(formula: sympy.Expr) -> sympy.Expr:
    """a/b**2 -> (a/b)/b, as autograd divides: b**2 overflows (or underflows)
    where a/b and then /b stay in range. held() keeps sympy from folding the
    steps back into one power."""

    def split(node: sympy.Expr) -> sympy.Expr:
        power = next(
            (f for f in node.as_ordered_factors() if f.is_Pow and f.exp.is_Integer and f.exp <= -2),
            None,
        )
        if power is None:
            return node
        result = split(node / power) / power.base
        for _ in range(-int(power.exp) - 1):
            result = functions.held(result) / power.base
        return result

    return formula.replace(lambda e: e.is_Mul and not isinstance(e, functions.held), split)


_WHOLE_FORMULA: tuple[tuple[str, Callable[[sympy.Expr], sympy.Expr]], ...] = (
    ("together", sympy.together),
    ("factor terms", sympy.factor_terms),
    ("divided in steps", _divided_in_steps),
)


@dataclass(frozen=True)
class Measured:
    """One candidate form, with its error and cost."""

    formula: sympy.Expr
    origin: str  # "stable", "as written", or the rewrites that made it
    float32_errors: tuple[float, ...]  # bits of error at each sample point with a truth
    float64_errors: tuple[float, ...]
    cost: float

    @property
    def float32_bits(self) -> float:
        return _mean(self.float32_errors)

    @property
    def float64_bits(self) -> float:
        return _mean(self.float64_errors)

    @property
    def bits(self) -> float:
        return self.float32_bits + self.float64_bits

    def nowhere_worse(self, other: Measured, slack: float) -> bool:
        """At no point more than `slack` bits less accurate than `other`."""
        return all(mine <= theirs + slack for mine, theirs, _ in self._pointwise(other))

    def fails_only_where(self, other: Measured) -> bool:
        """Whether this form keeps at least half the bits wherever `other` does."""
        return all(mine <= bits / 2 or theirs > bits / 2 for mine, theirs, bits in self._pointwise(other))

    def repairs(self, other: Measured) -> bool:
        """Whether at some point `other` has no correct bit (overflow, NaN, a
        cancelled difference) where this form keeps at least half of them."""
        return any(theirs >= bits and mine <= bits / 2 for mine, theirs, bits in self._pointwise(other))

    def _pointwise(self, other: Measured) -> Iterator[tuple[float, float, int]]:
        """(this form's error, the other's, the dtype's bits) at each point, both dtypes."""
        for errors, others, bits in (
            (self.float32_errors, other.float32_errors, 24),
            (self.float64_errors, other.float64_errors, 53),
        ):
            for mine, theirs in zip(errors, others):
                yield mine, theirs, bits


def _fallback(measured: list[Measured], written: Measured, stable_form: Measured) -> list[Measured]:
    """Where no form qualifies: the stable form, unless the formula as written
    repairs it somewhere; then the most accurate forms (within TOLERANCE_BITS)
    of those that keep half the bits wherever the formula as written does (it,
    or a rewrite such as gelu (tanh)'s "as written, stabilised")."""
    if not written.repairs(stable_form):
        return [stable_form]
    safe = [m for m in measured if m.fails_only_where(written)]
    best = min(safe, key=lambda m: round(m.bits, 6))
    return [m for m in safe if m.bits <= best.bits + TOLERANCE_BITS]


def _mean(values: tuple[float, ...]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True)
class Choice:
    """What selection decided for one formula, for reports and tests."""

    target: str  # "f_xy"
    chosen: Measured
    candidates: tuple[Measured, ...]  # every form measured, the chosen one included


_CHOSEN: dict[tuple, tuple[sympy.Expr, tuple[Choice, ...]]] = {}  # see FormSelector.__call__
_CHOSEN_LIMIT = 4096


class FormSelector:
    """Chooses forms for the formulas of one op, in the order derive asks: the
    op's value, then the table entries by order (an entry may reuse, for free,
    what an earlier entry of lower or equal order computes)."""

    def __init__(
        self,
        inputs: tuple[str, ...],
        domains: dict[str, tuple[float, float]],
        params: dict[str, float],
    ) -> None:
        self.sample: Sample = sample_points(inputs, domains, params)
        self.scalars = frozenset(params)
        self.memo: dict = {}  # rounded values of subexpressions, by dtype
        self.truth_memo: dict = {}
        self.computed: dict[int, set[sympy.Expr]] = {}  # order -> subexpressions computed
        self.choices: list[Choice] = []

    def __call__(
        self,
        target: str,
        order: int,
        stable: sympy.Expr,
        as_written: Callable[[], sympy.Expr],
        value: sympy.Expr | None = None,
    ) -> sympy.Expr:
        """The form to emit for `target` (an entry of the given order; 0 for the
        value), a derivative of `value` (the output's value; None: `stable` is)."""
        value = stable if value is None else value
        free = set().union(*(s for k, s in self.computed.items() if k <= order and order > 0))
        # Too large to search: the stable form, with no derivative of the formula
        # as written taken for nothing.
        if sympy.count_ops(stable) > LARGEST_FORMULA:
            chosen = stable
        else:
            chosen = self._cached_choice(target, stable, as_written(), free, (value, order))
        if order > 0:
            self.computed.setdefault(order, set()).update(_tensor_operations(chosen, self.scalars))
        return chosen

    def _cached_choice(
        self,
        target: str,
        stable: sympy.Expr,
        written: sympy.Expr,
        free: set[sympy.Expr],
        derived_from: tuple[sympy.Expr, int],
    ) -> sympy.Expr:
        # Everything the choice depends on: one process emitting an op under
        # several options (--save, --fuse), or its module and its test, chooses once.
        key = (stable, written, self.sample, frozenset(free))
        with timing.stage("select"):
            if key not in _CHOSEN:
                if len(_CHOSEN) >= _CHOSEN_LIMIT:
                    _CHOSEN.clear()
                choices_before = len(self.choices)
                formula = self._choose(target, stable, written, free, derived_from)
                _CHOSEN[key] = (formula, tuple(self.choices[choices_before:]))
            else:
                formula, made = _CHOSEN[key]
                self.choices.extend(made)
        return formula

    def _choose(
        self,
        target: str,
        stable: sympy.Expr,
        as_written: sympy.Expr,
        free: set[sympy.Expr],
        derived_from: tuple[sympy.Expr, int],
    ) -> sympy.Expr:
        """The form for `stable`, the order-th derivative of the value (`derived_from`)."""
        (_, label), *others = forms = _candidates(stable, as_written)
        try:
            truths = truth(stable, self.sample, self.truth_memo)
            stable_form = self._measure(stable, label, truths, free)
        except Unmeasurable:
            return stable  # the printer says whether it can print it
        measured = [stable_form]
        for formula, origin in others:
            try:
                measured.append(self._measure(formula, origin, truths, free))
            except Unmeasurable:
                continue  # a rewrite made a node with no definition (cot): not a candidate
        # The formula as written (the stable form where they are one).
        written = next((m for m in measured if m.origin == "as written"), stable_form)
        best = min(measured, key=lambda m: round(m.bits, 6))
        accurate = [
            m
            for m in measured
            if m.bits <= best.bits + TOLERANCE_BITS
            and m.nowhere_worse(best, POINTWISE_SLACK_BITS)
            and (
                m.nowhere_worse(stable_form, POINTWISE_SLACK_BITS)
                or (
                    m.bits <= stable_form.bits - CLEAR_GAIN_BITS
                    and m.repairs(stable_form)
                    and m.cost <= stable_form.cost
                )
            )
            and m.float32_bits <= written.float32_bits + TOLERANCE_BITS
            and m.float64_bits <= written.float64_bits + TOLERANCE_BITS
        ] or _fallback(measured, written, stable_form)
        chosen = min(accurate, key=lambda m: (round(m.cost, 6), round(m.bits, 6)))
        regimes = [
            self._measure(formula, f"{chosen.origin}, series below {threshold}", truths, free)
            for formula, threshold in self._regimes(stable, chosen.formula)
        ]
        better = [m for m in regimes if m.bits <= chosen.bits - REGIME_GAIN_BITS]
        valid = [r for r in (self._for_every_parameter(m, stable, derived_from) for m in better) if r]
        if valid:
            chosen = self._best_near_zero(valid, stable)
        self.choices.append(Choice(target, chosen, tuple(measured + regimes)))
        return chosen.formula

    def _regimes(self, stable: sympy.Expr, general: sympy.Expr) -> list[tuple[sympy.Expr, float]]:
        """`general`, but its Taylor polynomial at 0 where |x| < threshold, for
        each threshold: the cure for cancellation near 0 ((1 - cos x)/x**2, the
        odd derivatives of even functions), as Herbie's series expansions. Only
        for formulas of one input. The coefficients are numbers, which hold at the
        parameters' sampled values only: `_for_every_parameter` replaces them in
        the regime chosen."""
        variables = self._inputs(stable)
        if len(variables) != 1:
            return []
        (x,) = variables
        params = dict(self.sample.params)
        coefficients = taylor_coefficients(stable, x.name, SERIES_DEGREE, params)
        if coefficients is None:
            return []
        largest = max(abs(c) for c in coefficients)
        # Below this, the fit's noise where a coefficient is 0.
        terms = [(k, c) for k, c in enumerate(coefficients) if abs(c) > largest * 1e-30]
        return [
            (
                sympy.Piecewise(
                    (_polynomial(terms, x, threshold), sympy.Abs(x) < threshold), (general, True)
                ),
                threshold,
            )
            for threshold in REGIME_THRESHOLDS
        ]

    def _best_near_zero(self, regimes: list[Measured], stable: sympy.Expr) -> Measured:
        """Of the regimes that earn their cost on the sample, the most accurate
        on NEAR_ZERO (then the cheapest): the sample holds few points near 0,
        where the thresholds differ (the third derivative of tanh(a*x)/x cancels
        below 1e-3 where none of them falls). Where the formula has parameters,
        also at ten times and a tenth of their values: a threshold right for
        a = 1.5 is past the series' reach for a = 15."""
        (x,) = self._inputs(stable)
        sampled = self.sample.params
        settings = [sampled]
        if self._has_parameters(stable):
            settings += [tuple((n, v * scale) for n, v in sampled) for scale in (10.0, 0.1)]
        total = dict.fromkeys(range(len(regimes)), 0.0)
        for params in settings:
            near = Sample((x.name,), (NEAR_ZERO,), params)
            truths = truth(stable, near, {})
            memo: dict = {}
            for index, regime in enumerate(regimes):
                for dtype in ("float32", "float64"):
                    values = rounded_values(regime.formula, near, dtype, memo)
                    total[index] += _mean(bits_of_error(values, truths, dtype))
        best = min(total, key=lambda i: (round(total[i], 6), round(regimes[i].cost, 6)))
        return regimes[best]

    def _for_every_parameter(
        self, regime: Measured, stable: sympy.Expr, derived_from: tuple[sympy.Expr, int]
    ) -> Measured | None:
        """The regime, its polynomial's coefficients formulas of the parameters
        (sympy's series) where the formula has any; None where sympy finds no
        such series, or one that disagrees with the measured fit. The series of
        a derivative is that of the value (smaller), differentiated, where the
        value is a function of the same input alone."""
        if not self._has_parameters(stable):
            return regime
        (numeric, condition), (general, _) = regime.formula.args
        (x,) = self._inputs(stable)
        value, order = derived_from
        if self._inputs(value) == [x]:
            polynomial = _series_in_parameters(value, x, order)
        else:
            polynomial = _series_in_parameters(stable, x, 0)
        if polynomial is None:
            return None
        params = {sympy.Symbol(n, real=True): v for n, v in self.sample.params}
        for share in (-1.0, 0.25, 0.5):  # the same function at the sampled parameters
            at = {x: share * float(condition.rhs), **params}
            fitted, exact = float(numeric.subs(at)), float(polynomial.subs(at))
            if not math.isclose(fitted, exact, rel_tol=1e-9, abs_tol=1e-300):
                return None
        formula = sympy.Piecewise((polynomial, condition), (general, True))
        return Measured(formula, regime.origin, regime.float32_errors, regime.float64_errors, regime.cost)

    def _inputs(self, formula: sympy.Expr) -> list[sympy.Symbol]:
        """The formula's tensor inputs: its symbols that are no parameter."""
        return [s for s in formula.free_symbols if s.name not in self.scalars]

    def _has_parameters(self, formula: sympy.Expr) -> bool:
        return any(s.name in self.scalars for s in formula.free_symbols)

    def _measure(self, formula, origin, truths, free) -> Measured:
        errors = [
            bits_of_error(rounded_values(formula, self.sample, dtype, self.memo), truths, dtype)
            for dtype in ("float32", "float64")
        ]
        return Measured(formula, origin, *errors, cost(formula, free, self.scalars))


def _polynomial(terms: list[tuple[int, float]], x: sympy.Symbol, threshold: float) -> sympy.Expr:
    """The Taylor polynomial with these (degree, coefficient) terms for |x| <
    threshold, in Horner's form (fewer multiplications, no powers), without the
    highest terms that together stay below half an ulp of float64 of the lowest
    term there: float64 could not see them."""
    if not terms:
        return sympy.S.Zero
    lowest_degree, lowest = terms[0]
    kept = list(terms)
    tail = 0.0
    while len(kept) > 1:
        degree, coefficient = kept[-1]
        tail += abs(coefficient) * threshold ** (degree - lowest_degree)
        if tail > abs(lowest) * 2.0**-54:
            break
        kept.pop()
    return sympy.horner(sympy.Add(*(sympy.Float(c, 17) * x**k for k, c in kept)), wrt=x)


@functools.lru_cache(maxsize=256)
def _series_in_parameters(formula: sympy.Expr, x: sympy.Symbol, order: int) -> sympy.Expr | None:
    """The Taylor polynomial at x = 0 to SERIES_DEGREE of the order-th derivative
    of `formula`, its coefficients formulas of the parameters, in Horner's form
    (every term kept: which are negligible depends on the parameters' values);
    None where sympy cannot expand it or the formula is too large to try."""
    series = _taylor_polynomial(formula, x, SERIES_DEGREE + order)
    if series is None:
        return None
    derivative = series.diff((x, order)) if order else series
    terms = [sympy.factor(c) * x**k for (k,), c in derivative.terms()]
    if not terms or any(t.has(sympy.nan, sympy.zoo, sympy.oo) for t in terms):
        return None
    return sympy.horner(sympy.Add(*terms), wrt=x)


@functools.lru_cache(maxsize=64)
def _taylor_polynomial(formula: sympy.Expr, x: sympy.Symbol, degree: int) -> sympy.Poly | None:
    if sympy.count_ops(formula) > SYMBOLIC_SERIES_OPS:
        return None
    try:
        series = sympy.series(functions.elementary(formula), x, 0, degree + 1).removeO()
        return sympy.Poly(sympy.expand(series), x)
    except Exception:  # noqa: BLE001 - sympy's series fails in many ways; the regime is optional
        return None


def _candidates(stable: sympy.Expr, as_written: sympy.Expr) -> list[tuple[sympy.Expr, str]]:
    """Equivalent forms, the stable one first, each once (a breadth-first search
    over the rewrites, SEARCH_DEPTH deep, at most MAX_CANDIDATES)."""
    forms: dict[sympy.Expr, str] = {stable: "stable"}
    forms.setdefault(as_written, "as written")
    if as_written == stable:
        forms[stable] = "as written"  # the stable form is the formula as written
    frontier = list(forms)
    for _ in range(SEARCH_DEPTH):
        following = []
        for formula in frontier:
            for rewritten, how in _rewrites(formula):
                if len(forms) >= MAX_CANDIDATES:
                    break
                if rewritten not in forms:
                    forms[rewritten] = f"{forms[formula]}, {how}"
                    following.append(rewritten)
        frontier = following
    return list(forms.items())


def _rewrites(formula: sympy.Expr) -> Iterator[tuple[sympy.Expr, str]]:
    """Each rewrite applied at one place (every occurrence of one subexpression),
    and at all its places; then, for a formula of at most WHOLE_FORMULA_NODES
    nodes, the whole-formula transforms and stabilisation (a rewrite may
    uncover a stable spelling)."""
    everywhere: dict[str, dict[sympy.Expr, sympy.Expr]] = {}  # rule -> all its places
    size = 0
    for node in sympy.preorder_traversal(formula):
        size += 1
        if node.is_Atom:
            continue
        for rule in REWRITES:
            if type(rule.pattern) is not type(node):
                continue
            for bindings in match(rule.pattern, node, {}):
                replacement = rule.replacement(bindings)
                if replacement is None:
                    continue
                yield formula.xreplace({node: replacement}), rule.name
                everywhere.setdefault(rule.name, {}).setdefault(node, replacement)
                break
    for name, places in everywhere.items():
        if len(places) > 1:  # sqrt(x**2 + 1) and sqrt(x**2 + 3) both to hypot
            yield formula.xreplace(places), f"{name} everywhere"
    if size > WHOLE_FORMULA_NODES:
        return  # together() and friends cost more than they find on large formulas
    for name, transform in _WHOLE_FORMULA:
        yield transform(formula), name
    yield stabilize(formula), "stabilised"


# --- recompute or save -------------------------------------------------------------


def partials_to_save(tables: PartialTables, order: int, scalars: frozenset[str]) -> tuple[str, ...]:
    """The table entries (orders 1 to `order`) that the first-order Backward keeps
    where autograd records a graph through it (create_graph), so that the backward
    after it reads them instead of computing them again; () to recompute.

    Computing the orders together in the op's backward costs what the Backward
    computed alone (its order-1 program, `tables.stages[0]` and the order-1
    entries), and the next backward then computes nothing: the saving is that
    program's cost. The price is memory: each entry that is not an input itself
    is held between the two backward passes. Saved where the saving exceeds one
    elementwise multiplication per tensor held, so a table of bare inputs and
    products (f = x*y) is recomputed.
    """
    if order < 1:
        return ()
    entries = tuple(e.name for e in tables.entries if e.order <= order)
    first_order = [o for e, o in zip(tables.entries, tables.outputs) if e.order == 1]
    program = [value for _, value in tables.stages[0]] + first_order
    try:
        recompute = math.fsum(cost(value, set(), scalars) for value in program)
    except Unmeasurable:
        return ()
    if recompute <= tables.held(entries) * costs.cost("mul"):
        return ()
    return entries


# --- cost ------------------------------------------------------------------------


def cost(formula: sympy.Expr, free: set[sympy.Expr], scalars: frozenset[str]) -> float:
    """Time to compute `formula` elementwise, in multiplications, each distinct
    subexpression once (the kernels share them), those in `free` for nothing."""
    # fsum: the same total whatever order the set iterates in (hash seeds vary).
    return math.fsum(_node_cost(n) for n in _tensor_operations(formula, scalars) - free)


@functools.lru_cache(maxsize=65536)
def _tensor_operations(formula: sympy.Basic, scalars: frozenset[str]) -> frozenset[sympy.Basic]:
    """The distinct operations of `formula` that act on a tensor: those of
    parameters alone are Python floats, computed once per call."""
    if formula.is_Atom:
        return frozenset()
    below = frozenset().union(*(_tensor_operations(a, scalars) for a in formula.args))
    tensor = bool(below) or any(
        a.is_Symbol and a.name not in scalars for a in formula.args
    )
    return below | {formula} if tensor else below


def _node_cost(node: sympy.Expr) -> float:
    if node.is_Add:
        return costs.cost("add") * (len(node.args) - 1)
    if node.is_Mul:
        factors = [f for f in node.args if f != -1]  # -x*y is one multiplication
        if len(factors) == 1:
            return costs.cost("neg")
        return costs.cost("mul") * (len(factors) - 1)
    if node.is_Pow:
        return costs.cost(_POWERS.get(node.exp, "pow_int" if node.exp.is_Integer else "pow"))
    if isinstance(node, sympy.Piecewise):
        return costs.cost("where") * (len(node.args) - 1)
    if isinstance(node, ExprCondPair):
        return 0.0  # a branch of the Piecewise above: its parts are counted themselves
    if isinstance(node, sympy.core.relational.Relational):
        return costs.cost("gt")
    if isinstance(node, (sympy.And, sympy.Or, sympy.Not)):
        return costs.cost("mul")
    if isinstance(node, functions.held):
        return 0.0  # its argument's operations are counted themselves
    if type(node) not in _FUNCTION_NAMES:
        raise Unmeasurable(f"no cost for {type(node).__name__}")
    return costs.cost(_FUNCTION_NAMES[type(node)])


# How the printer writes each power (printer.py's _print_Pow).
_POWERS = {
    sympy.S.Half: "sqrt",
    -sympy.S.Half: "rsqrt",
    sympy.S.NegativeOne: "reciprocal",
    sympy.Integer(2): "square",
}
# The cost table's name of each function: its registry row's first name.
_FUNCTION_NAMES: dict[type, str] = {
    row.sympy_class: row.names[0] for row in reversed(REGISTRY) if row.names
} | {sympy.Max: "max", sympy.Min: "min", functions.guarded: "where", sympy.erfc: "erfc"}
