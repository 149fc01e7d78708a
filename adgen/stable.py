"""Stable rewriting, used by derive before and after differentiation.

The rules are data: a table of named rewrites `pattern -> replacement` over
sympy expressions with wildcards, applied by one matcher (in the spirit of
sympy.codegen.rewriting's optims_c99, which is too slow to run on every
derivative). A user who writes the textbook formula gets the stable op:
log(1 + exp(a)) becomes softplus(a), 1/(1 + exp(-a)) sigmoid(a), exp(a) - 1
expm1(a), log(1 + a) log1p(a), log(exp(a) + exp(b)) logaddexp(a, b), 1 + erf(a)
erfc(-a), 1 ± tanh(a) 2*sigmoid(±2a), sigmoid(a) - sigmoid(-a) tanh(a/2) (each
also inside a larger sum), and the derivative of tanh, 1 - tanh(a)**2,
becomes 4*sigmoid(2a)*sigmoid(-2a), which does not cancel to 0 for large |a|.
Each rule has a soundness test (both sides agree at sample points).

The matcher is structural, not algebraic: a pattern's Add or Mul matches an Add
or Mul holding each of its arguments, and a wildcard that is itself an argument
of a pattern's Add or Mul takes whatever terms (or factors) are left (1 where
a product pattern meets a lone factor: b*sigmoid(a) matches sigmoid(x)). sympy's own
`match` would also accept x/(1 + exp(y)) as exp(y)/(1 + exp(y)) times
x*exp(-y), which is sound but puts back the exp the rule exists to remove.
One bottom-up pass of `sympy.Basic.replace` tries only the rules whose pattern
has the node's type at its top, so the pass stays linear in the tree.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import sympy

from .functions import erfc, expm1, guarded, log1p, logaddexp, sigmoid, softplus

Bindings = dict[sympy.Wild, sympy.Expr]


@dataclass(frozen=True)
class Rule:
    """One rewrite: `pattern` (with wildcards a, b, rest) -> `replacement`."""

    name: str  # "log1p"
    pattern: sympy.Expr  # log(1 + a)
    replacement: sympy.Expr  # log1p(a)


a, b, rest = sympy.Wild("a"), sympy.Wild("b"), sympy.Wild("rest")
_exp, _tanh = sympy.exp, sympy.tanh

RULES: tuple[Rule, ...] = (
    Rule("expm1", _exp(a) - 1 + rest, expm1(a) + rest),
    Rule("log1p", sympy.log(1 + a), log1p(a)),
    Rule("softplus", log1p(_exp(a)), softplus(a)),
    Rule("log of cosh", sympy.log(sympy.cosh(a)), a + softplus(-2 * a) - sympy.log(2)),
    Rule("log of sigmoid", sympy.log(sigmoid(a)), -softplus(-a)),
    Rule("logaddexp", sympy.log(_exp(a) + _exp(b)), logaddexp(a, b)),
    # exp(b) - 1 became expm1(b) above: the textbook tanh (e^b - 1)/(e^b + 1)
    Rule("tanh quotient", rest * expm1(b) / (_exp(b) + 1), rest * _tanh(b / 2)),
    Rule("tanh quotient of sigmoid", rest * expm1(b) * sigmoid(-b), rest * _tanh(b / 2)),
    Rule("sigmoid", 1 / (1 + _exp(b)), sigmoid(-b)),
    Rule("sigmoid of exp", rest * _exp(a) * sigmoid(-a), rest * sigmoid(a)),
    Rule("sigmoid quotient", rest * _exp(a) / (1 + _exp(a)), rest * sigmoid(a)),
    # softmax of two: e^a / (e^a + e^b) = sigmoid(a - b), which does not overflow
    Rule("sigmoid of a difference", rest * _exp(a) / (_exp(a) + _exp(b)), rest * sigmoid(a - b)),
    # the textbook tanh (e^a - e^-a)/(e^a + e^-a), and any (e^a - e^b)/(e^a + e^b)
    Rule("tanh of exponentials", rest * (_exp(a) - _exp(b)) / (_exp(a) + _exp(b)), rest * _tanh((a - b) / 2)),
    Rule("erfc", 1 + sympy.erf(a) + rest, erfc(-a) + rest),
    Rule("one minus erf", 1 - sympy.erf(a) + rest, erfc(a) + rest),
    Rule("one plus tanh", 1 + _tanh(a) + rest, 2 * sigmoid(2 * a) + rest),
    Rule("one minus tanh", 1 - _tanh(a) + rest, 2 * sigmoid(-2 * a) + rest),
    Rule("one minus twice sigmoid", 1 - 2 * sigmoid(a) + rest, -_tanh(a / 2) + rest),
    Rule("tanh derivative", 1 - _tanh(a) ** 2 + rest, 4 * sigmoid(2 * a) * sigmoid(-2 * a) + rest),
    Rule("log sigmoid expanded", a - softplus(a) + rest, -softplus(-a) + rest),
    Rule("sigmoid difference", b * sigmoid(a) - b * sigmoid(-a) + rest, b * _tanh(a / 2) + rest),
    Rule("exp of log1p", _exp(log1p(a)), 1 + a),
    Rule("expm1 of log1p", expm1(log1p(a)), a),
)


def _head(rule: Rule) -> type:
    return type(rule.pattern)


_BY_HEAD: dict[type, tuple[Rule, ...]] = {}
for _rule in RULES:
    _BY_HEAD[_head(_rule)] = _BY_HEAD.get(_head(_rule), ()) + (_rule,)


@functools.lru_cache(maxsize=4096)
def stabilize(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with naive, cancellation-prone spellings replaced by stable ones."""
    previous = None
    while previous != expr:  # a rewrite can expose another (log(sigmoid(...)))
        previous = expr
        expr = expr.replace(lambda e: type(e) in _BY_HEAD, _rewrite)
    return expr


def _rewrite(e: sympy.Expr) -> sympy.Expr:
    for rule in _BY_HEAD[type(e)]:
        for bindings in match(rule.pattern, e, {}):
            return rule.replacement.xreplace(bindings)
    return e


def match(pattern: sympy.Basic, expr: sympy.Basic, bindings: Bindings) -> Iterator[Bindings]:
    """Every way `expr` matches `pattern` structurally, extending `bindings`."""
    if _wildcards(pattern) <= bindings.keys():
        if pattern.xreplace(bindings) == expr:
            yield bindings
        return
    if isinstance(pattern, sympy.Wild):
        yield {**bindings, pattern: expr}
        return
    if type(expr) is not sympy.Mul and _takes_lone_factor(pattern, bindings):
        # A lone factor: the product of itself and the rest wildcard's 1.
        yield from _match_commutative(pattern, (expr,), bindings)
        return
    if type(pattern) is not type(expr):
        return
    if isinstance(pattern, (sympy.Add, sympy.Mul)):
        yield from _match_commutative(pattern, expr.args, bindings)
    elif len(pattern.args) == len(expr.args):
        yield from _match_sequence(list(pattern.args), list(expr.args), bindings)


@functools.lru_cache(maxsize=None)
def _wildcards(pattern: sympy.Basic) -> frozenset[sympy.Wild]:
    return frozenset(pattern.atoms(sympy.Wild))


def _binds(part: sympy.Basic, bindings: Bindings) -> bool:
    """Whether `part` (not a bare wildcard) still has wildcards to bind: then only
    an argument of its own type can match it (a bound part is compared as a value)."""
    return not isinstance(part, sympy.Wild) and not _wildcards(part) <= bindings.keys()


def _match_sequence(patterns, exprs, bindings: Bindings) -> Iterator[Bindings]:
    if not patterns:
        yield bindings
        return
    for bound in match(patterns[0], exprs[0], bindings):
        yield from _match_sequence(patterns[1:], exprs[1:], bound)


def _match_commutative(
    pattern: sympy.Expr, args: tuple[sympy.Expr, ...], bindings: Bindings
) -> Iterator[Bindings]:
    """Each argument of `pattern` matches a distinct one of `args`; a bare
    wildcard argument takes the rest (the identity when nothing is left), unless
    another argument holds it (a - softplus(a) + rest: a is whatever softplus
    holds, which may be several of the terms)."""
    rests = _rests(pattern, bindings)
    if len(rests) > 1:
        raise ValueError(f"pattern {pattern} has more than one wildcard to take the rest")
    parts = [arg for arg in pattern.args if arg not in rests]
    if len(parts) > len(args) or (not rests and len(parts) != len(args)):
        return
    # Cheap refusal first: each part still to bind needs an argument of its type
    # (a product that can be a lone factor aside).
    types = {type(arg) for arg in args}
    if any(
        _binds(part, bindings) and type(part) not in types and not _takes_lone_factor(part, bindings)
        for part in parts
    ):
        return
    # Arguments that bind wildcards first, then those already determined by them.
    parts.sort(key=lambda part: (isinstance(part, sympy.Wild), _negated_wildcards(part)))
    yield from _match_parts(parts, list(args), rests[0] if rests else None, type(pattern), bindings)


def _rests(pattern: sympy.Expr, bindings: Bindings) -> list[sympy.Wild]:
    """The arguments of a pattern's Add or Mul that take the rest: bare, unbound
    wildcards that no other argument holds."""
    return [
        arg
        for arg in pattern.args
        if isinstance(arg, sympy.Wild)
        and arg not in bindings
        and not any(other.has(arg) for other in pattern.args if other != arg)
    ]


def _takes_lone_factor(pattern: sympy.Basic, bindings: Bindings) -> bool:
    """Whether `pattern` is a product with a wildcard taking the rest of the
    factors, and so matches a lone factor too: b*sigmoid(a) matches sigmoid(x)
    with b = 1."""
    return isinstance(pattern, sympy.Mul) and bool(_rests(pattern, bindings))


def _match_parts(parts, left, rest_wild, kind, bindings: Bindings) -> Iterator[Bindings]:
    if not parts:
        if rest_wild is None:
            if not left:
                yield bindings
        else:
            yield from match(rest_wild, kind(*left), bindings)
        return
    part = parts[0]
    value = part.xreplace(bindings)
    if type(value) is kind and not _wildcards(value):
        # A bound sum (product) among the terms (factors): each of its own, once.
        remaining = list(left)
        for term in value.args:
            if term not in remaining:
                break
            remaining.remove(term)
        else:
            yield from _match_parts(parts[1:], remaining, rest_wild, kind, bindings)
        return
    typed = _binds(part, bindings)
    for index, candidate in enumerate(left):
        others = left[:index] + left[index + 1 :]
        if kind is sympy.Mul and _is_power(candidate) and not _is_power(part):
            # One factor of a power: sigmoid(a) among the factors of sigmoid(a)**2*b.
            base, exponent = candidate.args
            for bound in match(part, base, bindings):
                yield from _match_parts(parts[1:], [*others, base ** (exponent - 1)], rest_wild, kind, bound)
        if typed and type(candidate) is not type(part) and not _takes_lone_factor(part, bindings):
            continue
        for bound in match(part, candidate, bindings):
            yield from _match_parts(parts[1:], others, rest_wild, kind, bound)


def _is_power(expr: sympy.Basic) -> bool:
    """Whether `expr` is a power with a whole exponent of at least 2."""
    return expr.is_Pow and expr.exp.is_Integer and expr.exp >= 2


def _negated_wildcards(part: sympy.Basic) -> bool:
    """Whether `part` holds -a for a wildcard a: matched structurally only once a is bound."""
    return any(
        node.is_Mul and node.could_extract_minus_sign() and node.has(sympy.Wild)
        for node in sympy.preorder_traversal(part)
    )


def guard_branches(expr: sympy.Expr) -> sympy.Expr:
    """Evaluate each branch of a where() on an input where that branch is defined.

    torch.where(c, a(x), b(x)) passes autograd a zero gradient for the branch not
    taken, but zero times an inf or NaN derivative (sqrt(x) at x < 0) is NaN. So
    in formulas that autograd differentiates, branch a sees where(c, x, safe)
    instead of x, with `safe` a point where c holds (and likewise for b).
    """
    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), _guard_piecewise)


def _guard_piecewise(piecewise: sympy.Piecewise) -> sympy.Expr:
    branches = []
    previous: list[sympy.Basic] = []
    for value, condition in piecewise.args:
        holds = condition if condition != sympy.true else sympy.And(*[sympy.Not(c) for c in previous])
        safe = _safe_point(holds)
        if safe is not None:
            symbol, point = safe
            value = value.subs(symbol, guarded(symbol, point, holds))
        branches.append((value, condition))
        previous.append(condition)
    return sympy.Piecewise(*branches, evaluate=False)


def _safe_point(condition: sympy.Basic) -> tuple[sympy.Symbol, sympy.Expr] | None:
    """(x, a number where `condition` holds) when it compares one symbol with numbers."""
    if condition in (sympy.true, sympy.false) or not condition.free_symbols:
        return None
    if len(condition.free_symbols) != 1:
        return None
    (symbol,) = condition.free_symbols
    if (
        isinstance(condition, sympy.StrictLessThan)
        and condition.lhs == sympy.Abs(symbol)
        and condition.rhs.is_positive
    ):
        return None  # |x| < c: select's series regimes, a polynomial needs no guard
    try:
        interval = condition.as_set()
    except (NotImplementedError, TypeError, ValueError):
        return None
    if not isinstance(interval, sympy.Interval) or interval.is_empty:
        return None
    low, high = interval.inf, interval.sup
    if low.is_finite and high.is_finite:
        return symbol, (low + high) / 2
    if low.is_finite:
        return symbol, low + 1
    if high.is_finite:
        return symbol, high - 1
    return None
