"""The cost of each torch operation a kernel may print, for the formula-selection stage.

Each number is the time of one elementwise float32 operation on a contiguous
2M-element tensor, relative to `torch.mul(a, b)` = 1.0: the median of
interleaved repeats after a warm-up, with a fixed number of threads (see
MEASURED). Keys: the arithmetic and comparison operations ("add", "sub", "mul",
"div", "neg", "reciprocal", "square" = x*x, "pow_int" = x**3, "sqrt", "rsqrt",
"pow" = x**2.5, "where", "abs", "gt", "max", "min") and every function of
adgen/registry.py by its first name ("sin", "loggamma", "softplus", ...), each
timed in the spelling the printer writes (heaviside as sign(relu(x))).

The table below the marker line is written by `python benchmarks/op_cost.py
--write` (`--device cuda` fills CUDA_COSTS, which stays empty until measured on
a GPU); re-measure after a torch upgrade. Plain data: the generator never
imports torch, and nothing here depends on the machine that emits, so emission
stays deterministic.
"""

from __future__ import annotations


def cost(operation: str, device: str = "cpu") -> float:
    """The relative cost of `operation` ("mul" = 1.0) on `device` ("cpu" or
    "cuda"; an operation the CUDA column lacks falls back to its CPU cost)."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"cost table device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and operation in CUDA_COSTS:
        return CUDA_COSTS[operation]
    try:
        return COSTS[operation]
    except KeyError:
        raise KeyError(
            f"no cost for operation {operation!r}; known: {', '.join(sorted(COSTS))}"
        ) from None


# --- measured table: `python benchmarks/op_cost.py --write` rewrites everything below ---
MEASURED = {
    'cpu': (
        '2026-11-26, x86_64, torch 2.13.0+cpu, 1 thread(s), 2000000 elements, median of 15 rounds of 10 calls, while other work shared the machine, mul = 2.699 ms'
    ),
    'cuda': (
        '2026-11-27, NVIDIA H200, torch 2.11.0+cu130, 1 thread(s), 2000000 elements, median of 15 rounds of 10 calls, mul = 0.008 ms'
    ),
}
COSTS: dict[str, float] = {
    'add': 0.958,
    'sub': 0.884,
    'mul': 1.0,
    'div': 0.901,
    'neg': 0.622,
    'reciprocal': 0.577,
    'square': 0.63,
    'pow_int': 0.756,
    'sqrt': 0.725,
    'rsqrt': 0.86,
    'pow': 5.24,
    'where': 8.62,
    'abs': 0.782,
    'gt': 1.89,
    'max': 0.93,
    'min': 0.989,
    'sin': 0.845,
    'cos': 0.973,
    'tan': 1.29,
    'asin': 1.12,
    'acos': 1.13,
    'atan': 0.983,
    'atan2': 3.39,
    'sinh': 2.64,
    'cosh': 2.77,
    'tanh': 0.81,
    'asinh': 36.9,
    'acosh': 14.7,
    'atanh': 3.3,
    'exp': 0.613,
    'log': 0.635,
    'erf': 1.1,
    'erfc': 1.72,
    'loggamma': 9.72,
    'sigmoid': 1.32,
    'softplus': 3.79,
    'relu': 0.587,
    'log1p': 1.74,
    'expm1': 2.2,
    'logaddexp': 4.11,
    'xlogy': 7.27,
    'hypot': 2.12,
    'erfinv': 2.13,
    'digamma': 46.9,
    'sign': 0.611,
    'heaviside': 7.05,
}
CUDA_COSTS: dict[str, float] = {
    'add': 1.06,
    'sub': 1.04,
    'mul': 1.0,
    'div': 1.05,
    'neg': 0.982,
    'reciprocal': 0.986,
    'square': 1.03,
    'pow_int': 1.28,
    'sqrt': 1.0,
    'rsqrt': 1.03,
    'pow': 1.32,
    'where': 1.22,
    'abs': 1.12,
    'gt': 0.998,
    'max': 1.02,
    'min': 1.04,
    'sin': 0.989,
    'cos': 0.972,
    'tan': 0.989,
    'asin': 0.985,
    'acos': 0.989,
    'atan': 1.0,
    'atan2': 1.05,
    'sinh': 0.978,
    'cosh': 0.973,
    'tanh': 0.968,
    'asinh': 0.979,
    'acosh': 1.04,
    'atanh': 0.975,
    'exp': 0.986,
    'log': 0.982,
    'erf': 0.977,
    'erfc': 0.943,
    'loggamma': 1.65,
    'sigmoid': 0.986,
    'softplus': 1.03,
    'relu': 1.02,
    'log1p': 0.965,
    'expm1': 0.964,
    'logaddexp': 1.02,
    'xlogy': 1.05,
    'hypot': 1.03,
    'erfinv': 0.926,
    'digamma': 2.66,
    'sign': 0.974,
    'heaviside': 1.92,
}
