"""Stable rewriting, used by derive before and after differentiation.

Rules in the spirit of sympy.codegen.rewriting's optims_c99 (which is too slow
to run on every derivative). A user who writes the textbook formula gets the stable op: log(1 + exp(a))
becomes softplus(a), 1/(1 + exp(-a)) sigmoid(a), exp(a) - 1 expm1(a),
log(1 + a) log1p(a), log(exp(a) + exp(b)) logaddexp(a, b), 1 + erf(a) erfc(-a),
1 ± tanh(a) 2*sigmoid(±2a), and the derivative of tanh, 1 - tanh(a)**2, becomes
4*sigmoid(2a)*sigmoid(-2a), which does not cancel to 0 for large |a|.

Every rule is a pattern on the expression tree applied bottom-up by
`sympy.Basic.replace`; each is cheap and the whole pass is linear in the tree.
"""

from __future__ import annotations

import functools

import sympy

from .functions import erfc, expm1, guarded, log1p, logaddexp, sigmoid, softplus


@functools.lru_cache(maxsize=4096)
def stabilize(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with naive, cancellation-prone spellings replaced by stable ones."""
    previous = None
    while previous != expr:  # a rewrite can expose another (log(sigmoid(...)))
        previous = expr
        expr = expr.replace(lambda e: e.is_Function or e.is_Pow or e.is_Add or e.is_Mul, _rewrite)
    return expr


def _rewrite(e: sympy.Expr) -> sympy.Expr:
    for rule in _RULES:
        result = rule(e)
        if result is not None:
            return result
    return e


def _expm1(e: sympy.Expr) -> sympy.Expr | None:
    """exp(a) - 1 -> expm1(a), also inside a longer sum (as sympy.codegen's optims_c99)."""
    if not (e.is_Add and sympy.S.NegativeOne in e.args):
        return None
    for term in e.args:
        if isinstance(term, sympy.exp):
            rest = [t for t in e.args if t is not term and t != -1]
            return sympy.Add(expm1(term.args[0]), *rest)
    return None


def _log1p(e: sympy.Expr) -> sympy.Expr | None:
    """log(1 + a) -> log1p(a)."""
    if isinstance(e, sympy.log) and e.args[0].is_Add and sympy.S.One in e.args[0].args:
        return log1p(e.args[0] - 1)
    return None


def _softplus(e: sympy.Expr) -> sympy.Expr | None:
    """log1p(exp(a)) -> softplus(a)."""
    if isinstance(e, log1p) and isinstance(e.args[0], sympy.exp):
        return softplus(e.args[0].args[0])
    return None


def _log_of_sum(e: sympy.Expr) -> sympy.Expr | None:
    """log(exp(a) + exp(b)) -> logaddexp(a, b); log(sigmoid(a)) -> -softplus(-a);
    log(cosh(a)) -> a + softplus(-2a) - log(2)."""
    if not isinstance(e, sympy.log):
        return None
    arg = e.args[0]
    if isinstance(arg, sympy.cosh):
        a = arg.args[0]
        return a + softplus(-2 * a) - sympy.log(2)
    if isinstance(arg, sigmoid):
        return -softplus(-arg.args[0])
    if arg.is_Add and len(arg.args) == 2 and all(isinstance(t, sympy.exp) for t in arg.args):
        a, b = (t.args[0] for t in arg.args)
        return logaddexp(a, b)
    return None


def _sigmoid(e: sympy.Expr) -> sympy.Expr | None:
    """1/(1 + exp(b)) -> sigmoid(-b); exp(a)/(1 + exp(a)) -> sigmoid(a)."""
    if e.is_Pow and e.exp == -1:
        exponent = _one_plus_exp(e.base)
        if exponent is not None:
            return sigmoid(-exponent)
    if e.is_Mul:
        factors = list(e.args)
        for i, factor in enumerate(factors):  # exp(a)*sigmoid(-a) -> sigmoid(a)
            if isinstance(factor, sympy.exp):
                partner = sigmoid(-factor.args[0])
                if partner in factors:
                    rest = [f for k, f in enumerate(factors) if k != i and f != partner]
                    return sympy.Mul(*rest) * sigmoid(factor.args[0])
        for i, factor in enumerate(factors):
            if not (factor.is_Pow and factor.exp == -1):
                continue
            exponent = _one_plus_exp(factor.base)
            if exponent is None:
                continue
            for j, other in enumerate(factors):
                if j != i and isinstance(other, sympy.exp) and other.args[0] == exponent:
                    rest = [f for k, f in enumerate(factors) if k not in (i, j)]
                    return sympy.Mul(*rest) * sigmoid(exponent)
    return None


def _one_plus_exp(e: sympy.Expr) -> sympy.Expr | None:
    """b when e is 1 + exp(b)."""
    if e.is_Add and len(e.args) == 2 and sympy.S.One in e.args:
        other = e.args[0] if e.args[1] == 1 else e.args[1]
        if isinstance(other, sympy.exp):
            return other.args[0]
    return None


def _one_plus(e: sympy.Expr) -> sympy.Expr | None:
    """1 + erf(a) -> erfc(-a), 1 - erf(a) -> erfc(a), 1 ± tanh(a) -> 2*sigmoid(±2a),
    1 - tanh(a)**2 -> 4*sigmoid(2a)*sigmoid(-2a), 1 - 2*sigmoid(b) -> -tanh(b/2)."""
    if not (e.is_Add and len(e.args) == 2 and sympy.S.One in e.args):
        return None
    term = e.args[0] if e.args[1] == 1 else e.args[1]
    sign, core = (-1, -term) if term.could_extract_minus_sign() else (1, term)
    if isinstance(core, sympy.erf):
        return erfc(-sign * core.args[0])
    if isinstance(core, sympy.tanh):
        return 2 * sigmoid(2 * sign * core.args[0])
    if sign == -1 and core.is_Mul and len(core.args) == 2 and core.args[0] == 2:
        if isinstance(core.args[1], sigmoid):  # 1 - 2*sigmoid(b) = -tanh(b/2)
            return -sympy.tanh(core.args[1].args[0] / 2)
    if sign == -1 and core.is_Pow and core.exp == 2 and isinstance(core.base, sympy.tanh):
        a = core.base.args[0]
        return 4 * sigmoid(2 * a) * sigmoid(-2 * a)
    return None


def _minus_softplus(e: sympy.Expr) -> sympy.Expr | None:
    """a - softplus(a) -> -softplus(-a): log(sigmoid(a)) as sympy may expand it."""
    if e.is_Add and len(e.args) == 2:
        for term, other in (e.args, e.args[::-1]):
            if (
                term.could_extract_minus_sign()
                and isinstance(-term, softplus)
                and (-term).args[0] == other
            ):
                return -softplus(-other)
    return None


def _sigmoid_difference(e: sympy.Expr) -> sympy.Expr | None:
    """sigmoid(a) - sigmoid(-a) -> tanh(a/2), exact near a = 0 where the
    difference cancels (it appears in every second derivative of sigmoid)."""
    if not (e.is_Add and len(e.args) == 2):
        return None
    for plus, minus in (e.args, e.args[::-1]):
        if isinstance(plus, sigmoid) and minus == -sigmoid(-plus.args[0]):
            return sympy.tanh(plus.args[0] / 2)
    return None


def _tanh_quotient(e: sympy.Expr) -> sympy.Expr | None:
    """expm1(b)/(exp(b) + 1) -> tanh(b/2): the textbook spelling of tanh, once
    exp(b) - 1 has become expm1(b)."""
    if not e.is_Mul:
        return None
    for factor in e.args:
        if isinstance(factor, expm1):
            b = factor.args[0]
            # 1/(exp(b) + 1), or the sigmoid(-b) the rule above made of it
            for denominator in ((sympy.exp(b) + 1) ** -1, sigmoid(-b)):
                if denominator in e.args:
                    rest = [f for f in e.args if f is not factor and f != denominator]
                    return sympy.Mul(*rest) * sympy.tanh(b / 2)
    return None


def _expm1_of_log1p(e: sympy.Expr) -> sympy.Expr | None:
    """exp(log1p(a)) -> 1 + a, as sympy does for exp(log(.))."""
    if isinstance(e, sympy.exp) and isinstance(e.args[0], log1p):
        return 1 + e.args[0].args[0]
    if isinstance(e, expm1) and isinstance(e.args[0], log1p):
        return e.args[0].args[0]
    return None


_RULES = (
    _expm1,
    _log1p,
    _softplus,
    _log_of_sum,
    _tanh_quotient,
    _sigmoid,
    _one_plus,
    _minus_softplus,
    _sigmoid_difference,
    _expm1_of_log1p,
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
