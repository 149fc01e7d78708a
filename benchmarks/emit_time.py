"""Whole-process `adgen emit` wall time (median of 5 runs), the number a user waits.

    python benchmarks/emit_time.py [--baseline /path/to/other/checkout]

With --baseline, the same commands also run with that checkout first on
PYTHONPATH, interleaved with this one, and the ratio is printed (the machine's
load changes between runs; a ratio in one session does not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CASES = [
    ("sin", ["sin(x)"]),
    ("3 inputs", ["--name", "gauss3", "--param", "s=2.0", "x*y*z + exp(-(x**2 + y**2)/s) + atan2(y, x)*log(1 + z**2)"]),
    ("40-node", ["--name", "big", "x*tanh(log(1 + exp(x)))*sin(y)**2 + exp(-x**2/2)*cos(3*y)*sqrt(1 + x**2 + y**2) + atan2(y, x)*erf(x*y)"]),
]


def run(checkout: Path, args: list[str]) -> float:
    # The cache would serve every run after the first: measure derivation.
    env = {**os.environ, "PYTHONPATH": str(checkout), "ADGEN_CACHE": "0"}
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        # cwd: `python -m` puts the current folder first on sys.path
        subprocess.run([sys.executable, "-m", "adgen", "emit", "-o", out, *args], check=True, capture_output=True, env=env, cwd=out)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, help="another adgen checkout to compare with")
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    checkouts = {"this": HERE} | ({"baseline": options.baseline} if options.baseline else {})
    print(f"{'expression':<12} {'median s':>9}" + (f" {'baseline s':>10} {'ratio':>6}" if options.baseline else ""))
    for label, args in CASES:
        times: dict[str, list[float]] = {key: [] for key in checkouts}
        for _ in range(options.repeat):
            for key, checkout in checkouts.items():
                times[key].append(run(checkout, args))
        this = statistics.median(times["this"])
        line = f"{label:<12} {this:>9.2f}"
        if options.baseline:
            base = statistics.median(times["baseline"])
            line += f" {base:>10.2f} {this / base:>6.2f}"
        print(line)


if __name__ == "__main__":
    main()
