"""Recompute or save (issue #14): where autograd records a graph through the
first-order Backward (create_graph), the op's backward computes the partial
derivatives of orders 1 and 2 together and the Backward keeps them, so the
backward after it reads them instead of computing them again. Plain training
saves the inputs only, and the choice (select.partials_to_save) is the cost
model's: a table worth less than the memory it holds is recomputed."""

from __future__ import annotations

import sys

import pytest
import torch

import adgen
from adgen.derive import build_model
from adgen.parse import parse_expression
from adgen.select import partials_to_save

WAVE = "x*exp(-alpha*x**2)*cos(y)"


def _module(expression: str, name: str, **options):
    adgen.load(expression, name=name, **options)
    return sys.modules[f"adgen.loaded.{name}"]


@pytest.fixture(scope="module")
def mish():
    return _module("x*tanh(softplus(x))", "saving_mish")


@pytest.fixture(scope="module")
def wave():
    return _module(WAVE, "saving_wave", params={"alpha": 0.5})


class _Orders:
    """Records the order of every call of the module's table helper."""

    def __init__(self, module, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[int] = []
        helper = module._partials

        def recorded(*args):
            self.calls.append(args[-1])
            return helper(*args)

        monkeypatch.setattr(module, "_partials", recorded)


def _never_save(module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_partials_to_save", lambda *args: ())


def _second_derivatives(function, xs, create_graph: bool = False):
    """d/dx of sum(df/dx): the double backward of a Hessian-vector product."""
    grads = torch.autograd.grad(function(*xs).sum(), xs, create_graph=True)
    return torch.autograd.grad(sum(g.sum() for g in grads), xs, create_graph=create_graph)


def _inputs(count: int, dtype=torch.float64, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [
        (3 * torch.randn(64, generator=generator, dtype=torch.float64)).to(dtype).requires_grad_()
        for _ in range(count)
    ]


def test_plain_backward_computes_the_first_order_only(mish, monkeypatch) -> None:
    orders = _Orders(mish, monkeypatch)
    (x,) = _inputs(1)
    mish.saving_mish(x).sum().backward()
    assert orders.calls == [1]


def test_double_backward_computes_the_table_once(mish, wave, monkeypatch) -> None:
    """One table of order 2, in the op's backward; before: order 1 in the
    Backward's forward, then order 2 again in its backward."""
    for module, function, count in ((mish, mish.saving_mish, 1), (wave, wave.saving_wave, 2)):
        orders = _Orders(module, monkeypatch)
        _second_derivatives(function, _inputs(count))
        assert orders.calls == [2], module.__name__


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_saved_and_recomputed_tables_give_the_same_bits(mish, wave, monkeypatch, dtype) -> None:
    for function, count in ((mish.saving_mish, 1), (wave.saving_wave, 2)):
        xs = _inputs(count, dtype)
        saved = _second_derivatives(function, xs)
        with monkeypatch.context() as patch:
            _never_save(sys.modules[function.__module__], patch)
            recomputed = _second_derivatives(function, xs)
        for a, b in zip(saved, recomputed):
            assert a.dtype == dtype
            assert torch.equal(a, b)


def test_third_order_differentiates_the_table_again(wave) -> None:
    """Under a third backward the saved entries (no graph) must not be used:
    the result matches autograd of the composite."""
    xs = _inputs(2)
    composite = lambda x, y: x * torch.exp(-0.5 * x**2) * torch.cos(y)  # noqa: E731
    for function in (wave.saving_wave, composite):
        second = _second_derivatives(function, xs, create_graph=True)
        third = torch.autograd.grad(sum(s.sum() for s in second), xs)
        if function is composite:
            for ours, theirs in zip(kept, third):
                torch.testing.assert_close(ours, theirs)
        kept = third


def test_forward_mode_over_the_backward_reads_the_saved_table(mish, monkeypatch) -> None:
    """The Backward's jvp hands its saved entries to BackwardJvp: with dual
    inputs neither computes a table, and the tangent is the recomputed one."""
    import torch.autograd.forward_ad as fwAD

    (x,) = _inputs(1)
    x = x.detach()
    grad, tangent = torch.randn_like(x), torch.randn_like(x)
    df = mish._partials(x, 2)
    results = []
    for saved in ((df.x, df.xx), ()):
        orders = _Orders(mish, monkeypatch)
        with fwAD.dual_level():
            out = mish.SavingMishBackward.apply(grad, fwAD.make_dual(x, tangent), *saved)
            results.append(fwAD.unpack_dual(out).tangent)
        assert orders.calls == ([] if saved else [1, 2])
    assert torch.equal(*results)


def test_saved_entries_are_read_never_written(wave) -> None:
    """The forward kernels reuse buffers in place: never the saved entries'."""
    x, y = _inputs(2)
    saved = wave._partials_to_save(x, y, 0.5)
    before = [s.clone() for s in saved]
    grad, tangents = torch.randn_like(x), [torch.randn_like(x) for _ in range(3)]
    with torch.no_grad():
        wave.SavingWaveBackward.forward(grad, x, y, 0.5, 3, *saved)
        wave.SavingWaveBackwardJvp.forward(grad, x, y, *tangents, 0.5, *saved)
    assert len(saved) == 5
    for entry, old in zip(saved, before):
        assert torch.equal(entry, old)


def test_torch_func_transforms_never_save(mish, monkeypatch) -> None:
    from torch.func import grad, hessian, vmap

    orders = _Orders(mish, monkeypatch)
    x = torch.randn(5, dtype=torch.float64)
    vmap(grad(lambda v: mish.saving_mish(v)))(x)
    assert set(orders.calls) == {1}  # a first-order torch.func.grad pays for nothing more
    h = hessian(lambda v: mish.saving_mish(v).sum())(x)
    xs = x.clone().requires_grad_()
    (expected,) = _second_derivatives(mish.saving_mish, [xs])
    torch.testing.assert_close(torch.diagonal(h), expected)


def test_nothing_more_is_saved_for_plain_training(mish) -> None:
    """Saved tensors of forward and a plain backward: the input only."""
    saved = []
    (x,) = _inputs(1)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        mish.saving_mish(x).sum().backward()
    assert [tuple(t.shape) for t in saved] == [tuple(x.shape)]


def _model(expression: str, inputs: tuple[str, ...], params: dict[str, float] | None = None):
    from adgen.derive import Param

    params = params or {}
    return build_model(
        parse_expression(expression), "op", inputs, tuple(Param(n, v) for n, v in params.items()),
        saver=lambda tables, order: partials_to_save(tables, order, frozenset(params)),
    )


def test_the_cost_model_decides() -> None:
    """Saved where recomputing the first order costs more than an elementwise
    multiplication per tensor held; bare inputs cost no memory."""
    assert _model("x*tanh(softplus(x))", ("x",)).saved_partials == ("f_x", "f_xx")
    assert _model(WAVE, ("x", "y"), {"alpha": 0.5}).saved_partials == (
        "f_x", "f_y", "f_xx", "f_xy", "f_yy",
    )
    assert _model("x*y", ("x", "y")).saved_partials == ()  # f_x = y: nothing to recompute
    assert _model("sin(x)", ("x",)).saved_partials == ()  # cos, -sin: cheaper than held
    assert _model("(x*y, x + y)", ("x", "y")).saved_partials == ()  # several outputs alike


def test_several_outputs_save_each_table(monkeypatch) -> None:
    """Several outputs: the flat saved entries nest back into each output's
    table; the same bits as recomputing, and the third order still exact."""
    module = _module("(x*tanh(softplus(y)), y*tanh(softplus(x)))", "saving_pair")
    pair = module.saving_pair
    both = lambda x, y: sum(pair(x, y))  # noqa: E731
    orders = _Orders(module, monkeypatch)
    xs = _inputs(2)
    saved = _second_derivatives(both, xs)
    assert orders.calls == [2]
    with monkeypatch.context() as patch:
        _never_save(module, patch)
        recomputed = _second_derivatives(both, xs)
    for a, b in zip(saved, recomputed):
        assert torch.equal(a, b)
    composite = lambda x, y: (  # noqa: E731
        x * torch.tanh(torch.nn.functional.softplus(y)) + y * torch.tanh(torch.nn.functional.softplus(x))
    )
    thirds = []
    for function in (both, composite):
        second = _second_derivatives(function, xs, create_graph=True)
        thirds.append(torch.autograd.grad(sum(s.sum() for s in second), xs))
    for ours, theirs in zip(*thirds):
        torch.testing.assert_close(ours, theirs)


def test_fused_modules_recompute(tmp_path) -> None:
    adgen.load("x*tanh(softplus(x))", name="saving_mish_fused", fuse=True)
    module = sys.modules["adgen.loaded.saving_mish_fused"]
    assert not hasattr(module, "_partials_to_save")
