"""Whole-process `adgen emit` wall time (median of 5 runs), the number a user waits.

    python benchmarks/emit_time.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

CASES = [
    ("sin", ["sin(x)"]),
    ("3 inputs", ["--name", "gauss3", "--param", "s=2.0", "x*y*z + exp(-(x**2 + y**2)/s) + atan2(y, x)*log(1 + z**2)"]),
    ("40-node", ["--name", "big", "x*tanh(log(1 + exp(x)))*sin(y)**2 + exp(-x**2/2)*cos(3*y)*sqrt(1 + x**2 + y**2) + atan2(y, x)*erf(x*y)"]),
]


def main() -> None:
    print(f"{'expression':<12} {'median s':>9}")
    for label, args in CASES:
        times = []
        for _ in range(5):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "adgen", "emit", "-o", out, *args], check=True, capture_output=True)
                times.append(time.perf_counter() - start)
        print(f"{label:<12} {statistics.median(times):>9.2f}")


if __name__ == "__main__":
    main()
