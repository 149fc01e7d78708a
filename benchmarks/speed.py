"""Forward+backward time, double-backward time and saved-for-backward bytes of
emitted ops against the baselines: autograd of the eager composite, torch.compile
of the composite, and PyTorch's native op. Prints ratios (medians of interleaved
runs in one process; lower is better for the emitted op).

    python benchmarks/speed.py [--size 2000000] [--repeat 9] [--no-compile] [--ops gelu_tanh,mish]
                               [--dtype float32] [--baseline /path/to/other/checkout]

Columns, all forward+backward unless said otherwise, as ratios to the eager composite:
  eager      the emitted op as emitted by default (`--save inputs`)
  interm     emitted with `--save intermediates`
  fuse       emitted with `--fuse` (kernels under torch.compile)
  compiled   torch.compile of the composite
  native     PyTorch's own op, where there is one
  2nd        grad of grad (create_graph): emitted eager / composite
  base, 2nd base   with --baseline: this checkout's eager op / the baseline checkout's,
             fwd+bwd and double backward, timed interleaved in the same process
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
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
    ("mix2", "x*y + sin(x)*exp(y)", lambda x, y: x * y + torch.sin(x) * torch.exp(y), None),
]
MODES = {"eager": {}, "interm": {"save": "intermediates"}, "fuse": {"fuse": True}}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile looks modules up by name
    spec.loader.exec_module(module)
    return module


def emit_with(
    checkout: Path, expression: str, name: str, out: Path, params: dict[str, float] | None = None
) -> None:
    """`adgen emit` by another checkout's generator (for --baseline)."""
    # The checkout first; whatever else the path holds (black, say) still found.
    path = [str(checkout), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    options = [o for p, v in (params or {}).items() for o in ("--param", f"{p}={v}")]
    command = [sys.executable, "-m", "adgen", "emit", "-o", str(out), "--name", name, *options, "--", expression]
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=out.parent)


def fwd_bwd(function, xs: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    out = function(*xs)
    out.backward(torch.ones_like(out))
    return time.perf_counter() - start


def double_backward(function, xs: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    grads = torch.autograd.grad(function(*xs).sum(), xs, create_graph=True)
    torch.autograd.grad(sum(g.sum() for g in grads), xs)
    return time.perf_counter() - start


def saved_bytes(function, xs: list[torch.Tensor]) -> int:
    """Bytes autograd keeps for backward, each storage counted once (the
    composite saves `x` for several of its ops, but holds it only once)."""
    total = 0
    seen: set[int] = set()

    def pack(tensor):
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        function(*xs)
    return total


def medians(candidates: dict, measure, xs: list[torch.Tensor], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {key: [] for key in candidates}
    for function in candidates.values():
        measure(function, xs)  # warm up (and compile)
        measure(function, xs)
    for _ in range(repeat):
        for key, function in candidates.items():  # interleaved
            for x in xs:
                x.grad = None
            times[key].append(measure(function, xs))
    return {key: statistics.median(v) for key, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-compile", action="store_true", help="skip --fuse and the compiled composite")
    parser.add_argument("--ops", help="comma-separated subset of " + ",".join(o[0] for o in OPS))
    parser.add_argument("--dtype", default="float32", help="float32, float64, bfloat16 or float16")
    parser.add_argument("--baseline", type=Path, help="another adgen checkout: also time its eager op")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    wanted = set(args.ops.split(",")) if args.ops else {o[0] for o in OPS}
    modes = {k: v for k, v in MODES.items() if not (args.no_compile and v.get("fuse"))}
    torch.manual_seed(0)
    print(
        f"{args.dtype}, {args.size} elements, median of {args.repeat}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print("fwd+bwd ms of the eager composite, then ratios to it; saved bytes in multiples of all inputs' bytes")
    header = f"{'op':<10} {'composite':>9} {'eager':>6} {'interm':>6} {'fuse':>6} {'compiled':>8} {'native':>6} {'2nd':>5}   saved: {'eager':>5} {'interm':>6} {'comp.':>5}"
    if args.baseline:
        header += f"   {'base':>5} {'2nd base':>8}"
    print(header)
    with tempfile.TemporaryDirectory() as root:
        for name, expression, composite, native in OPS:
            if name not in wanted:
                continue
            ops = {}
            for mode, options in modes.items():
                out = Path(root) / mode
                emit(expression, name=name, out=out, **options)
                ops[mode] = getattr(load(out / f"{name}.py"), name)
            if args.baseline:
                out = Path(root) / "baseline"
                out.mkdir(exist_ok=True)
                emit_with(args.baseline, expression, name, out)
                ops["baseline"] = getattr(load(out / f"{name}.py"), name)
            arity = composite.__code__.co_argcount
            xs = [torch.randn(args.size, dtype=dtype).requires_grad_() for _ in range(arity)]
            candidates = {"composite": composite, **ops}
            if not args.no_compile:
                candidates["compiled"] = torch.compile(composite)
            if native is not None:
                candidates["native"] = native
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                first = medians(candidates, fwd_bwd, xs, args.repeat)
            twice = {"composite": composite, "eager": ops["eager"]}
            if args.baseline:
                twice["baseline"] = ops["baseline"]
            second = medians(twice, double_backward, xs, args.repeat)
            base = first["composite"]
            cell = lambda key: f"{first[key] / base:.2f}" if key in first else "-"  # noqa: E731
            input_bytes = sum(x.numel() * x.element_size() for x in xs)
            saved = {k: saved_bytes(f, xs) / input_bytes for k, f in [("eager", ops["eager"]), ("interm", ops["interm"]), ("composite", composite)]}
            line = (
                f"{name:<10} {base * 1e3:>9.1f} {cell('eager'):>6} {cell('interm'):>6} {cell('fuse'):>6} "
                f"{cell('compiled'):>8} {cell('native'):>6} {second['eager'] / second['composite']:>5.2f}   "
                f"saved: {saved['eager']:>4.1f}x {saved['interm']:>5.1f}x {saved['composite']:>4.1f}x"
            )
            if args.baseline:
                line += f"   {first['eager'] / first['baseline']:>5.2f} {second['eager'] / second['baseline']:>8.2f}"
            print(line)


if __name__ == "__main__":
    main()
