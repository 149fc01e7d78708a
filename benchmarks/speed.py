"""Forward+backward time and saved-for-backward bytes of emitted ops against the
baselines: autograd of the eager composite and PyTorch's native op. Prints ratios
(medians of interleaved runs in one process; lower is better for the emitted op).

    python benchmarks/speed.py [--size 2000000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adgen.api import emit  # noqa: E402

OPS = [
    # name, expression, eager composite, native op (or None)
    ("gelu_tanh", "0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))",
     lambda x: 0.5 * x * (1 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x**3))),
     lambda x: F.gelu(x, approximate="tanh")),
    ("mish", "x*tanh(log(1 + exp(x)))", lambda x: x * torch.tanh(torch.log(1 + torch.exp(x))), F.mish),
    ("silu", "x/(1 + exp(-x))", lambda x: x / (1 + torch.exp(-x)), F.silu),
    ("damped", "exp(-x**2/2)*sin(3*x)", lambda x: torch.exp(-x**2 / 2) * torch.sin(3 * x), None),
]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fwd_bwd_seconds(function, x: torch.Tensor) -> float:
    start = time.perf_counter()
    function(x).backward(torch.ones_like(x))
    return time.perf_counter() - start


def saved_bytes(function, x: torch.Tensor) -> int:
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        function(x)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.size, requires_grad=True)
    print(f"float32, {args.size} elements, forward+backward, median of {args.repeat}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'op':<10} {'emitted ms':>10} {'/composite':>11} {'/native':>8} {'saved: emitted':>15} {'composite':>10}")
    with tempfile.TemporaryDirectory() as out:
        for name, expression, composite, native in OPS:
            emit(expression, name=name, out=out)
            op = getattr(load(Path(out) / f"{name}.py"), name)
            candidates = {"op": op, "composite": composite}
            if native is not None:
                candidates["native"] = native
            times = {key: [] for key in candidates}
            for function in candidates.values():
                fwd_bwd_seconds(function, x)  # warm up
            for _ in range(args.repeat):
                for key, function in candidates.items():  # interleaved
                    x.grad = None
                    times[key].append(fwd_bwd_seconds(function, x))
            median = {key: statistics.median(v) for key, v in times.items()}
            native_ratio = f"{median['op'] / median['native']:.2f}" if "native" in median else "-"
            print(
                f"{name:<10} {median['op'] * 1e3:>10.1f} {median['op'] / median['composite']:>11.2f} {native_ratio:>8} "
                f"{saved_bytes(op, x) / x.numel() / 4:>13.1f}x {saved_bytes(composite, x) / x.numel() / 4:>9.1f}x"
            )
    print("saved: bytes kept for backward, in multiples of the input's size")


if __name__ == "__main__":
    main()
