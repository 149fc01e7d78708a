"""Rotary position embedding (rotate-half) with the generated `rope` op against
the same rotation in plain torch ops, eager and torch.compile'd.

Shapes: q and k of (batch 4, heads 16, seq 1024, head_dim 64); cos and sin of
(seq, head_dim/2), broadcast over batch and heads. Prints, per variant, the
forward+backward time of q and k together and the bytes saved for backward
(saved-tensor hooks), then ratios against plain eager. Run by hand:
    python benchmarks/rope.py [--device cuda] [--small]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from generated.rope import rope  # noqa: E402


def plain(x1, x2, c, s):
    return x1 * c - x2 * s, x2 * c + x1 * s


def apply(rotation, q, k, c, s):
    """Split q, k into halves, rotate, concatenate (as Liger-Kernel's RoPE)."""
    outs = []
    for x in (q, k):
        half = x.shape[-1] // 2
        y1, y2 = rotation(x[..., :half], x[..., half:], c, s)
        outs.append(torch.cat((y1, y2), dim=-1))
    return outs


def saved_bytes(rotation, q, k, c, s):
    """The memory held by what is saved for backward: each storage once (a view
    and its base, or an expanded one-element zero, hold no more)."""
    total = 0
    seen = set()

    def pack(tensor):
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        qo, ko = apply(rotation, q, k, c, s)
    return total


def timed(variants, q, k, c, s, grads, repeat):
    """Best fwd+bwd seconds of each variant, the variants interleaved round by
    round so that a busy machine slows them alike."""

    def step(rotation):
        qo, ko = apply(rotation, q, k, c, s)
        torch.autograd.backward([qo, ko], grads)

    for rotation in variants.values():
        for _ in range(3):
            step(rotation)
    best = {label: float("inf") for label in variants}
    for _ in range(repeat):
        for label, rotation in variants.items():
            if q.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(rotation)
            if q.is_cuda:
                torch.cuda.synchronize()
            best[label] = min(best[label], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--small", action="store_true", help="batch 1, heads 4, seq 256")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    batch, heads, seq, dim = (1, 4, 256, 64) if args.small else (4, 16, 1024, 64)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(batch, heads, seq, dim, generator=gen).to(args.device).requires_grad_()
    k = torch.randn(batch, heads, seq, dim, generator=gen).to(args.device).requires_grad_()
    angles = torch.rand(seq, dim // 2, generator=gen).to(args.device) * 6.28
    c, s = angles.cos(), angles.sin()
    grads = [torch.randn_like(q), torch.randn_like(k)]
    # Same numbers first: the generated op and plain ops agree.
    for a, b in zip(apply(rope, q, k, c, s), apply(plain, q, k, c, s)):
        torch.testing.assert_close(a, b)
    variants = {"plain eager": plain, "rope (adgen)": rope}
    try:
        variants["plain compiled"] = torch.compile(plain)
        variants["rope compiled"] = torch.compile(rope)
    except Exception as error:  # noqa: BLE001 - a benchmark reports and goes on
        print(f"torch.compile unavailable: {error}")
    print(f"q, k: {tuple(q.shape)}, cos/sin: {tuple(c.shape)}, device {args.device}")
    seconds = timed(variants, q, k, c, s, grads, args.repeat)
    results = {label: (seconds[label], saved_bytes(r, q, k, c, s)) for label, r in variants.items()}
    base_time, base_bytes = results["plain eager"]
    for label, (seconds, saved) in results.items():
        print(
            f"{label:16s} fwd+bwd {seconds * 1e3:8.2f} ms ({seconds / base_time:5.2f}x plain eager)"
            f"   saved {saved / 2**20:7.2f} MiB ({saved / max(base_bytes, 1):5.2f}x)"
        )


if __name__ == "__main__":
    main()
