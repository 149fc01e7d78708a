"""Deployment: a model that calls generated ops exports with `torch.export.export`
and to ONNX (`torch.onnx.export(..., dynamo=True)`).

An exported program holds the forward only, as for any custom
`torch.autograd.Function`: the op's forward is plain torch ops, which export
traces into aten ops; its hand-derived backward is not part of the program."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

import adgen
from generated import damped_wave, mish


class Model(torch.nn.Module):
    """A linear layer, a one-input activation, then a two-input op with a parameter."""

    def __init__(self, activation) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.activation = activation

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return damped_wave(self.activation(self.linear(x)), y, alpha=0.3)


def composite_mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(torch.nn.functional.softplus(x))


def _inputs(seed: int, rows: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 4, generator=generator), torch.randn(rows, 4, generator=generator)


def _model(activation) -> Model:
    torch.manual_seed(0)
    return Model(activation).eval()


# The default op, and the variants whose forward differs: kernels kept for
# backward (--save intermediates) and kernels under torch.compile (--fuse).
VARIANTS = {
    "default": lambda: mish,
    "save_intermediates": lambda: adgen.load("x*tanh(softplus(x))", name="mish", save="intermediates"),
    "fuse": lambda: adgen.load("x*tanh(softplus(x))", name="mish", fuse=True),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_export_holds_the_forward_as_aten_ops(variant: str) -> None:
    model = _model(VARIANTS[variant]())
    program = torch.export.export(model, _inputs(0))
    targets = [node.target for node in program.graph.nodes if node.op == "call_function"]
    assert targets and all(isinstance(t, torch._ops.OpOverload) and t.namespace == "aten" for t in targets), targets
    exported = program.module()
    # Not the fused model itself as the reference: calling it eagerly would
    # compile its kernels (tens of seconds), which export never does.
    eager, composite = _model(mish), _model(composite_mish)
    for seed in (1, 2):  # inputs other than the ones traced
        x, y = _inputs(seed)
        torch.testing.assert_close(exported(x, y), eager(x, y))
        torch.testing.assert_close(exported(x, y), composite(x, y))


def test_torch_export_with_a_dynamic_batch() -> None:
    model = _model(mish)
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, _inputs(0), dynamic_shapes=({0: batch}, {0: batch}))
    x, y = _inputs(1, rows=7)
    torch.testing.assert_close(program.module()(x, y), model(x, y), rtol=0, atol=0)


def test_onnx_export_dynamo_matches_torch() -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:  # both come with the test extra; this is for a bare environment
        pytest.skip(f"ONNX export needs {' and '.join(missing)}: pip install -e '.[test]'")
    from onnx.reference import ReferenceEvaluator

    model = _model(mish)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's progress notes
        program = torch.onnx.export(model, _inputs(0), dynamo=True, verbose=False)
    proto = program.model_proto
    operators = {node.op_type for node in proto.graph.node}
    assert {"Softplus", "Tanh", "Cos", "Exp"} <= operators, operators
    evaluator = ReferenceEvaluator(proto)  # onnx's own interpreter, independent of torch
    names = [value.name for value in proto.graph.input]
    x, y = _inputs(1)
    (result,) = evaluator.run(None, {names[0]: x.numpy(), names[1]: y.numpy()})
    torch.testing.assert_close(torch.from_numpy(result), model(x, y).detach())
