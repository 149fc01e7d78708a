"""The emit-at-scale targets of issue 13, as measured: whole-process times a user
waits, and the size of the derivative kernels against the forward kernel.

    python benchmarks/emit_scale.py [--limit N] [--timeout S] [--repeat R] [--baseline DIR]

Rows (medians, the target beside each):
  corpus      `adgen emit` of each expression of benchmarks/data/fpbench_dev_corpus.json
              (all 373, or N spread evenly with --limit), cache off; timeouts counted
  40-node     the 40-node expression of benchmarks/emit_time.py, cache off
  sin         `adgen emit sin(x)`, cache off
  check cold  `adgen check` on the catalogue (pyproject.toml), empty cache
  check warm  the same, run again with nothing changed
  kernel size the worst ratio, over the corpus, of a derivative kernel's operations to
              the forward kernel's (AST count of torch calls, arithmetic and comparisons)

Every command runs in a fresh process, one at a time; the machine's load moves
single numbers, so compare ratios within one run. With --baseline, each corpus
expression is also emitted by that checkout, right after this one, and the
corpus row gives both and their ratio.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CORPUS = HERE / "benchmarks" / "data" / "fpbench_dev_corpus.json"
FORTY_NODES = (
    "x*tanh(log(1 + exp(x)))*sin(y)**2 + exp(-x**2/2)*cos(3*y)*sqrt(1 + x**2 + y**2)"
    " + atan2(y, x)*erf(x*y)"
)
TARGETS = {"corpus": 3.0, "40-node": 2.0, "sin": 1.5, "check cold": 8.0, "check warm": 1.0}
# Methods of the generated Functions that hold no kernel.
_NOT_KERNELS = {"setup_context"}


@dataclass(frozen=True)
class Run:
    seconds: float
    returncode: int | None  # None: killed at the timeout
    stderr: str


def run(argv: list[str], cwd: Path, timeout: float, checkout: Path = HERE, **environment: str) -> Run:
    """One whole `python -m adgen ...` process of `checkout`, timed."""
    env = {**os.environ, "PYTHONPATH": str(checkout), **environment}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "adgen", *argv],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Run(time.perf_counter() - start, None, "")
    return Run(time.perf_counter() - start, done.returncode, done.stderr)


def operations(
    function: ast.AST, table: dict[int, int] | None = None, helpers: dict[str, int] | None = None
) -> int:
    """Torch calls, arithmetic operators and comparisons in a method's body
    (`X.apply(...)` and `X.forward(...)` calls, the test for torch.compile, and
    signs of literals are not operations); a call of
    the module's `_partials(..., k)` counts the helper's operations up to order
    k (`table`), and one of `_hessian_times` or `_third_times` that helper's
    (`helpers`), since the kernel runs them. The `need = ...` bits of
    needs_input_grad are Python ints, not operations."""
    bookkeeping = {
        id(inner)
        for node in ast.walk(function)
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["need"]
        for inner in ast.walk(node.value)
    }
    count = 0
    for node in ast.walk(function):
        if id(node) in bookkeeping:
            continue
        if isinstance(node, ast.Call):
            callee = node.func
            if isinstance(callee, ast.Attribute) and callee.attr in ("apply", "forward"):
                continue  # another kernel (`.forward`: the same one, under torch.compile)
            if isinstance(callee, ast.Attribute) and callee.attr == "is_compiling":
                continue
            if isinstance(callee, ast.Name) and callee.id in ("_opmath", "_round"):
                continue  # dtype bookkeeping (a no-op in float32 and float64)
            if isinstance(callee, ast.Name) and callee.id == "_partials" and table:
                order = node.args[-1]
                count += table[order.value] if isinstance(order, ast.Constant) else max(table.values())
                continue
            if isinstance(callee, ast.Name) and helpers and callee.id in helpers:
                count += helpers[callee.id]
                continue
            count += 1
        elif isinstance(node, (ast.BinOp, ast.Compare)):
            count += 1
        elif isinstance(node, ast.UnaryOp) and not isinstance(node.operand, ast.Constant):
            count += 1
    return count


def helper_operations(helper: ast.FunctionDef) -> int:
    """A product helper's operations; where it defines a `row` function (a
    dense table), each call of it counts that function's operations."""
    nested = [n for n in helper.body if isinstance(n, ast.FunctionDef)]
    nested_operations = {n.name: operations(n) for n in nested}
    outer = ast.Module(body=[n for n in helper.body if n not in nested], type_ignores=[])
    return operations(outer, helpers=nested_operations)


def partials_operations(tree: ast.Module) -> dict[int, int]:
    """Operations the `_partials` helper runs for each order it can be asked
    (it returns early, after `if order == k:`, for lower orders)."""
    helper = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_partials"), None
    )
    if helper is None:
        return {}
    counts: dict[int, int] = {}
    total = 0
    for statement in helper.body:
        if isinstance(statement, ast.If):  # `if order == k: return ...`
            counts[statement.test.comparators[0].value] = total
            continue
        total += operations(statement)
    counts[max(counts, default=0) + 1] = total
    return counts


def kernel_sizes(module: Path, op_class: str) -> tuple[int, dict[str, int]]:
    """The forward kernel's operations and every derivative kernel's, by
    `Class.method`, from an emitted module."""
    tree = ast.parse(module.read_text())
    table = partials_operations(tree)
    helpers = {  # ∂²f·a and ∂³f·a·b
        node.name: helper_operations(node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name in ("_hessian_times", "_third_times")
    }
    forward = 0
    others: dict[str, int] = {}
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name.startswith(op_class)):
            continue
        if node.name.endswith("ForCompile"):
            continue  # the compile twin repeats the backward's formulas
        for method in node.body:
            if not isinstance(method, ast.FunctionDef) or method.name in _NOT_KERNELS:
                continue
            size = operations(method, table, helpers)
            if node.name == op_class and method.name == "forward":
                forward = size
            elif size:
                others[f"{node.name}.{method.name}"] = size
    return forward, others


def corpus_rows(
    limit: int | None, timeout: float, baseline: Path | None = None, baseline_times: list[float] | None = None
) -> tuple[list[float], list[str], list[str], list[tuple[float, str, str]]]:
    """Each expression's emit time (and the baseline checkout's, appended to
    `baseline_times`, where both succeed), timeouts, errors and kernel ratios."""
    items = json.loads(CORPUS.read_text())
    if limit is not None and limit < len(items):
        step = len(items) / limit
        items = [items[int(i * step)] for i in range(limit)]
    times, timeouts, failures, ratios = [], [], [], []
    for index, item in enumerate(items):
        argv = ["emit", "-o", "ops", "--name", "op", "--inputs", ",".join(item["vars"])]
        for name, bounds in (item.get("domain") or {}).items():
            if bounds and None not in bounds and bounds[0] < bounds[1]:
                argv += ["--domain", f"{name}={float(bounds[0])!r}:{float(bounds[1])!r}"]
        argv += ["--", item["expr"]]
        with tempfile.TemporaryDirectory() as folder:
            result = run(argv, Path(folder), timeout, ADGEN_CACHE="0")
            label = f"{item['name']}: {item['expr']}"
            if result.returncode is None:
                timeouts.append(label)
                status = f"timeout > {timeout:.0f} s"
            elif result.returncode != 0:
                failures.append(f"{label} -> {result.stderr.strip().splitlines()[-1:]}")
                status = f"exit {result.returncode}"
            else:
                times.append(result.seconds)
                forward, others = kernel_sizes(Path(folder) / "ops" / "op.py", "Op")
                if forward and others:
                    worst = max(others, key=others.__getitem__)
                    ratios.append((others[worst] / forward, worst, label))
                status = f"{result.seconds:.2f} s"
                if baseline is not None and baseline_times is not None:
                    with tempfile.TemporaryDirectory() as other:
                        before = run(argv, Path(other), timeout, baseline, ADGEN_CACHE="0")
                    if before.returncode == 0:
                        baseline_times.append(before.seconds)
                        status += f" (baseline {before.seconds:.2f} s)"
                    else:
                        times.pop()  # compared only where both emit
        print(f"  [{index + 1}/{len(items)}] {status:>16}  {item['expr'][:70]}", file=sys.stderr, flush=True)
    return times, timeouts, failures, ratios


def median_of(argv: list[str], repeat: int, timeout: float, cwd: Path | None = None, **env: str) -> float:
    seconds = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            result = run(argv, cwd or Path(folder), timeout, **env)
            if result.returncode != 0:
                raise SystemExit(f"adgen {' '.join(argv)} failed: {result.stderr.strip()}")
            seconds.append(result.seconds)
    return statistics.median(seconds)


def check_times(repeat: int, timeout: float, jobs: str | None) -> tuple[float, float]:
    """Median cold and warm `adgen check` on the catalogue (each cold run: a new cache)."""
    cold, warm = [], []
    extra = ["--jobs", jobs] if jobs else []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            for times in (cold, warm):
                result = run(["check", *extra], HERE, timeout, ADGEN_CACHE_DIR=folder)
                if result.returncode != 0:
                    raise SystemExit(f"adgen check failed: {result.stderr.strip()}")
                times.append(result.seconds)
    return statistics.median(cold), statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="N corpus expressions, spread evenly (default: all)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per process before it counts as a timeout (default 60)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per single-expression and check row (default 3)")
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another adgen checkout: the corpus emitted by both, interleaved")
    options = parser.parse_args()

    rows: list[tuple[str, str, str]] = []
    ratios: list[tuple[float, str, str]] = []
    if not options.skip_corpus:
        before: list[float] = []
        times, timeouts, failures, ratios = corpus_rows(options.limit, options.timeout, options.baseline, before)
        if times:
            rows.append((
                f"corpus emit ({len(times)} ok, {len(timeouts)} timeouts, {len(failures)} errors)",
                f"median {statistics.median(times):.2f} s, max {max(times):.2f} s",
                f"every one <= {TARGETS['corpus']:.1f} s: {sum(t > TARGETS['corpus'] for t in times) + len(timeouts)} over",
            ))
        if before:
            each = sorted(t / b for t, b in zip(times, before))
            rows.append((
                "corpus emit, baseline checkout",
                f"median {statistics.median(before):.2f} s, max {max(before):.2f} s; "
                f"ratio median {statistics.median(each):.2f}, {each[0]:.2f} to {each[-1]:.2f}",
                f"{sum(b > TARGETS['corpus'] for b in before)} over {TARGETS['corpus']:.1f} s",
            ))
        for label in timeouts:
            print(f"timeout (> {options.timeout:.0f} s): {label}")
        for label in failures:
            print(f"error: {label}")
    for label, argv in (("40-node emit", ["emit", "-o", "ops", "--name", "big", FORTY_NODES]), ("sin(x) emit", ["emit", "-o", "ops", "sin(x)"])):
        seconds = median_of(argv, options.repeat, options.timeout * 5, ADGEN_CACHE="0")
        target = TARGETS["40-node" if label.startswith("40") else "sin"]
        rows.append((label, f"median {seconds:.2f} s", f"<= {target:.1f} s"))
    cold, warm = check_times(options.repeat, options.timeout * 5, None)
    rows.append(("check, catalogue, cold cache", f"median {cold:.2f} s", f"<= {TARGETS['check cold']:.1f} s"))
    rows.append(("check, catalogue, warm cache", f"median {warm:.2f} s", f"<= {TARGETS['check warm']:.1f} s"))
    serial_cold, _ = check_times(1, options.timeout * 10, "1")
    rows.append(("check, catalogue, cold, --jobs 1", f"{serial_cold:.2f} s (1 run)", "(for the parallel speedup)"))
    if ratios:
        worst = max(ratios)
        rows.append((
            "kernel size: derivative / forward ops",
            f"worst {worst[0]:.1f} ({worst[1]}), median of per-op worst {statistics.median(r[0] for r in ratios):.1f}",
            "a small constant",
        ))
        print(f"worst kernel ratio: {worst[2]}")
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'measured':<48}  target")
    for label, measured, target in rows:
        print(f"{label:<{width}}  {measured:<48}  {target}")


if __name__ == "__main__":
    main()
