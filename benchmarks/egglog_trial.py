"""EVALUATION ONLY: does equality saturation (the `egglog` package) find better
forms than adgen's own rewrite search (adgen/select.py), and at what emit-time
cost? (issue #14)

egglog is NOT a project dependency, and nothing in adgen/ imports it. Run this
from the repository root with a throwaway virtual environment:

    python -m venv /tmp/eggvenv --system-site-packages
    /tmp/eggvenv/bin/pip install egglog          # 13.x
    /tmp/eggvenv/bin/python benchmarks/egglog_trial.py [--iterations 10] [--nodes 20000] [--k 24]

What it does, per formula (the op's value and its 1st/2nd derivatives, as
derive's table entries f, f_x, f_xx, ... hand them to the selection stage):

  1. adgen: FormSelector._choose as emission runs it (REWRITES, SEARCH_DEPTH deep,
     MAX_CANDIDATES, whole-formula transforms, then the series regimes). Timed:
     the candidate search alone (select._candidates) and the whole choice.
  2. egglog: the stable form and the formula as written go into one e-class of
     an e-graph over a small term language (+ - * /, integer powers, exp, log,
     sqrt, sigmoid, softplus, tanh, expm1, log1p; other calls opaque), which is
     saturated with the rules below (at most --iterations, stopping once it holds
     --nodes e-nodes); the --k cheapest distinct terms of the root e-class are
     extracted (tree cost from adgen/costs.py's table; a k-best extraction over
     the serialized e-graph, since egglog's extract_multiple gives only variants
     of the root's top e-node) and converted back to sympy. Timed: saturation +
     extraction + conversion.
  3. The same FormSelector then chooses among {stable, as written, egglog's
     terms} with its own rule, its own sample, measure (bits of error in float32
     and float64 against the mpmath truth) and cost (select.cost, with what lower
     entries computed free), series regimes included: both searches face the
     same judge.

Verdict per formula, egglog's pick against adgen's (total bits = float32 +
float64 mean bits of error): "better" = >= 0.5 bits less at no more cost, or
cheaper at < 0.5 bits more; "worse" the mirror; "equal" = same cost and within
0.5 bits; "trade" = more accurate but costlier, or the reverse. Also the most
accurate candidate each search found (regardless of cost).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sympy

try:
    from egglog import EGraph, Expr, StringLike, function, i64, i64Like, rewrite, ruleset, union, vars_
except ImportError:  # pragma: no cover - evaluation script
    sys.exit("egglog is not installed here: see this file's docstring (use /tmp/eggvenv/bin/python)")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adgen import costs, select  # noqa: E402
from adgen.derive import Param, build_model  # noqa: E402
from adgen.functions import expm1, held, log1p, sigmoid, softplus  # noqa: E402
from adgen.parse import parse_expression  # noqa: E402
from adgen.select import FormSelector, MAX_CANDIDATES  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "data" / "fpbench_dev_corpus.json"

# --- the term language -------------------------------------------------------------


class M(Expr):
    def __init__(self, value: i64Like) -> None: ...  # an integer

    @classmethod
    def var(cls, name: StringLike) -> M: ...

    @classmethod
    def opaque(cls, key: StringLike) -> M: ...  # a float constant or a node we do not model

    def __add__(self, other: M) -> M: ...

    def __sub__(self, other: M) -> M: ...

    def __mul__(self, other: M) -> M: ...

    def __truediv__(self, other: M) -> M: ...

    def __neg__(self) -> M: ...

    def ipow(self, n: i64Like) -> M: ...  # integer power n >= 2


@function
def Sqrt(x: M) -> M: ...
@function
def Exp(x: M) -> M: ...
@function
def Log(x: M) -> M: ...
@function
def Sigmoid(x: M) -> M: ...
@function
def Softplus(x: M) -> M: ...
@function
def Tanh(x: M) -> M: ...
@function
def Expm1(x: M) -> M: ...
@function
def Log1p(x: M) -> M: ...
@function
def Call1(name: StringLike, x: M) -> M: ...  # cos, sin, held, ...: rules see only cos/sin
@function
def Call2(name: StringLike, x: M, y: M) -> M: ...


a, b, c = vars_("a b c", M)
i, j = vars_("i j", i64)
ZERO, ONE, TWO = M(0), M(1), M(2)

RULES = ruleset(
    # Field algebra.
    rewrite(a + b).to(b + a),
    rewrite(a * b).to(b * a),
    rewrite((a + b) + c).to(a + (b + c)),
    rewrite(a + (b + c)).to((a + b) + c),
    rewrite((a * b) * c).to(a * (b * c)),
    rewrite(a * (b * c)).to((a * b) * c),
    rewrite(a * (b + c)).to(a * b + a * c),
    rewrite(a * b + a * c).to(a * (b + c)),
    rewrite(a - b).to(a + -b),
    rewrite(a + -b).to(a - b),
    rewrite(-a).to(M(-1) * a),
    rewrite(M(-1) * a).to(-a),
    rewrite(-(-a)).to(a),
    rewrite(-(a + b)).to(-a + -b),
    rewrite(-(a - b)).to(b - a),
    rewrite((-a) * b).to(-(a * b)),
    rewrite(a - a).to(ZERO),
    rewrite(a + ZERO).to(a),
    rewrite(a * ONE).to(a),
    rewrite(a * ZERO).to(ZERO),
    rewrite(M(i) + M(j)).to(M(i + j)),
    rewrite(M(i) * M(j)).to(M(i * j)),
    # Division: a/b*c forms.
    rewrite((a / b) * c).to((a * c) / b),
    rewrite((a * c) / b).to((a / b) * c),
    rewrite(a / (b * c)).to((a / b) / c),
    rewrite((a / b) / c).to(a / (b * c)),
    rewrite(a / b + c / b).to((a + c) / b),
    rewrite(a / ONE).to(a),
    # Integer powers.
    rewrite(a.ipow(2)).to(a * a),
    rewrite(a * a).to(a.ipow(2)),
    rewrite(a.ipow(i) * a).to(a.ipow(i + 1)),
    rewrite(Sqrt(a) * Sqrt(a)).to(a),
    # adgen's REWRITES table.
    rewrite(Sigmoid(a)).to(ONE - Sigmoid(-a)),
    rewrite(ONE - Sigmoid(a)).to(Sigmoid(-a)),
    rewrite(Softplus(a)).to(a + Softplus(-a)),
    rewrite(Tanh(a)).to(TWO * Sigmoid(TWO * a) - ONE),
    rewrite(Sigmoid(a)).to((ONE + Tanh(a / TWO)) / TWO),
    rewrite(Expm1(a)).to(Exp(a) - ONE),
    rewrite(Exp(a) - ONE).to(Expm1(a)),
    rewrite(Log1p(a)).to(Log(ONE + a)),
    rewrite(Log(ONE + a)).to(Log1p(a)),
    rewrite(Exp(a) - Exp(b)).to(Exp(b) * Expm1(a - b)),
    rewrite(Sqrt(a) - Sqrt(b)).to((a - b) / (Sqrt(a) + Sqrt(b))),
    rewrite(Log(a) - Log(b)).to(Log1p((a - b) / b)),
    rewrite(ONE / a - ONE / b).to((b - a) / (a * b)),
    rewrite(ONE - Call1("cos", a)).to(TWO * Call1("sin", a / TWO).ipow(2)),
    rewrite(Sqrt(a * a + b * b)).to(Call2("hypot", a, b)),
    # stable.py's tanh derivative, both ways.
    rewrite(M(4) * Sigmoid(TWO * a) * Sigmoid(-(TWO * a))).to(ONE - Tanh(a).ipow(2)),
    rewrite(ONE - Tanh(a).ipow(2)).to(M(4) * Sigmoid(TWO * a) * Sigmoid(-(TWO * a))),
    # Textbook forms of the stable vocabulary.
    rewrite(ONE / (ONE + Exp(-a))).to(Sigmoid(a)),
    rewrite(Log(ONE + Exp(a))).to(Softplus(a)),
    rewrite(Exp(a) * Exp(b)).to(Exp(a + b)),
    rewrite(Exp(a) / Exp(b)).to(Exp(a - b)),
    rewrite(a / (a + b)).to(ONE / (ONE + b / a)),
    rewrite(Log(Exp(a))).to(a),
)

# --- sympy <-> egglog --------------------------------------------------------------

_UNARY = {sympy.exp: Exp, sympy.log: Log, sigmoid: Sigmoid, softplus: Softplus,
          sympy.tanh: Tanh, expm1: Expm1, log1p: Log1p}  # fmt: skip
_BACK_UNARY = {"Exp": sympy.exp, "Log": sympy.log, "Sigmoid": sigmoid, "Softplus": softplus,
               "Tanh": sympy.tanh, "Expm1": expm1, "Log1p": log1p, "Sqrt": sympy.sqrt}  # fmt: skip


class Converter:
    """sympy -> egglog terms, and (through the serialized e-graph) back. Nodes
    outside the language become opaque leaves (their sympy kept by key), calls of
    one or two arguments outside it Call1/Call2 by name."""

    def __init__(self) -> None:
        self.opaque: dict[str, sympy.Expr] = {}
        self.calls: dict[str, type] = {}

    def to_egg(self, e: sympy.Expr) -> M:
        if e.is_Symbol:
            return M.var(e.name)
        if e.is_Integer:
            return M(int(e))
        if e.is_Rational:
            return M(int(e.p)) / M(int(e.q))
        if e.is_Add:
            terms = [self.to_egg(t) for t in e.args]
            out = terms[0]
            for t in terms[1:]:
                out = out + t
            return out
        if e.is_Mul:
            coefficient, factors = e.as_coeff_mul()
            numerator, denominator = [], []
            for f in factors:
                if f.is_Pow and f.exp.is_Rational and f.exp < 0:
                    denominator.append(self.to_egg(f.base ** -f.exp))
                else:
                    numerator.append(self.to_egg(f))
            out = None
            for f in numerator:
                out = f if out is None else out * f
            if out is None:
                out = ONE
            if coefficient == -1:
                out = -out
            elif coefficient != 1:
                out = self.to_egg(coefficient) * out
            for f in denominator:
                out = out / f
            return out
        if e.is_Pow and e.exp.is_Rational:
            base, n = self.to_egg(e.base), e.exp
            if n < 0:
                return ONE / self.to_egg(e.base ** -n)
            if n == 1:
                return base
            if n == sympy.S.Half:
                return Sqrt(base)
            if n.is_Integer:
                return base.ipow(int(n))
            if n.q == 2:  # x**(3/2) = sqrt(x)**3
                return Sqrt(base).ipow(int(n.p))
        if type(e) in _UNARY:
            return _UNARY[type(e)](self.to_egg(e.args[0]))
        if isinstance(e, sympy.Function) and len(e.args) in (1, 2) and not e.is_Piecewise:
            name = type(e).__name__
            self.calls[name] = type(e)
            args = [self.to_egg(x) for x in e.args]
            return Call1(name, *args) if len(args) == 1 else Call2(name, *args)
        key = sympy.srepr(e)
        self.opaque[key] = e
        return M.opaque(key)

    def to_sympy(self, term) -> sympy.Expr:
        """A term of k_best (op, children...) to sympy."""
        op, *kids = term
        if op == "M":
            return sympy.Integer(int(kids[0][0]))
        if op == "M.var":
            return sympy.Symbol(json.loads(kids[0][0]), real=True)
        if op == "M.opaque":
            return self.opaque[json.loads(kids[0][0])]
        if op in ("Call1", "Call2"):
            name = json.loads(kids[0][0])
            cls = self.calls.get(name) or getattr(sympy, name)
            return cls(*(self.to_sympy(k) for k in kids[1:]))
        args = [self.to_sympy(k) for k in kids]
        if op == "· + ·":
            return args[0] + args[1]
        if op == "· - ·":
            return args[0] - args[1]
        if op == "· * ·":
            return args[0] * args[1]
        if op == "· / ·":
            return args[0] / args[1]
        if op == "-·":
            return -args[0]
        if op == "·.ipow":
            return args[0] ** int(kids[1][0])
        return _BACK_UNARY[op](args[0])


def _symbols_match(expr: sympy.Expr) -> dict:
    """The symbols of the formula, so that converted terms use the same ones."""
    return {sympy.Symbol(s.name, real=True): s for s in expr.free_symbols}


# --- k-best extraction -------------------------------------------------------------

_OP_COST = {"· + ·": costs.cost("add"), "· - ·": costs.cost("sub"), "· * ·": costs.cost("mul"),
            "· / ·": costs.cost("div"), "-·": costs.cost("neg"), "Sqrt": costs.cost("sqrt"),
            "Exp": costs.cost("exp"), "Log": costs.cost("log"), "Sigmoid": costs.cost("sigmoid"),
            "Softplus": costs.cost("softplus"), "Tanh": costs.cost("tanh"),
            "Expm1": costs.cost("expm1"), "Log1p": costs.cost("log1p")}  # fmt: skip


def _node_cost(op: str, kids: list) -> float:
    if op in _OP_COST:
        return _OP_COST[op]
    if op == "·.ipow":
        return costs.cost("square") if kids[1][0] == "2" else costs.cost("pow_int")
    if op in ("Call1", "Call2"):
        try:
            return costs.cost(json.loads(kids[0][0]))
        except KeyError:
            return 2.0
    return 0.0  # leaves


def k_best(serialized: dict, root_class: str, k: int, per_class: int = 4, rounds: int = 8):
    """The k cheapest distinct terms (tree cost) of `root_class`: a fixpoint over
    the e-classes, each keeping its `per_class` cheapest terms, a node's terms
    made from its children's cheapest with one child at a time varied."""
    nodes = serialized["nodes"]
    by_class: dict[str, list[tuple[str, list[str]]]] = {}
    for node in nodes.values():
        kids = [nodes[ch]["eclass"] for ch in node["children"]]
        by_class.setdefault(node["eclass"], []).append((node["op"], kids))
    best: dict[str, list[tuple[float, tuple]]] = {}
    primitive = {c for c, d in serialized["class_data"].items() if d["type"] in ("String", "i64")}
    for cls in primitive & by_class.keys():  # a literal: itself
        best[cls] = [(0.0, (by_class[cls][0][0],))]
    for _ in range(rounds):
        changed = False
        for cls, members in by_class.items():
            if cls in primitive:
                continue
            limit = k if cls == root_class else per_class
            found = {t: cst for cst, t in best.get(cls, [])}
            for op, kids in members:
                if any(kid not in best for kid in kids):
                    continue
                first = [best[kid][0] for kid in kids]
                combos = [first]
                for position, kid in enumerate(kids):
                    for alt in best[kid][1:]:
                        combos.append(first[:position] + [alt] + first[position + 1:])
                for combo in combos:
                    children = tuple(t for _, t in combo)
                    term = (op, *children)
                    total = _node_cost(op, list(children)) + sum(cst for cst, _ in combo)
                    if term not in found or total < found[term]:
                        found[term] = total
            ranked = sorted(((cst, t) for t, cst in found.items()), key=lambda p: p[0])[:limit]
            if ranked and ranked != best.get(cls):
                best[cls] = ranked
                changed = True
        if not changed:
            break
    return best.get(root_class, [])


SATURATION_S: list[float] = []  # of each call, for the summary


def egglog_candidates(stable: sympy.Expr, written: sympy.Expr, iterations: int, max_nodes: int, k: int):
    """(candidates for select._choose's list, seconds, e-nodes, iterations run)."""
    start = time.perf_counter()
    conv = Converter()
    graph = EGraph()
    root = graph.let("root", conv.to_egg(stable))
    if written != stable:
        graph.register(union(root).with_(conv.to_egg(written)))
    ran = 0
    size = 0
    for ran in range(1, iterations + 1):
        report = graph.run(RULES * 1)
        size = sum(n for _, n in graph.all_function_sizes())
        if size >= max_nodes or not report.updated:
            break
    saturated_s = time.perf_counter() - start
    serialized = json.loads(graph._serialize(split_primitive_outputs=False).to_json())
    root_class = next(c for c, d in serialized["class_data"].items() if d.get("let") in ("root", "$root"))
    terms = k_best(serialized, root_class, 4 * k)  # sympy merges many: keep k distinct
    rename = _symbols_match(stable) | _symbols_match(written)
    forms: dict[sympy.Expr, str] = {stable: "stable"}
    forms.setdefault(written, "as written")
    if written == stable:
        forms[stable] = "as written"
    for rank, (cst, term) in enumerate(terms):
        try:
            formula = conv.to_sympy(term).xreplace(rename)
        except Exception:  # noqa: BLE001 - a term sympy cannot build: not a candidate
            continue
        forms.setdefault(formula, f"egglog #{rank}")
        if len(forms) >= k + 2:  # k of egglog's besides stable and as written
            break
    SATURATION_S.append(saturated_s)
    return list(forms.items()), time.perf_counter() - start, size, ran


# --- the formulas ------------------------------------------------------------------

CATALOGUE = (  # name, text, params
    ("mish", "x*tanh(softplus(x))", ()),
    ("silu", "x*sigmoid(x)", ()),
    ("gelu_tanh", "0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))", ()),
    ("softplus", "log(1 + exp(beta*x))/beta", (("beta", 1.0),)),
    ("log_cosh", "log(cosh(x))", ()),
)
CORPUS_PICKS = (  # corpus index: cancellation-prone (Herbie's classics among them)
    122, 364, 6, 8, 19, 11, 281, 311, 343, 67, 48, 22, 303,
)
EXTRA = (  # the brief's examples the corpus lacks in this spelling
    ("1-cos/x2", "(1 - cos(x))/(x*x)", {}),
    ("softmax2", "exp(a)/(exp(a) + exp(b))", {}),
)


@dataclass
class Call:
    op: str
    target: str
    selector: FormSelector
    stable: sympy.Expr
    written: sympy.Expr
    free: set
    choice: select.Choice | None = None
    search_s: float = 0.0
    choose_s: float = 0.0


def adgen_calls(op: str, text: str, params, domains, orders) -> list[Call]:
    """Build the op's model with a FormSelector that records each formula it chooses."""
    calls: list[Call] = []
    param_values = dict(params)

    class Recording(FormSelector):
        def _choose(self, target, stable, as_written, free):
            search = []
            original = select._candidates

            def timed(*args):
                t = time.perf_counter()
                out = original(*args)
                search.append(time.perf_counter() - t)
                return out

            select._candidates = timed
            t = time.perf_counter()
            try:
                formula = super()._choose(target, stable, as_written, free)
            finally:
                select._candidates = original
            call = Call(op, target, self, stable, as_written, set(free))
            call.choose_s = time.perf_counter() - t
            call.search_s = sum(search)
            call.choice = self.choices[-1] if self.choices and self.choices[-1].target == target else None
            calls.append(call)
            return formula

    select._CHOSEN.clear()
    build_model(
        parse_expression(text), "trial", params=tuple(Param(n, v) for n, v in params),
        chooser=lambda inputs: Recording(inputs, domains, param_values),
    )
    return [c for c in calls if c.choice is not None and _order(c.target) in orders]


def _order(target: str) -> int:
    return 0 if "_" not in target else len(target.split("_", 1)[1])


def formulas() -> list[Call]:
    out: list[Call] = []
    for name, text, params in CATALOGUE:
        out += adgen_calls(name, text, params, {}, orders=(1, 2))
        print(f"  adgen built {name}", file=sys.stderr, flush=True)
    corpus = json.loads(CORPUS.read_text())
    for index in CORPUS_PICKS:
        item = corpus[index]
        domains = {n: tuple(r) for n, r in (item.get("domain") or {}).items()
                   if r and None not in r}  # fmt: skip
        out += adgen_calls(f"c{index}", item["expr"], (), domains, orders=(0,))
    for name, text, domains in EXTRA:
        out += adgen_calls(name, text, (), domains, orders=(0,))
    return out


# --- the comparison ----------------------------------------------------------------


def verdict(mine: select.Measured, theirs: select.Measured) -> str:
    d_bits, d_cost = mine.bits - theirs.bits, round(mine.cost - theirs.cost, 6)
    if d_cost <= 0 and (d_bits <= -0.5 or (d_cost < 0 and d_bits < 0.5)):
        return "better"
    if d_cost >= 0 and (d_bits >= 0.5 or (d_cost > 0 and d_bits > -0.5)):
        return "worse"
    if d_cost == 0:
        return "equal"
    return "trade"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=20000)
    parser.add_argument("--k", type=int, default=MAX_CANDIDATES)
    args = parser.parse_args()

    rows = []
    t0 = time.perf_counter()
    for call in formulas():
        candidates, egg_s, size, ran = egglog_candidates(
            call.stable, call.written, args.iterations, args.nodes, args.k
        )
        original = select._candidates
        select._candidates = lambda stable, written: candidates
        t = time.perf_counter()
        try:
            call.selector._choose(call.target, call.stable, call.written, call.free)
        finally:
            select._candidates = original
        egg_choose_s = time.perf_counter() - t
        egg = call.selector.choices[-1]
        print(f"  {call.op} {call.target}: egglog {egg_s:.2f} s ({SATURATION_S[-1]:.2f} saturating), {size} e-nodes", file=sys.stderr, flush=True)
        ours = call.choice
        pool_ours = min(m.bits for m in ours.candidates if "series" not in m.origin)
        pool_egg = min(m.bits for m in egg.candidates if "series" not in m.origin)
        rows.append((call, ours, egg, egg_s, egg_choose_s, size, ran, len(candidates),
                     pool_ours, pool_egg, verdict(egg.chosen, ours.chosen)))

    print(f"egglog trial: --iterations {args.iterations} --nodes {args.nodes} --k {args.k}; "
          "bits = float32 + float64 mean bits of error; cost from adgen/costs.py")  # fmt: skip
    header = (f"{'formula':<16}{'adgen bits':>11}{'cost':>6}{'egg bits':>9}{'cost':>6}"
              f"{'best ad':>8}{'best eg':>8}{'verdict':>8}{'search s':>9}{'egg s':>7}"
              f"{'nodes':>7}{'it':>3}  egglog's pick")  # fmt: skip
    print(header)
    print("-" * len(header))
    for call, ours, egg, egg_s, _, size, ran, n, pool_ours, pool_egg, v in rows:
        pick = egg.chosen.origin if egg.chosen.formula != ours.chosen.formula else "(same form)"
        print(f"{call.op + ' ' + call.target:<16}{ours.chosen.bits:>11.2f}{ours.chosen.cost:>6.1f}"
              f"{egg.chosen.bits:>9.2f}{egg.chosen.cost:>6.1f}{pool_ours:>8.2f}{pool_egg:>8.2f}"
              f"{v:>8}{call.search_s:>9.3f}{egg_s:>7.2f}{size:>7}{ran:>3}  {pick}: "
              f"{str(egg.chosen.formula)[:60]}")  # fmt: skip
    count = {v: sum(r[-1] == v for r in rows) for v in ("better", "equal", "trade", "worse")}
    better = [r for r in rows if r[-1] == "better"]
    print()
    print(f"{len(rows)} formulas: " + ", ".join(f"{v} {n}" for v, n in count.items()))
    for call, ours, egg, *_ in better:
        print(f"  better: {call.op} {call.target}: {ours.chosen.bits - egg.chosen.bits:+.2f} bits, "
              f"{ours.chosen.cost - egg.chosen.cost:+.1f} cost  ({egg.chosen.formula})")  # fmt: skip
    pool_gain = [r[8] - r[9] for r in rows]
    print(f"most accurate candidate: egglog's pool beats ours by >= 0.5 bits in "
          f"{sum(g >= 0.5 for g in pool_gain)}, ours beats egglog's in {sum(g <= -0.5 for g in pool_gain)}")
    ours_search = [r[0].search_s for r in rows]
    ours_choose = [r[0].choose_s for r in rows]
    egg_time = [r[3] for r in rows]
    egg_choose = [r[4] for r in rows]
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(f"time per formula (median / max / total s): adgen candidate search "
          f"{med(ours_search):.3f} / {max(ours_search):.3f} / {sum(ours_search):.2f}; "
          f"egglog saturate+extract+convert {med(egg_time):.3f} / {max(egg_time):.3f} / {sum(egg_time):.2f}")
    print(f"  whole choice incl. measuring: adgen {sum(ours_choose):.2f} s, with egglog's pool "
          f"{sum(egg_choose):.2f} s (same memo, so the second measures partly from cache)")
    print(f"  of which saturation alone: median {med(SATURATION_S):.3f}, total {sum(SATURATION_S):.2f} s")
    print(f"wall time of this run: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
