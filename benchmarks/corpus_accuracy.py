"""Accuracy over the FPBench/Herbie corpus, measured as Herbie measures it: the
emitted op's value and gradient against autograd of the naive formula, in bits
of error, in float32 and float64.

    python benchmarks/corpus_accuracy.py [--limit N] [--only TEXT] [--jobs J]
        [--points N] [--seed S] [--timeout S] [--json PATH] [--checkout PATH]

For each expression of benchmarks/data/fpbench_dev_corpus.json (all, N spread
evenly with --limit, or those whose name contains --only):

- emit: `adgen.api.load` of the expression (inputs in the corpus order, `domains`
  where the corpus bounds both sides). Refusals and timeouts are listed.
- points: uniform over float bit patterns inside the domain (so log-uniform in
  magnitude, both signs where allowed), unbounded sides clipped to the float
  range; points where the truth is not a finite real number (value or any
  partial) are dropped and more are drawn. float64 points are float64 bit
  patterns. float32 points are float32 bit patterns (`--f32-points own`, the
  default, as Herbie samples binary32), or the float64 points rounded to float32
  (`--f32-points rounded`; most of them then leave float32's range when the
  domain is unbounded). The truth is always taken at the exact float inputs.
- truth: this file's own forward-mode evaluator of the user's text in mpmath
  (`_Dual`: value and every first partial, textbook derivative rules), sharing
  nothing with adgen and identical whichever checkout is measured. Working
  precision starts at 80 digits and doubles while an addition cancels or
  absorbs more digits than it keeps, or while the result rounded to float64
  differs from the one at twice the precision (up to 2560 digits; a point still
  unresolved there is dropped).
- candidates, torch on CPU, one thread: the emitted op (value; gradient by
  torch.autograd.grad with grad ones) and autograd of the naive formula: the
  user's text walked as plain torch ops in the order written (`_naive_torch`;
  adgen's printer is not used, because sympy's automatic evaluation changes the
  formula, e.g. `(x + 1) - x` parses to `1`).
- error: log2(1 + ulps between the result and the truth rounded to the dtype),
  mean over points; a non-finite result where the truth is finite counts 64
  bits (float64) or 32 (float32). The gradient's error is that of its worst
  partial (each partial's mean over points).

Summary: expressions with mean error <= 2 bits in value and gradient (emitted,
naive; per dtype), and those where the emitted op is worse than the naive
formula by more than 1 bit in value or gradient. `--json PATH` writes every
number. `--checkout PATH` measures another checkout's adgen (its folder first
on sys.path in the worker processes), so runs before and after a change compare.
Truths are cached (--truth-cache, default ~/.cache/adgen-corpus-truth); emitted
text comes from adgen's own cache.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CORPUS = HERE / "benchmarks" / "data" / "fpbench_dev_corpus.json"
GOOD_BITS = 2.0  # the target: mean error <= 2 bits
WORSE_BITS = 1.0  # "worse than naive" beyond this many bits
START_DIGITS = 80
MAX_DIGITS = 2560
# An addition that cancels (or absorbs) more bits than this below the working
# precision raises it: float64 needs 53 correct bits, this keeps a margin.
KEPT_BITS = 80
TRUTH_VERSION = 1  # bump when the truth's definition changes (cache key)
DTYPES = ("float64", "float32")
MAX_BITS = {"float64": 64.0, "float32": 32.0}


# -- the truth: forward-mode evaluation of the text in mpmath --------------------

class _Invalid(Exception):
    """The point has no finite real value (log of a negative, 1/0, ...)."""


class _Imprecise(Exception):
    """An addition lost too many digits at the working precision."""


class _Dual:
    """A value and its partials by every input, in mpmath."""

    __slots__ = ("v", "d")

    def __init__(self, v, d):
        self.v = v
        self.d = d


def _real(x):
    import mpmath

    if not isinstance(x, mpmath.mpf) or not mpmath.isfinite(x):
        raise _Invalid()
    return x


def _sum(a, b, check: bool):
    """a + b, raising _Imprecise where the sum cancels or absorbs too much."""
    import mpmath

    s = a + b
    if check and a and b:
        big = max(mpmath.mag(a), mpmath.mag(b))
        small = min(mpmath.mag(a), mpmath.mag(b))
        limit = mpmath.mp.prec - KEPT_BITS
        if not s or big - mpmath.mag(s) > limit or big - small > limit:
            raise _Imprecise()
    return s


class _Truth:
    """Evaluates one parsed expression on _Dual numbers."""

    def __init__(self, tree: ast.AST, names: list[str], check: bool):
        import mpmath

        self.mp = mpmath
        self.tree = tree
        self.names = names
        self.check = check
        self.zero = [mpmath.mpf(0)] * len(names)

    def const(self, c) -> _Dual:
        return _Dual(self.mp.mpf(c), self.zero)

    def add(self, a: _Dual, b: _Dual) -> _Dual:
        return _Dual(
            _sum(a.v, b.v, self.check),
            [_sum(x, y, self.check) for x, y in zip(a.d, b.d)],
        )

    def neg(self, a: _Dual) -> _Dual:
        return _Dual(-a.v, [-x for x in a.d])

    def mul(self, a: _Dual, b: _Dual) -> _Dual:
        return _Dual(
            a.v * b.v, [_sum(x * b.v, a.v * y, self.check) for x, y in zip(a.d, b.d)]
        )

    def div(self, a: _Dual, b: _Dual) -> _Dual:
        if not b.v:
            raise _Invalid()
        v = a.v / b.v
        return _Dual(v, [_sum(x, -v * y, self.check) / b.v for x, y in zip(a.d, b.d)])

    def chain(self, v, slope, a: _Dual) -> _Dual:
        """f(a) with f'(a) = slope."""
        v = _real(v)
        if any(a.d):
            slope = _real(slope)
        return _Dual(v, [slope * x if x else x for x in a.d])

    def power(self, a: _Dual, b: _Dual) -> _Dual:
        mp = self.mp
        if not any(b.d) and b.v == int(b.v):  # constant integer exponent
            n = int(b.v)
            if a.v == 0 and n < 0:
                raise _Invalid()
            slope = n * a.v ** (n - 1) if n else mp.mpf(0)
            return self.chain(a.v**n, slope, a)
        if a.v < 0:
            raise _Invalid()  # not real
        if a.v == 0:
            # 0**c, c > 0 constant: 0, with slope 0 (c > 1) or infinite (c < 1).
            if any(b.d) or b.v <= 0 or (b.v < 1 and any(a.d)):
                raise _Invalid()
            return _Dual(mp.mpf(0), self.zero)
        v = _real(a.v**b.v)
        log_a = mp.log(a.v)
        return _Dual(
            v,
            [_sum(v * log_a * y, v * b.v / a.v * x, self.check) for x, y in zip(a.d, b.d)],
        )

    def function(self, name: str, args: list[_Dual]) -> _Dual:
        mp = self.mp
        if len(args) == 1:
            (a,) = args
            x = a.v
            rule = _UNARY.get(name)
            if rule is None:
                raise KeyError(name)
            value, slope = rule(mp, x)
            return self.chain(value, slope, a)
        a, b = args
        x, y = a.v, b.v
        if name == "atan2":
            r2 = x * x + y * y
            if not r2:
                raise _Invalid()
            v = mp.atan2(x, y)
            da, db = y / r2, -x / r2
        elif name == "hypot":
            v = mp.sqrt(x * x + y * y)
            if not v:
                raise _Invalid()
            da, db = x / v, y / v
        elif name == "logaddexp":
            v = mp.log(mp.exp(x) + mp.exp(y))
            da, db = 1 / (1 + mp.exp(y - x)), 1 / (1 + mp.exp(x - y))
        elif name == "xlogy":
            if y <= 0:
                raise _Invalid()
            v = mp.mpf(0) if x == 0 else x * mp.log(y)
            da, db = mp.log(y), x / y
        elif name in ("max", "Max", "maximum", "min", "Min", "minimum"):
            first = (x >= y) if name.lower().startswith("max") else (x <= y)
            return a if first else b
        else:
            raise KeyError(name)
        v = _real(v)
        return _Dual(
            v,
            [_sum(_real(da) * p, _real(db) * q, self.check) for p, q in zip(a.d, b.d)],
        )

    def visit(self, node: ast.AST, point: dict) -> _Dual:
        if isinstance(node, ast.Constant):
            return self.const(node.value)
        if isinstance(node, ast.Name):
            if node.id in point:
                return point[node.id]
            return self.const({"pi": self.mp.pi, "e": self.mp.e, "E": self.mp.e}[node.id])
        if isinstance(node, ast.UnaryOp):
            a = self.visit(node.operand, point)
            return self.neg(a) if isinstance(node.op, ast.USub) else a
        if isinstance(node, ast.BinOp):
            a, b = self.visit(node.left, point), self.visit(node.right, point)
            op = type(node.op)
            if op is ast.Add:
                return self.add(a, b)
            if op is ast.Sub:
                return self.add(a, self.neg(b))
            if op is ast.Mult:
                return self.mul(a, b)
            if op is ast.Div:
                return self.div(a, b)
            if op is ast.Pow:
                return self.power(a, b)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "where":
                condition, chosen, otherwise = node.args
                holds = self.holds(condition, point)
                return self.visit(chosen if holds else otherwise, point)
            return self.function(node.func.id, [self.visit(a, point) for a in node.args])
        raise KeyError(ast.dump(node))

    def holds(self, node: ast.AST, point: dict) -> bool:
        operands = [self.visit(node.left, point).v]
        operands += [self.visit(c, point).v for c in node.comparators]
        tests = {ast.Lt: "__lt__", ast.LtE: "__le__", ast.Gt: "__gt__", ast.GtE: "__ge__",
                 ast.Eq: "__eq__", ast.NotEq: "__ne__"}
        return all(
            getattr(a, tests[type(op)])(b) for op, a, b in zip(node.ops, operands, operands[1:])
        )

    def at(self, values: list[float]) -> list:
        """[value, ∂/∂x1, ...] at the exact floats `values`."""
        n = len(self.names)
        point = {}
        for i, (name, x) in enumerate(zip(self.names, values)):
            unit = [self.mp.mpf(1) if j == i else self.mp.mpf(0) for j in range(n)]
            point[name] = _Dual(self.mp.mpf(x), unit)
        result = self.visit(self.tree, point)
        return [_real(result.v), *(_real(p) for p in result.d)]


def _unary_rules():
    """name -> (mp, x) -> (f(x), f'(x)): textbook definitions and derivatives."""

    def sigmoid(mp, x):
        return 1 / (1 + mp.exp(-x))

    def need(condition):
        if not condition:
            raise _Invalid()

    def lgamma(mp, x):
        need(x > 0 or x != int(x))
        return mp.log(abs(mp.gamma(x))), mp.digamma(x)

    def step(mp, x):
        return mp.mpf(1 if x > 0 else 0), mp.mpf(0)

    def log(mp, x):
        need(x > 0)
        return mp.log(x), 1 / x

    def sqrt(mp, x):
        need(x > 0)
        r = mp.sqrt(x)
        return r, 1 / (2 * r)

    def asin_slope(mp, x):
        need(abs(x) < 1)
        return 1 / mp.sqrt(1 - x * x)

    return {
        "sin": lambda mp, x: (mp.sin(x), mp.cos(x)),
        "cos": lambda mp, x: (mp.cos(x), -mp.sin(x)),
        "tan": lambda mp, x: (mp.tan(x), mp.sec(x) ** 2),
        "asin": lambda mp, x: (mp.asin(x), asin_slope(mp, x)),
        "acos": lambda mp, x: (mp.acos(x), -asin_slope(mp, x)),
        "atan": lambda mp, x: (mp.atan(x), 1 / (1 + x * x)),
        "sinh": lambda mp, x: (mp.sinh(x), mp.cosh(x)),
        "cosh": lambda mp, x: (mp.cosh(x), mp.sinh(x)),
        "tanh": lambda mp, x: (mp.tanh(x), mp.sech(x) ** 2),
        "asinh": lambda mp, x: (mp.asinh(x), 1 / mp.sqrt(x * x + 1)),
        "acosh": lambda mp, x: (need(x > 1) or mp.acosh(x), 1 / mp.sqrt(x * x - 1)),
        "atanh": lambda mp, x: (need(abs(x) < 1) or mp.atanh(x), 1 / (1 - x * x)),
        "exp": lambda mp, x: (mp.exp(x), mp.exp(x)),
        "log": log,
        "sqrt": sqrt,
        "abs": lambda mp, x: (abs(x), mp.sign(x)),
        "Abs": lambda mp, x: (abs(x), mp.sign(x)),
        "erf": lambda mp, x: (mp.erf(x), 2 / mp.sqrt(mp.pi) * mp.exp(-x * x)),
        "erfc": lambda mp, x: (mp.erfc(x), -2 / mp.sqrt(mp.pi) * mp.exp(-x * x)),
        "erfinv": lambda mp, x: (
            need(abs(x) < 1) or mp.erfinv(x),
            mp.sqrt(mp.pi) / 2 * mp.exp(mp.erfinv(x) ** 2),
        ),
        "lgamma": lgamma,
        "loggamma": lgamma,
        "digamma": lambda mp, x: (
            need(x > 0 or x != int(x)) or mp.digamma(x), mp.psi(1, x)),
        "sigmoid": lambda mp, x: (sigmoid(mp, x), sigmoid(mp, x) * sigmoid(mp, -x)),
        "softplus": lambda mp, x: (mp.log(1 + mp.exp(x)), sigmoid(mp, x)),
        "relu": lambda mp, x: (max(x, mp.mpf(0)), mp.mpf(1 if x > 0 else 0)),
        "log1p": lambda mp, x: (need(x > -1) or mp.log1p(x), 1 / (1 + x)),
        "expm1": lambda mp, x: (mp.expm1(x), mp.exp(x)),
        "sign": lambda mp, x: (mp.sign(x), mp.mpf(0)),
        "heaviside": step,
        "Heaviside": step,
    }


_UNARY = _unary_rules()


def truth_at(truth_of, values: list[float]) -> list[float] | None:
    """[value, partials...] at `values`, each correctly rounded to float64 (None:
    not a finite real number, or unresolved at MAX_DIGITS)."""
    import mpmath

    digits = START_DIGITS
    previous = None
    while True:
        final = digits >= MAX_DIGITS  # no more raising: take what this precision gives
        with mpmath.workdps(digits):
            try:
                numbers = truth_of(final).at(values)
            except _Imprecise:
                digits *= 2
                previous = None
                continue
            except (_Invalid, ZeroDivisionError, ValueError, OverflowError):
                return None
            rounded = [float(v) for v in numbers]
        if not all(math.isfinite(v) for v in rounded):
            return None
        if final or rounded == previous:
            return rounded
        previous = rounded
        digits *= 2


# -- points ----------------------------------------------------------------------

def _ordinals(dtype: str):
    import numpy as np

    if dtype == "float64":
        return np.float64, np.int64, np.uint64
    return np.float32, np.int32, np.uint32


def to_ordinal(x, dtype: str):
    """Floats -> integers in the same order, one apart for adjacent floats (±0 -> 0)."""
    import numpy as np

    ftype, itype, _ = _ordinals(dtype)
    bits = np.asarray(x, dtype=ftype).view(itype).astype(np.int64)  # sign-extended
    magnitude = bits & (0x7FFFFFFFFFFFFFFF if dtype == "float64" else 0x7FFFFFFF)
    return np.where(bits < 0, -magnitude, magnitude)


def from_ordinal(k, dtype: str):
    """The inverse of to_ordinal."""
    import numpy as np

    ftype, itype, _ = _ordinals(dtype)
    k = np.asarray(k, dtype=np.int64)
    sign = np.int64(-(2**63)) if dtype == "float64" else np.int64(-(2**31))
    bits = np.where(k < 0, (-k) | sign, k)
    return bits.astype(itype).view(ftype)


def sample(bounds: list[tuple[float, float]], count: int, dtype: str, rng):
    """`count` points, uniform over the dtype's bit patterns inside `bounds`."""
    import numpy as np

    ftype = _ordinals(dtype)[0]
    biggest = float(np.finfo(ftype).max)
    columns = []
    for low, high in bounds:
        low = max(low, -biggest)
        high = min(high, biggest)
        if low > high:
            return []  # the domain lies outside this dtype's range (xlohi in float32)
        # The floats of the dtype inside [low, high].
        first, last = ftype(low), ftype(high)  # rounded: step inside where they left
        first = np.nextafter(first, last) if first < low else first
        last = np.nextafter(last, first) if last > high else last
        lo, hi = to_ordinal(first, dtype), to_ordinal(last, dtype)
        ordinals = rng.integers(int(lo), int(hi), size=count, endpoint=True, dtype=np.int64)
        columns.append(from_ordinal(ordinals, dtype).astype(np.float64))
    return [list(map(float, row)) for row in zip(*columns)]


def _bounds(item: dict) -> list[tuple[float, float]]:
    domain = item.get("domain") or {}
    result = []
    for name in item["vars"]:
        low, high = domain.get(name) or (None, None)
        result.append((-math.inf if low is None else float(low), math.inf if high is None else float(high)))
    return result


def points_and_truth(item: dict, args, dtype: str, f64_points=None):
    """Up to args.points points of `dtype` with a finite truth there, and the
    truth (float64-rounded value and partials) at each."""
    import numpy as np

    tree = ast.parse(item["expr"].strip(), mode="eval").body
    cache = {}

    def truth_of(final: bool) -> _Truth:
        if final not in cache:
            cache[final] = _Truth(tree, list(item["vars"]), check=not final)
        return cache[final]

    ftype = _ordinals(dtype)[0]
    rng = np.random.default_rng([args.seed, 1 if dtype == "float32" else 0])
    bounds = _bounds(item)
    points, truths = [], []
    dropped = 0
    if f64_points is not None:  # --f32-points rounded
        batches = [[list(map(float, np.asarray(p, dtype=ftype))) for p in f64_points]]
    else:
        batches = None
    for batch_index in range(args.max_batches):
        if len(points) >= args.points:
            break
        if batches is not None:
            if batch_index >= len(batches):
                break
            batch = batches[batch_index]
        else:
            batch = sample(bounds, args.points, dtype, rng)
        for values in batch:
            if len(points) >= args.points:
                break
            if not all(math.isfinite(v) for v in values):
                dropped += 1
                continue
            truth = truth_at(truth_of, values)
            with np.errstate(over="ignore"):  # a truth beyond the dtype's range: dropped
                representable = truth is not None and np.isfinite(np.asarray(truth, dtype=ftype)).all()
            if not representable:
                dropped += 1
                continue
            points.append(values)
            truths.append(truth)
    return points, truths, dropped


# -- the candidates, in torch ---------------------------------------------------

def _naive_torch(tree: ast.AST, env: dict):
    """The formula as written, in plain torch ops (autograd differentiates it)."""
    import torch
    import torch.nn.functional as F

    def tensor_like(v, like):
        return v if isinstance(v, torch.Tensor) else torch.full_like(like, float(v))

    def any_tensor(values):
        return next((v for v in values if isinstance(v, torch.Tensor)), env["__like__"])

    unary = {
        "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "asin": torch.asin,
        "acos": torch.acos, "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh,
        "tanh": torch.tanh, "asinh": torch.asinh, "acosh": torch.acosh, "atanh": torch.atanh,
        "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "abs": torch.abs,
        "Abs": torch.abs, "erf": torch.erf, "erfc": torch.erfc, "erfinv": torch.erfinv,
        "lgamma": torch.lgamma, "loggamma": torch.lgamma, "digamma": torch.digamma,
        "sigmoid": torch.sigmoid, "softplus": F.softplus, "relu": torch.relu,
        "log1p": torch.log1p, "expm1": torch.expm1, "sign": torch.sign,
        "heaviside": lambda x: torch.heaviside(x, torch.zeros_like(x)),
        "Heaviside": lambda x: torch.heaviside(x, torch.zeros_like(x)),
    }
    binary = {
        "atan2": torch.atan2, "hypot": torch.hypot, "logaddexp": torch.logaddexp,
        "xlogy": torch.special.xlogy, "max": torch.maximum, "Max": torch.maximum,
        "maximum": torch.maximum, "min": torch.minimum, "Min": torch.minimum,
        "minimum": torch.minimum,
    }
    operators = {
        ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
        ast.Pow: lambda a, b: a**b,
    }
    comparisons = {
        ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
        ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
        ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
    }

    def visit(node):
        if isinstance(node, ast.Constant):
            return node.value  # a Python number: it follows the tensor's dtype
        if isinstance(node, ast.Name):
            return env[node.id] if node.id in env else {"pi": math.pi, "e": math.e, "E": math.e}[node.id]
        if isinstance(node, ast.UnaryOp):
            operand = visit(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            a, b = visit(node.left), visit(node.right)
            if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
                a = tensor_like(a, env["__like__"])
            return operators[type(node.op)](a, b)
        if isinstance(node, ast.Call):
            name = node.func.id
            if name == "where":
                condition, chosen, otherwise = node.args
                operands = [visit(condition.left)]
                operands += [visit(c) for c in condition.comparators]
                like = any_tensor(operands)
                operands = [tensor_like(o, like) for o in operands]
                mask = None
                for op, a, b in zip(condition.ops, operands, operands[1:]):
                    m = comparisons[type(op)](a, b)
                    mask = m if mask is None else mask & m
                a, b = visit(chosen), visit(otherwise)
                like = any_tensor([a, b])
                return torch.where(mask, tensor_like(a, like), tensor_like(b, like))
            args = [visit(a) for a in node.args]
            like = any_tensor(args)
            args = [tensor_like(a, like) for a in args]
            return (unary.get(name) or binary[name])(*args)
        raise KeyError(ast.dump(node))

    result = visit(tree)
    return result if isinstance(result, torch.Tensor) else torch.full_like(env["__like__"], float(result))


def _run_candidate(function, points: list[list[float]], dtype: str):
    """(values, [partials by input]) as float64 numpy arrays."""
    import numpy as np
    import torch

    tdtype = getattr(torch, dtype)
    columns = [torch.tensor([p[i] for p in points], dtype=tdtype, requires_grad=True)
               for i in range(len(points[0]))]
    y = function(*columns)
    y = y.expand(columns[0].shape) if y.shape != columns[0].shape else y
    grads = torch.autograd.grad(y, columns, torch.ones_like(y), allow_unused=True)
    partials = [
        np.zeros(len(points)) if g is None else g.detach().to(torch.float64).numpy()
        for g in grads
    ]
    return y.detach().to(torch.float64).numpy(), partials


def bits_of_error(results, truths, dtype: str):
    """log2(1 + ulps) per point, in `dtype`; non-finite results count MAX_BITS."""
    import numpy as np

    ftype = _ordinals(dtype)[0]
    results = np.asarray(results, dtype=np.float64)
    finite = np.isfinite(results)
    with np.errstate(over="ignore"):  # truths were checked to fit the dtype
        got = to_ordinal(np.where(finite, results, 0.0).astype(ftype), dtype)
        want = to_ordinal(np.asarray(truths, dtype=np.float64).astype(ftype), dtype)
    ulps = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bits = np.log2(1.0 + ulps)
    return np.where(finite, np.minimum(bits, MAX_BITS[dtype]), MAX_BITS[dtype])


def measure_dtype(op, item, points, truths, dtype: str) -> dict:
    import numpy as np

    tree = ast.parse(item["expr"].strip(), mode="eval").body
    names = list(item["vars"])

    def naive(*columns):
        return _naive_torch(tree, {**dict(zip(names, columns)), "__like__": columns[0]})

    truth = np.asarray(truths, dtype=np.float64)
    out = {"points": len(points)}
    for label, function in (("emitted", op), ("naive", naive)):
        try:
            value, partials = _run_candidate(function, points, dtype)
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            out[label] = {"error": f"{type(error).__name__}: {error}"[:300]}
            continue
        value_bits = bits_of_error(value, truth[:, 0], dtype)
        partial_bits = [bits_of_error(p, truth[:, 1 + i], dtype) for i, p in enumerate(partials)]
        out[label] = {
            "value_bits": float(value_bits.mean()),
            "partial_bits": [float(b.mean()) for b in partial_bits],
            "grad_bits": max(float(b.mean()) for b in partial_bits),
            "value_nonfinite": int((~np.isfinite(value)).sum()),
            "grad_nonfinite": int(sum((~np.isfinite(p)).sum() for p in partials)),
        }
    return out


# -- the worker process -----------------------------------------------------------

def _truth_key(item: dict, args, dtype: str) -> str:
    fields = [TRUTH_VERSION, item["expr"], item["vars"], _bounds_json(item), args.points,
              args.seed, args.max_batches, dtype, args.f32_points if dtype == "float32" else ""]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:32]


def _bounds_json(item: dict) -> list:
    return [[lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None]
            for lo, hi in _bounds(item)]


def _cached_truth(item, args, dtype, f64_points=None):
    folder = Path(args.truth_cache) if args.truth_cache else None
    path = folder / f"{_truth_key(item, args, dtype)}.json" if folder else None
    if path is not None and path.exists():
        try:
            stored = json.loads(path.read_text())
            return stored["points"], stored["truths"], stored["dropped"]
        except (ValueError, KeyError):
            pass
    points, truths, dropped = points_and_truth(item, args, dtype, f64_points)
    if path is not None:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"points": points, "truths": truths, "dropped": dropped}))
        os.replace(partial, path)
    return points, truths, dropped


def _worker(connection, checkout: str | None) -> None:
    """Runs in its own process: emit, sample, measure one expression per message."""
    if checkout:
        sys.path.insert(0, checkout)
    else:
        sys.path.insert(0, str(HERE))
    import warnings

    import torch

    torch.set_num_threads(1)
    from adgen import api
    from adgen.errors import InputError

    connection.send(("ready", {"adgen": str(Path(api.__file__).resolve().parent)}))
    while True:
        message = connection.recv()
        if message is None:
            return
        item, args = message
        bounded = {
            name: (lo, hi) for name, (lo, hi) in zip(item["vars"], _bounds(item))
            if math.isfinite(lo) and math.isfinite(hi)
        }
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                op = api.load(item["expr"], name="op", inputs=item["vars"], domains=bounded)
        except (InputError, Exception) as error:  # noqa: BLE001 - a refusal is a result
            kind = "refused" if isinstance(error, InputError) else "emit error"
            connection.send((kind, f"{type(error).__name__}: {error}"[:300]))
            continue
        connection.send(("emitted", time.perf_counter() - start))
        result = {"emit_s": time.perf_counter() - start}
        try:
            f64 = None
            for dtype in DTYPES:
                rounded = f64 if (dtype == "float32" and args.f32_points == "rounded") else None
                points, truths, dropped = _cached_truth(item, args, dtype, rounded)
                if dtype == "float64":
                    f64 = points
                if not points:
                    result[dtype] = {"points": 0, "dropped": dropped}
                    continue
                result[dtype] = measure_dtype(op, item, points, truths, dtype)
                result[dtype]["dropped"] = dropped
        except Exception as error:  # noqa: BLE001
            connection.send(("measure error", f"{type(error).__name__}: {error}"[:300]))
            continue
        result["total_s"] = time.perf_counter() - start
        connection.send(("result", result))


class _Pool:
    """J worker processes; one expression at a time each, with a timeout."""

    def __init__(self, jobs: int, checkout: str | None):
        self.context = multiprocessing.get_context("spawn")
        self.checkout = checkout
        self.jobs = jobs
        self.adgen_path = None

    def start(self):
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child, self.checkout), daemon=True)
        process.start()
        kind, info = parent.recv()
        self.adgen_path = info["adgen"]
        return process, parent

    def run(self, items, args, report) -> None:
        work: queue.Queue = queue.Queue()
        for item in items:
            work.put(item)

        def loop():
            process, connection = self.start()
            while True:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    connection.send(None)
                    process.join(5)
                    return
                connection.send((item, args))
                outcome = None
                stage = "emit"
                while outcome is None:
                    if not connection.poll(args.timeout):
                        outcome = ("timeout", f"{stage} took over {args.timeout:g} s")
                        process.kill()
                        process.join()
                        process, connection = self.start()
                        break
                    kind, payload = connection.recv()
                    if kind == "emitted":
                        stage = "measure"
                        continue
                    outcome = (kind, payload)
                report(item, *outcome)

        threads = [threading.Thread(target=loop) for _ in range(self.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


# -- the driver -------------------------------------------------------------------

def choose(items: list[dict], limit: int | None, only: str | None) -> list[dict]:
    if only:
        items = [it for it in items if only.lower() in it["name"].lower()]
    if limit and limit < len(items):
        step = len(items) / limit
        items = [items[int(i * step)] for i in range(limit)]
    return items


def _fmt(entry: dict | None, key: str) -> str:
    if not entry or key not in entry:
        return "  -  "
    return f"{entry[key]:5.1f}"


def line(name: str, result: dict) -> str:
    cells = []
    for dtype in DTYPES:
        r = result.get(dtype, {})
        e, n = r.get("emitted"), r.get("naive")
        cells.append(
            f"{_fmt(e, 'value_bits')} {_fmt(e, 'grad_bits')} | {_fmt(n, 'value_bits')} {_fmt(n, 'grad_bits')}"
        )
    return f"{name[:44]:44s} {cells[0]}  || {cells[1]}"


def accurate(entry: dict | None) -> bool:
    return bool(entry) and "value_bits" in entry and (
        entry["value_bits"] <= GOOD_BITS and entry["grad_bits"] <= GOOD_BITS
    )


def summarise(results: dict[str, dict], failures: dict[str, tuple[str, str]]) -> dict:
    summary: dict = {"expressions": len(results) + len(failures), "measured": len(results),
                     "failed": {k: v for k, v in sorted(failures.items())}}
    for dtype in DTYPES:
        measured = [(n, r[dtype]) for n, r in results.items() if r.get(dtype, {}).get("points")]
        total = len(results) + len(failures)
        good_e = sum(accurate(r.get("emitted")) for _, r in measured)
        good_n = sum(accurate(r.get("naive")) for _, r in measured)
        worse = []
        nonfinite = []
        for name, r in measured:
            e, n = r.get("emitted") or {}, r.get("naive") or {}
            if "value_bits" not in e or "value_bits" not in n:
                continue
            dv = e["value_bits"] - n["value_bits"]
            dg = e["grad_bits"] - n["grad_bits"]
            if dv > WORSE_BITS or dg > WORSE_BITS:
                worse.append({"name": name, "value_delta": round(dv, 2), "grad_delta": round(dg, 2)})
            if (e["value_nonfinite"] + e["grad_nonfinite"]) > (n["value_nonfinite"] + n["grad_nonfinite"]):
                nonfinite.append({"name": name, "emitted": [e["value_nonfinite"], e["grad_nonfinite"]],
                                  "naive": [n["value_nonfinite"], n["grad_nonfinite"]]})
        summary[dtype] = {
            "with_points": len(measured),
            "emitted_accurate": good_e,
            "naive_accurate": good_n,
            "emitted_accurate_pct": round(100 * good_e / total, 1) if total else 0.0,
            "naive_accurate_pct": round(100 * good_n / total, 1) if total else 0.0,
            "emitted_mean_value_bits": _mean(r["emitted"].get("value_bits") for _, r in measured if r.get("emitted")),
            "emitted_mean_grad_bits": _mean(r["emitted"].get("grad_bits") for _, r in measured if r.get("emitted")),
            "naive_mean_value_bits": _mean(r["naive"].get("value_bits") for _, r in measured if r.get("naive")),
            "naive_mean_grad_bits": _mean(r["naive"].get("grad_bits") for _, r in measured if r.get("naive")),
            "emitted_worse": worse,
            "emitted_more_nonfinite": nonfinite,
        }
    return summary


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.fmean(values), 2) if values else None


def print_summary(summary: dict) -> None:
    print()
    print(f"expressions: {summary['expressions']}, measured: {summary['measured']}, "
          f"refused/failed/timed out: {len(summary['failed'])}")
    for name, (kind, why) in summary["failed"].items():
        print(f"  {kind:13s} {name}: {why}")
    for dtype in DTYPES:
        s = summary[dtype]
        total = summary["expressions"]
        print(f"{dtype}: mean error <= {GOOD_BITS:g} bits in value and gradient: "
              f"emitted {s['emitted_accurate']}/{total} ({s['emitted_accurate_pct']}%), "
              f"naive {s['naive_accurate']}/{total} ({s['naive_accurate_pct']}%); "
              f"mean bits value/grad emitted {s['emitted_mean_value_bits']}/{s['emitted_mean_grad_bits']}, "
              f"naive {s['naive_mean_value_bits']}/{s['naive_mean_grad_bits']}")
        print(f"  emitted worse than naive by > {WORSE_BITS:g} bit: {len(s['emitted_worse'])}")
        for w in s["emitted_worse"]:
            print(f"    {w['name']}: value {w['value_delta']:+.2f}, gradient {w['grad_delta']:+.2f}")
        if s["emitted_more_nonfinite"]:
            print(f"  emitted gives more inf/NaN than naive: {len(s['emitted_more_nonfinite'])}")
            for w in s["emitted_more_nonfinite"]:
                print(f"    {w['name']}: emitted value/grad {w['emitted']}, naive {w['naive']}")


def _revision(folder: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", folder, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", folder, "status", "--porcelain", "adgen", "templates"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode:
        return None
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="N expressions spread evenly over the corpus")
    parser.add_argument("--only", help="expressions whose name contains this (case-insensitive)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--points", type=int, default=256, help="points per expression and dtype")
    parser.add_argument("--seed", type=int, default=20150613)
    parser.add_argument("--max-batches", type=int, default=8,
                        help="draw at most this many batches of --points looking for valid points")
    parser.add_argument("--f32-points", choices=("own", "rounded"), default="own")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per expression stage")
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--checkout", help="measure the adgen of this checkout instead")
    parser.add_argument("--corpus", default=str(CORPUS))
    parser.add_argument("--truth-cache", default=str(Path.home() / ".cache" / "adgen-corpus-truth"),
                        help="folder for cached truths ('' for none)")
    args = parser.parse_args(argv)
    checkout = str(Path(args.checkout).resolve()) if args.checkout else None

    items = choose(json.loads(Path(args.corpus).read_text()), args.limit, args.only)
    if not items:
        print("no expression matches", file=sys.stderr)
        return 2
    results: dict[str, dict] = {}
    failures: dict[str, tuple[str, str]] = {}
    lock = threading.Lock()
    print(f"{'':44s} {'float64: emitted':16s} | {'naive':11s}  || {'float32: emitted':16s} | naive")
    print(f"{'expression':44s} {'value  grad':12s} | {'value  grad':11s}  || {'value  grad':12s} | value  grad")

    def report(item, kind, payload):
        with lock:
            if kind == "result":
                results[item["name"]] = payload
                print(line(item["name"], payload), flush=True)
            else:
                failures[item["name"]] = (kind, str(payload))
                print(f"{item['name'][:44]:44s} {kind}: {str(payload)[:100]}", flush=True)

    start = time.perf_counter()
    pool = _Pool(max(1, args.jobs), checkout)
    pool.run(items, args, report)
    elapsed = time.perf_counter() - start
    summary = summarise(results, failures)
    print_summary(summary)
    print(f"wall time {elapsed:.0f} s with --jobs {args.jobs}; adgen from {pool.adgen_path}")
    if args.json:
        checkout_root = checkout or str(HERE)
        payload = {
            "settings": {k: v for k, v in vars(args).items()},
            "adgen": pool.adgen_path,
            "revision": _revision(checkout_root),
            "wall_s": round(elapsed, 1),
            "order": [it["name"] for it in items],
            "results": results,
            "summary": summary,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
