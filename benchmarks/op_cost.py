"""Re-measure adgen/costs.py: the time of each elementwise float32 operation a
kernel may print, relative to torch.mul(a, b).

    python benchmarks/op_cost.py [--device cpu|cuda] [--threads T] [--elements N]
                                 [--repeats R] [--calls C] [--write]

Every operation runs on contiguous float32 tensors of N elements (default 2M)
drawn inside its registry domain (log on (0.1, 10), asin on (-0.9, 0.9), ...),
out of place, as the printed kernels run. After a warm-up, R rounds (default 15)
each time every operation (C back-to-back calls, default 10: a single call's time
is bimodal on a shared machine, as the allocator hands back fresh pages or not),
in an order shuffled per round (interleaved, so that drifts of the machine fall
on all alike); the cost is the median per-call time over mul's median. At 2M
elements and one thread the cheap operations are bound by memory bandwidth:
mul reads two tensors, so a unary op such as neg or exp can cost less than 1. torch.set_num_threads(T) (default 1) holds
throughout. Prints the table; --write rewrites the table part of adgen/costs.py
(its docstring and lookup function are kept; the other device's column too).
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
COSTS_FILE = HERE / "adgen" / "costs.py"
MARKER = "# --- measured table: `python benchmarks/op_cost.py --write` rewrites everything below ---"
DEFAULT_ELEMENTS = 2_000_000

# The arithmetic the printer writes besides the registry's functions:
# key -> (how it is timed, printed as).
BASIC: dict[str, str] = {
    "add": "a + b",
    "sub": "a - b",
    "mul": "a * b",
    "div": "a / b",
    "neg": "-a",
    "reciprocal": "torch.reciprocal(a)",
    "square": "a * a",
    "pow_int": "a**3",
    "sqrt": "torch.sqrt(a), a > 0",
    "rsqrt": "torch.rsqrt(a), a > 0",
    "pow": "a**2.5, a > 0",
    "where": "torch.where(mask, a, b), mask precomputed",
    "abs": "torch.abs(a)",
    "gt": "a > b",
    "max": "torch.maximum(a, b)",
    "min": "torch.minimum(a, b)",
}
# Registry rows the printer writes with a method rather than row.torch.
_PRINTED = {
    "sqrt": "torch.sqrt",
    "digamma": "torch.special.digamma",
    "heaviside": "heaviside",  # torch.sign(torch.relu(x)): see printer._print_Heaviside
    "max": "torch.maximum",
    "min": "torch.minimum",
    "where": "where",
}


def registry_rows() -> list:
    """The registry's user-visible rows (internal ones have no name)."""
    sys.path.insert(0, str(HERE))
    from adgen.registry import REGISTRY

    return [row for row in REGISTRY if row.names]


def table_keys() -> list[str]:
    """Every key the script measures: BASIC's, then each registry row's first name."""
    keys = list(BASIC)
    for row in registry_rows():
        if row.names[0] not in keys:
            keys.append(row.names[0])
    return keys


def _interval(domain: tuple[float, float]) -> tuple[float, float]:
    """A sampling interval well inside a registry domain."""
    low, high = domain
    if math.isinf(low) and math.isinf(high):
        return (-3.0, 3.0)
    if math.isinf(high):
        return (low + 0.1, low + 10.0)
    if math.isinf(low):
        return (high - 10.0, high - 0.1)
    margin = 0.05 * (high - low)
    return (low + margin, high - margin)


def operations(elements: int, device: str) -> dict[str, Callable[[], object]]:
    """key -> a call that runs the operation once on prepared tensors."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator(device="cpu").manual_seed(0)

    def uniform(low: float, high: float) -> torch.Tensor:
        x = torch.rand(elements, generator=generator, dtype=torch.float32) * (high - low) + low
        return x.to(device).contiguous()

    a, b = uniform(-3.0, 3.0), uniform(-3.0, 3.0)
    positive = uniform(0.1, 10.0)
    mask = a > 0
    calls: dict[str, Callable[[], object]] = {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "div": lambda: a / b,
        "neg": lambda: -a,
        "reciprocal": lambda: torch.reciprocal(a),
        "square": lambda: a * a,
        "pow_int": lambda: a**3,
        "sqrt": lambda: torch.sqrt(positive),
        "rsqrt": lambda: torch.rsqrt(positive),
        "pow": lambda: positive**2.5,
        "where": lambda: torch.where(mask, a, b),
        "abs": lambda: torch.abs(a),
        "gt": lambda: a > b,
        "max": lambda: torch.maximum(a, b),
        "min": lambda: torch.minimum(a, b),
    }
    for row in registry_rows():
        key = row.names[0]
        if key in calls:
            continue
        spelling = _PRINTED.get(key, row.torch)
        x = uniform(*_interval(row.domain))
        y = uniform(*_interval(row.domain)) if row.arity == 2 else None
        if spelling == "heaviside":
            calls[key] = lambda x=x: torch.sign(torch.relu(x))
            continue
        function = _resolve(spelling, torch, F)
        calls[key] = (lambda f=function, x=x: f(x)) if y is None else (
            lambda f=function, x=x, y=y: f(x, y)
        )
    missing = set(table_keys()) - set(calls)
    if missing:
        raise RuntimeError(f"no timing for {sorted(missing)}")
    return calls


def _resolve(spelling: str, torch, F) -> Callable:
    """'torch.nn.functional.softplus' -> the function."""
    parts = spelling.split(".")
    if parts[0] != "torch":
        raise RuntimeError(f"unexpected torch spelling {spelling!r}")
    target = torch
    for part in parts[1:]:
        target = getattr(target, part)
    return target


def measure(
    elements: int, device: str, threads: int, repeats: int, calls_per_sample: int = 10,
    warmup: int = 3,
) -> tuple[dict[str, float], float]:
    """(key -> median time over mul's median time, mul's median in seconds)."""
    import torch

    torch.set_num_threads(threads)
    calls = operations(elements, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for call in calls.values():
        for _ in range(warmup):
            call()
    sync()
    times: dict[str, list[float]] = {key: [] for key in calls}
    order = list(calls)
    shuffler = random.Random(0)
    for _ in range(repeats):
        shuffler.shuffle(order)
        for key in order:
            sync()
            call = calls[key]
            start = time.perf_counter()
            for _ in range(calls_per_sample):
                call()
            sync()
            times[key].append((time.perf_counter() - start) / calls_per_sample)
    medians = {key: statistics.median(t) for key, t in times.items()}
    unit = medians["mul"]
    return {key: medians[key] / unit for key in table_keys()}, unit


def render_table(cpu: dict[str, float], cuda: dict[str, float], measured: dict[str, object]) -> str:
    """The part of adgen/costs.py below MARKER."""
    def column(table: dict[str, float]) -> str:
        if not table:
            return "{}"
        # Three significant digits, always a float (so 1.0 and not 1).
        rows = "".join(f"    {key!r}: {float(f'{value:.3g}')!r},\n" for key, value in table.items())
        return "{\n" + rows + "}"

    info = "".join(f"    {key!r}: (\n        {value!r}\n    ),\n" for key, value in measured.items())
    return (
        f"{MARKER}\n"
        f"MEASURED = {{\n{info}}}\n"
        f"COSTS: dict[str, float] = {column(cpu)}\n"
        f"CUDA_COSTS: dict[str, float] = {column(cuda)}\n"
    )


def rewrite(path: Path, cpu: dict[str, float], cuda: dict[str, float], measured: dict) -> None:
    """Replace the table part of `path` (from MARKER on), keeping what is above."""
    text = path.read_text()
    head, found, _ = text.partition(MARKER)
    if not found:
        raise RuntimeError(f"{path} has no marker line {MARKER!r}")
    path.write_text(head + render_table(cpu, cuda, measured))


def _current_tables(path: Path) -> tuple[dict, dict, dict]:
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - our own file
    return namespace["COSTS"], namespace["CUDA_COSTS"], namespace["MEASURED"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--elements", type=int, default=DEFAULT_ELEMENTS)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=10, help="back-to-back calls per sample")
    parser.add_argument("--write", action="store_true", help="rewrite adgen/costs.py's table")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no GPU here", file=sys.stderr)
        return 2
    table, unit = measure(args.elements, args.device, args.threads, args.repeats, args.calls)
    where = (torch.cuda.get_device_name() if args.device == "cuda"
             else platform.processor() or platform.machine())
    print(f"{args.device} ({where}), torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.elements} float32 elements, median of {args.repeats} interleaved rounds "
          f"of {args.calls} calls; "
          f"mul = {unit * 1e3:.3f} ms = 1.0")
    for key, value in sorted(table.items(), key=lambda kv: kv[1]):
        print(f"  {key:12s} {value:7.2f}")
    if args.write:
        cpu, cuda, measured = _current_tables(COSTS_FILE)
        if args.device == "cpu":
            cpu = table
        else:
            cuda = table
        measured = dict(measured)
        measured[args.device] = (
            f"{datetime.date.today().isoformat()}, {where}, torch {torch.__version__}, "
            f"{args.threads} thread(s), {args.elements} elements, median of {args.repeats} "
            f"rounds of {args.calls} calls, "
            # This project's CPU machines are shared; its GPU machines are not.
            + ("while other work shared the machine, " if args.device == "cpu" else "")
            + f"mul = {unit * 1e3:.3f} ms"
        )
        rewrite(COSTS_FILE, cpu, cuda, measured)
        print(f"wrote {COSTS_FILE.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
