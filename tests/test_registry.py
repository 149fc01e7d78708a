"""The registry of functions (adgen/registry.py) is the one table the parser,
printer and in-place lowering read: every name a user may call parses, prints,
differentiates and runs, and every spelling in it exists in torch and math."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

import adgen
from adgen.parse import FUNCTIONS
from adgen.printer import AdgenTorchPrinter
from adgen.registry import BY_NAME, REGISTRY

# Points where every function of the language is defined and smooth, per its
# row's domain; kinks (relu, abs, max, where ...) are at 0 or x = y, away from these.
_POINTS = {"x": (0.35, 0.62, 0.83), "y": (0.55, 0.21, 0.47)}


def _resolve(dotted: str):
    module, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module or "builtins"), attribute)


def test_parser_whitelist_is_the_registry() -> None:
    assert set(FUNCTIONS) == set(BY_NAME)
    for name, (construct, arity) in FUNCTIONS.items():
        assert arity == BY_NAME[name].arity


@pytest.mark.parametrize("row", REGISTRY, ids=lambda r: r.sympy_class.__name__)
def test_spellings_exist(row) -> None:
    if row.torch:
        assert callable(_resolve(row.torch)), row.torch
    if row.math:
        assert callable(_resolve(row.math)), row.math
    if row.in_place:
        assert hasattr(torch.Tensor, row.in_place + "_"), row.in_place
    if row.torch is None:  # then the printer has a method of its own for the node
        assert hasattr(AdgenTorchPrinter, f"_print_{row.sympy_class.__name__}"), row


def _call(name: str) -> str:
    if name == "where":
        return "where(x > 0.5, x, y)"
    arguments = ["x", "y"][: BY_NAME[name].arity]
    return f"{name}({', '.join(arguments)})"


def _inputs(name: str) -> list[torch.Tensor]:
    """Points inside the row's domain (scaled into it where it is bounded)."""
    low, high = BY_NAME[name].domain
    symbols = ["x", "y"] if name == "where" else ["x", "y"][: BY_NAME[name].arity]
    tensors = []
    for symbol in symbols:
        if math.isfinite(low) and math.isfinite(high):
            values = [low + (high - low) * u for u in _POINTS[symbol]]
        elif math.isfinite(low):
            values = [low + 0.1 + u for u in _POINTS[symbol]]
        else:
            values = list(_POINTS[symbol])
        tensors.append(torch.tensor(values, dtype=torch.float64, requires_grad=True))
    return tensors


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_name_prints_differentiates_and_runs(name: str) -> None:
    """The op for `name(x[, y])` renders, and its first and second derivatives
    agree with finite differences of its own value (gradcheck, gradgradcheck)."""
    op = adgen.load(_call(name), name="op")
    inputs = _inputs(name)
    assert torch.isfinite(op(*inputs)).all()
    assert torch.autograd.gradcheck(op, inputs, check_forward_ad=True)
    assert torch.autograd.gradgradcheck(op, inputs)
