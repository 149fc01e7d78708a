"""The accuracy target of the stable vocabulary: for the common activations, in
their stable and their naive spellings, value and first and second derivatives
at the points of benchmarks/accuracy.py (tails, near 0 and mid-range), float32
and float64, are finite where the true value is, and:

- where PyTorch's native op is accurate, no less accurate than it: within a
  factor 2 of its relative error, or within ROUNDING_FLOOR epsilons of the truth
  (native kernels are often correctly rounded, error 0, which a composite of
  several rounded steps cannot match exactly);
- where the truth is subnormal, errors count relative to the smallest normal
  number (relative_error does that), and SUBNORMAL_STEPS of the smallest
  subnormal spacing are allowed: a subnormal has fewer bits, and the kernels
  round in steps of that spacing;
- where the native op is bad (not finite, 0 for a nonzero truth, or off by more
  than NATIVE_BAD), "2x native" would admit anything: there the bound is the
  truth itself, |result - truth| <= |truth|. Underflowing to 0 passes it (mish''
  at x >= 30, 1e-24 in truth), a result of the wrong sign fails it.

The bounds are the same for every activation, point and order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchmarks.accuracy import ACTIVATIONS, emitted_ops, measure

ROUNDING_FLOOR = 16  # epsilons: the worst composite seen with a normal truth is 14
SUBNORMAL_STEPS = 32  # the worst seen is 27 (softplus' at -100 in float32)
NATIVE_BAD = 1e-3  # relative error beyond which native is no yardstick


# Known gaps, each a point where the emitted formula misses the bound today:
# (op, spelling, dtype, x, order). The check is strict both ways: a new failure fails it,
# and so does a gap that closes (then remove it here). Closing these is the
# formula-selection work of issue #14.
KNOWN_GAPS = {
    # gelu_tanh' has its minimum near x = -0.75: the truth (1.06e-3) is the
    # difference of two terms of about 0.22, and every form cancels there (native
    # happens to get 50 eps, autograd of the composite 68). Emitted from the
    # sigmoid formula the op now gets 83 eps; emitted from the naive tanh formula
    # it takes that formula's derivative in autograd's order (its stable form has
    # no correct bit at |x| > 2e13 in float32): 168 eps, where 2x native is 100.
    ("gelu_tanh", "emitted_naive", "float32", -0.75, 1),
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    return measure(emitted_ops(Path(tmp_path_factory.mktemp("accuracy"))))


def bound(row: dict[str, object]) -> float:
    """The largest relative error (as relative_error measures it) allowed at this row."""
    eps = torch.finfo(getattr(torch, row["dtype"])).eps
    if not math.isfinite(row["native"]) or row["native"] > NATIVE_BAD:
        return 1.0  # |result - truth| <= |truth|: the right sign, or 0
    if abs(row["truth"]) < torch.finfo(getattr(torch, row["dtype"])).tiny:
        # In units of the smallest normal number, one subnormal step is eps.
        return max(2 * row["native"], SUBNORMAL_STEPS * eps)
    return max(2 * row["native"], ROUNDING_FLOOR * eps)


def test_native_bad_bound_fails_a_sign_flip() -> None:
    """The truth-based bound: a flipped sign is off by 2|truth|, 0 by |truth|."""
    row = {"dtype": "float64", "native": math.inf}
    truth = -2.03e-24
    assert abs(-truth - truth) / abs(truth) > bound(row)
    assert abs(0.0 - truth) / abs(truth) <= bound(row)


@pytest.mark.parametrize("name", [a.name for a in ACTIVATIONS])
@pytest.mark.parametrize("spelling", ["emitted", "emitted_naive"])
def test_no_less_accurate_than_native(rows: list[dict[str, object]], name: str, spelling: str) -> None:
    failures = []
    gaps = set()
    for row in (r for r in rows if r["op"] == name):
        largest = torch.finfo(getattr(torch, row["dtype"])).max
        if math.isfinite(row["truth"]) and abs(row["truth"]) <= largest and math.isinf(row[spelling]):
            failures.append(("not finite", row))
        elif row[spelling] > bound(row):
            where = (row["op"], spelling, row["dtype"], row["x"], row["order"])
            if where in KNOWN_GAPS:
                gaps.add(where)
            else:
                failures.append(("less accurate", row))
    assert failures == []
    assert gaps == {g for g in KNOWN_GAPS if g[:2] == (name, spelling)}, "a known gap closed: remove it"


def test_the_naive_composite_is_what_we_improve_on(rows: list[dict[str, object]]) -> None:
    """The check can fail: autograd through the naive formulas misses the target."""
    worse = [r for r in rows if r["composite"] > bound(r)]
    assert {r["op"] for r in worse} >= {"sigmoid", "softplus", "silu", "logsigmoid"}
