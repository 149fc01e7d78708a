"""Per-stage wall time of the pipeline, printed with `ADGEN_PROFILE=1` or `--profile`.

Stages are always recorded (a few `perf_counter` calls per op); the table is
printed only when asked. A stage's time excludes the stages nested in it, so
the rows add up to the time spent in the pipeline. Worker processes of a
parallel build send their records back and the parent adds them up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

PROFILE_ENV = "ADGEN_PROFILE"

# Stage names in the order the table lists them.
STAGES = (
    "parse",
    "derive",
    "domain",
    "render module",
    "render test",
    "black",
    "cache lookup",
    "cache store",
    "write / compare",
)

_seconds: dict[str, float] = {}
_calls: dict[str, int] = {}
_counts: dict[str, int] = {}  # "cache hit": 3
_open: list[list[float]] = []  # per open stage: [start, time of nested stages]
_added = [0]  # how many worker records were added


_asked = [False]  # set by `--profile`


def ask() -> None:
    """Ask for the table (the CLI's `--profile`), as ADGEN_PROFILE=1 does."""
    _asked[0] = True


def wanted() -> bool:
    """Whether the user asked for the table (`--profile` or ADGEN_PROFILE=1)."""
    environment = os.environ.get(PROFILE_ENV, "").strip().lower()
    return _asked[0] or environment not in ("", "0", "false", "no", "off")


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as `name`, minus the stages opened inside it."""
    frame = [time.perf_counter(), 0.0]
    _open.append(frame)
    try:
        yield
    finally:
        _open.pop()
        elapsed = time.perf_counter() - frame[0]
        _seconds[name] = _seconds.get(name, 0.0) + elapsed - frame[1]
        _calls[name] = _calls.get(name, 0) + 1
        if _open:
            _open[-1][1] += elapsed


def count(event: str) -> None:
    """Count an event, e.g. "cache hit"."""
    _counts[event] = _counts.get(event, 0) + 1


def snapshot() -> dict[str, dict[str, float]]:
    """Everything recorded so far (picklable, for a worker to send back)."""
    return {"seconds": dict(_seconds), "calls": dict(_calls), "counts": dict(_counts)}


def add(record: Mapping[str, Mapping[str, float]]) -> None:
    """Add a worker's `snapshot()` to this process's records."""
    _added[0] += 1
    for name, value in record["seconds"].items():
        _seconds[name] = _seconds.get(name, 0.0) + value
    for name, value in record["calls"].items():
        _calls[name] = _calls.get(name, 0) + int(value)
    for name, value in record["counts"].items():
        _counts[name] = _counts.get(name, 0) + int(value)


def reset() -> None:
    """Forget everything recorded and whether a table was asked for (a new
    command, or a worker's next task)."""
    _asked[0] = False
    _seconds.clear()
    _calls.clear()
    _counts.clear()
    _added[0] = 0


def print_table(stream: TextIO, wall: float) -> None:
    """One compact table: seconds and calls per stage, cache hits and misses, wall time."""
    total = sum(_seconds.values())
    where = f"; {_added[0]} ops derived in worker processes, their seconds added up" if _added[0] else ""
    lines = [f"adgen profile: wall {wall:.3f} s{where}"]
    lines.append(f"  {'stage':<16}{'seconds':>9}{'share':>7}{'calls':>7}")
    names = [n for n in STAGES if n in _seconds] + sorted(set(_seconds) - set(STAGES))
    for name in names:
        share = _seconds[name] / total if total else 0.0
        lines.append(f"  {name:<16}{_seconds[name]:>9.3f}{share:>7.1%}{_calls[name]:>7}")
    hits, misses = _counts.get("cache hit", 0), _counts.get("cache miss", 0)
    extra = "".join(
        f", {n} {event}" for event, n in sorted(_counts.items())
        if event not in ("cache hit", "cache miss")
    )
    lines.append(f"  cache: {hits} hit{'s' * (hits != 1)}, {misses} miss{'es' * (misses != 1)}{extra}")
    stream.write("\n".join(lines) + "\n")
