"""The accuracy target of the stable vocabulary: for the common activations, in
their stable and their naive spellings, value and first and second derivatives
at x in {±100, ±80, ±30, ±10, ±1e-6, 0}, float32 and float64, are finite where
the true value is, and no less accurate than PyTorch's native op (within a factor
2, plus 32 ulps for results that underflow to subnormals)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchmarks.accuracy import ACTIVATIONS, emitted_ops, measure


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    return measure(emitted_ops(Path(tmp_path_factory.mktemp("accuracy"))))


@pytest.mark.parametrize("name", [a.name for a in ACTIVATIONS])
@pytest.mark.parametrize("spelling", ["emitted", "emitted_naive"])
def test_no_less_accurate_than_native(rows: list[dict[str, object]], name: str, spelling: str) -> None:
    failures = []
    for row in (r for r in rows if r["op"] == name):
        eps = torch.finfo(getattr(torch, row["dtype"])).eps
        largest = torch.finfo(getattr(torch, row["dtype"])).max
        if math.isfinite(row["truth"]) and abs(row["truth"]) <= largest and math.isinf(row[spelling]):
            failures.append(("not finite", row))
        elif row[spelling] > 2 * row["native"] + 32 * eps:
            failures.append(("less accurate", row))
    assert failures == []


def test_the_naive_composite_is_what_we_improve_on(rows: list[dict[str, object]]) -> None:
    """The check can fail: autograd through the naive formulas misses the target."""
    worse = [r for r in rows if r["composite"] > 2 * r["native"] + 32 * torch.finfo(getattr(torch, r["dtype"])).eps]
    assert {r["op"] for r in worse} >= {"sigmoid", "softplus", "silu", "logsigmoid"}
