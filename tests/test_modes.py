"""The emit options of issue #5: `--save inputs|intermediates` and `--fuse`.

The default run checks the generated tests of a representative subset of the
corpus under each option; the whole corpus under each option is marked
`exhaustive` (minutes, mostly compiling): ADGEN_EXHAUSTIVE=1 runs it, as
`bash .ci/run` does."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest
import sympy
import torch

import adgen
from adgen.parse import parse_expression
from tests.corpus import CORPUS
from tests.helpers import chunks, emit, load_module, run_pytest

# Parameters and broadcasting, a constant and a zero derivative, where(), a
# sigmoid-based activation (the rest of the corpus: exhaustive).
INTERMEDIATES_SUBSET = ["wave", "mix2", "mish_naive", "unused_input", "constant_of_two", "elu"]
# Compiling costs seconds per kernel on a small CPU. identity: inductor reduces
# its kernel to the input itself.
FUSE_SUBSET = ["wave", "mix2", "identity"]
# The whole corpus under --save intermediates is exhaustive, in chunks that
# `pytest -n 2` spreads.
CORPUS_NAMES = [name for name, _, _ in CORPUS]


def _features(expression: str, options: tuple[str, ...]) -> set[str]:
    """What an op asks of the compiler: each function it calls, where() and
    min/max/abs, fractional powers, parameters, how many inputs."""
    expr = parse_expression(expression).expr
    nodes = list(sympy.preorder_traversal(expr))
    found = {type(n).__name__ for n in nodes if isinstance(n, (sympy.Function, sympy.Piecewise))}
    found |= {"fractional power" for n in nodes if n.is_Pow and not n.exp.is_Integer}
    found |= {"param" for flag in options if flag == "--param"}
    return found | {f"{min(len(expr.free_symbols), 3)} symbols"}


def _covering(corpus) -> list[str]:
    """The fewest ops (greedily, in corpus order on ties) that together have every
    feature of the corpus: compiling the whole corpus for every generated test
    took most of CI's time on a machine with a cold compile cache."""
    features = {name: _features(expression, options) for name, expression, options in corpus}
    missing = set().union(*features.values())
    chosen = []
    while missing:
        best = max(features, key=lambda name: len(features[name] & missing))
        chosen.append(best)
        missing -= features[best]
    return chosen


FUSE_COVERING = _covering(CORPUS)


def _emit_corpus(out: Path, names: list[str] | None, *flags: str) -> Path:
    for name, expression, options in CORPUS:
        if names is None or name in names:
            assert emit(out, expression, "--name", name, *options, *flags) == 0, name
    return out


def _saved_bytes(function, *inputs: torch.Tensor) -> int:
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        function(*inputs)
    return sum(saved)


def _inputs(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(s, generator=generator, dtype=torch.float64).requires_grad_() for s in shapes]


@pytest.fixture(scope="module")
def intermediates_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _emit_corpus(tmp_path_factory.mktemp("interm"), INTERMEDIATES_SUBSET, "--save", "intermediates")


@pytest.mark.parametrize("name, shapes", [("mix2", [(2, 1), (3,)]), ("wave", [(4,), (4,)]), ("gelu_tanh", [(1000,)])])
def test_default_saves_exactly_the_inputs(corpus_dir: Path, name: str, shapes) -> None:
    op = getattr(load_module(corpus_dir / f"{name}.py"), name)
    inputs = _inputs(*shapes)
    assert _saved_bytes(op, *inputs) == sum(x.numel() * x.element_size() for x in inputs)


# (expression, options, inputs asking for a gradient, the inputs backward keeps)
KEPT_CASES = [
    ("x*y", (), "x", "y"),  # as autograd's mul: the other operand only
    ("x*y", (), "y", "x"),
    ("x*y", (), "xy", "xy"),
    ("sin(x)*y", (), "y", "x"),  # not a polynomial in x: x is always kept
    ("sin(x)*y", (), "x", "xy"),
    ("x + 3*z", (), "xz", ""),  # no gradient reads an input
    ("x1*c - x2*s, x2*c + x1*s", ("--inputs", "x1,x2,c,s"), ("x1", "x2"), ("c", "s")),
    ("x1*c - x2*s, x2*c + x1*s", ("--inputs", "x1,x2,c,s"), ("c",), ("x1", "x2")),
]


@pytest.mark.parametrize("expression, options, asking, kept", KEPT_CASES)
def test_backward_keeps_only_the_inputs_a_gradient_asked_for_reads(
    tmp_path: Path, expression: str, options: tuple[str, ...], asking, kept
) -> None:
    """An input that no gradient asked for reads is saved as a zero stand-in of
    one element (the op is a polynomial in it), not as the tensor; the first
    and second derivatives stay those of the composite."""
    assert emit(tmp_path, expression, "--name", "op", *options) == 0
    module = load_module(tmp_path / "op.py")
    names = list(inspect.signature(module.op).parameters)
    generator = torch.Generator().manual_seed(0)
    inputs = {n: torch.rand(6, generator=generator, dtype=torch.float64) + 0.5 for n in names}
    for n in asking:
        inputs[n].requires_grad_()
    saved: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.add(tensor.untyped_storage().data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outputs = module.op(*inputs.values())
    held = {n for n, t in inputs.items() if t.untyped_storage().data_ptr() in saved}
    assert held == set(kept)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    composite = {
        "x*y": lambda x, y: (x * y,),
        "sin(x)*y": lambda x, y: (torch.sin(x) * y,),
        "x + 3*z": lambda x, z: (x + 3 * z,),
        "x1*c - x2*s, x2*c + x1*s": lambda x1, x2, c, s: (x1 * c - x2 * s, x2 * c + x1 * s),
    }[expression](*inputs.values())
    variables = [inputs[n] for n in asking]
    for ours, theirs in zip(outputs, composite):
        # The cotangent is differentiated too: the double backward then runs
        # with the stand-ins (d/d weights of the gradient reads the partials).
        weights = torch.linspace(-1, 2, 6, dtype=torch.float64, requires_grad=True)
        first = torch.autograd.grad((ours * weights).sum(), variables, create_graph=True)
        expected = torch.autograd.grad((theirs * weights).sum(), variables, create_graph=True)
        torch.testing.assert_close(first, expected, rtol=1e-12, atol=1e-12)
        second = torch.autograd.grad(sum((g * g).sum() for g in first), [*variables, weights], allow_unused=True)
        wanted = torch.autograd.grad(sum((g * g).sum() for g in expected), [*variables, weights], allow_unused=True)
        for a, b in zip(second, wanted):
            assert (a is None) == (b is None) or torch.count_nonzero(a if a is not None else b) == 0
            if a is not None and b is not None:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _first_and_second(function, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    out = function(*inputs)
    firsts = torch.autograd.grad(out.sum(), inputs, create_graph=True)
    seconds = torch.autograd.grad(sum((g * g).sum() for g in firsts), inputs)
    plain = torch.autograd.grad(function(*inputs).sum(), inputs)  # no create_graph
    return [out, *firsts, *seconds, *plain]


@pytest.mark.parametrize("name, shapes", [("mix2", [(2, 1), (3,)]), ("wave", [(4,), (4,)]), ("mish_naive", [(7,)])])
def test_intermediates_save_more_and_agree_to_second_order(
    corpus_dir: Path, intermediates_dir: Path, name: str, shapes
) -> None:
    default = getattr(load_module(corpus_dir / f"{name}.py"), name)
    saving = getattr(load_module(intermediates_dir / f"{name}.py"), name)
    inputs = _inputs(*shapes)
    assert _saved_bytes(saving, *inputs) > _saved_bytes(default, *inputs)
    for a, b in zip(_first_and_second(saving, inputs), _first_and_second(default, inputs)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "names",
    [pytest.param(INTERMEDIATES_SUBSET, id="subset")]
    + chunks(CORPUS_NAMES, 2, "corpus", pytest.mark.exhaustive),
)
def test_generated_tests_pass_under_save_intermediates(tmp_path: Path, names: list[str]) -> None:
    out = _emit_corpus(tmp_path, names, "--save", "intermediates")
    result = run_pytest(str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    print(f"--save intermediates: {result.stdout.strip().splitlines()[-1]}")


def test_save_intermediates_saves_an_equal_derivative_once(tmp_path: Path) -> None:
    """tanh(x + y): ∂f/∂x and ∂f/∂y are one formula, one tensor. forward returns
    and saves it once (torch.compile rejects a Function that returns a tensor
    twice), and the first-order backward reads it for both gradients."""
    assert emit(tmp_path, "tanh(x + y)", "--name", "tanh_sum", "--save", "intermediates") == 0
    op = load_module(tmp_path / "tanh_sum.py").tanh_sum
    x, y = _inputs((5,), (5,))
    assert _saved_bytes(op, x, y) == 3 * x.numel() * x.element_size()  # x, y, one derivative
    result = run_pytest(str(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_generated_tests_pass_under_fuse(tmp_path: Path) -> None:
    out = _emit_corpus(tmp_path, FUSE_SUBSET, "--fuse")
    result = run_pytest(str(out))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    print(f"--fuse: {result.stdout.strip().splitlines()[-1]}")


def _three_orders(function, inputs: list[torch.Tensor], params: dict[str, float]) -> list[torch.Tensor]:
    """Value, the derivatives of orders 1 to 3 (reverse mode, each of the sum of
    the one before) and a forward-mode jvp: every kernel of the family runs."""
    value = function(*inputs, **params)
    results, level = [value], value
    for _ in range(3):
        if not level.requires_grad:
            break
        grads = torch.autograd.grad(level.sum(), inputs, create_graph=True, allow_unused=True)
        grads = [g for g in grads if g is not None]
        results += grads
        if not grads:
            break
        level = sum(g.sum() for g in grads)
    tangents = [torch.full_like(x, 0.5) for x in inputs]
    _, jvp = torch.func.jvp(lambda *a: function(*a, **params), tuple(x.detach() for x in inputs), tuple(tangents))
    return [r.detach() for r in results] + [jvp]


@pytest.mark.exhaustive
def test_fused_kernels_compile_and_agree_with_eager(corpus_dir: Path, tmp_path: Path) -> None:
    """Every function, where(), parameters and input counts of the corpus, under
    --fuse: each kernel compiles (no fall back to eager) and gives the eager op's
    numbers to all three orders and in forward mode."""
    out = _emit_corpus(tmp_path, FUSE_COVERING, "--fuse")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # _Fused's "torch.compile failed"
        for name in FUSE_COVERING:
            generated_test = load_module(out / f"test_{name}.py")  # its domains and params
            fused = getattr(generated_test.op, name)
            eager = getattr(load_module(corpus_dir / f"{name}.py"), name)
            inputs = generated_test.make_inputs(generated_test.SHAPES)
            got = _three_orders(fused, inputs, generated_test.PARAMS)
            expected = _three_orders(eager, inputs, generated_test.PARAMS)
            assert len(got) == len(expected) > 1, name
            for index, (a, b) in enumerate(zip(got, expected)):
                torch.testing.assert_close(
                    a, b, rtol=1e-10, atol=1e-12, equal_nan=True, msg=lambda m: f"{name} result {index}: {m}"
                )


def test_fuse_compiles_lazily_with_dynamic_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert emit(tmp_path, "x*y + sin(x)*exp(y)", "--name", "mix2", "--fuse") == 0
    calls = []

    def spy(function, **options):
        calls.append((function.__name__, options))
        return function

    monkeypatch.setattr(torch, "compile", spy)
    op = load_module(tmp_path / "mix2.py").mix2
    assert calls == []  # nothing compiles at import
    x, y = _inputs((3,), (3,))
    op(x, y).sum().backward()
    op(x, y).sum().backward()
    assert calls == [("_mix2", {"dynamic": True}), ("_mix2_backward", {"dynamic": True})]


def test_fuse_falls_back_to_eager_with_one_warning(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert emit(tmp_path, "x*y + sin(x)*exp(y)", "--name", "mix2", "--fuse") == 0

    def unavailable(function, **options):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", unavailable)
    fused = load_module(tmp_path / "mix2.py").mix2
    eager = load_module(corpus_dir / "mix2.py").mix2
    inputs = _inputs((2, 1), (3,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [_first_and_second(fused, inputs) for _ in range(3)]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "no compiler here" in messages[0], messages
    for result in results:
        for a, b in zip(result, _first_and_second(eager, inputs)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_options_appear_in_the_regenerate_line_only_when_not_default() -> None:
    default = adgen.render("sin(x)").module_source
    assert "--save" not in default and "--fuse" not in default and "_Fused" not in default
    both = adgen.render("sin(x)", save="intermediates", fuse=True).module_source
    assert "# Regenerate: adgen emit --name sin -o . --save intermediates --fuse 'sin(x)'" in both


def test_unknown_save_policy_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emit(tmp_path, "sin(x)", "--save", "everything") == 2
    assert "--save" in capsys.readouterr().err
    with pytest.raises(adgen.errors.InputError, match="--save"):
        adgen.render("sin(x)", save="everything")


def test_fuse_keeps_compiling_after_gradchecks_batched_grad(tmp_path: Path) -> None:
    """gradcheck(check_batched_grad=True) batches with the older vmap, which the
    compiled kernels cannot take: they run eager for that call only, with no
    warning and no permanent fall-back to eager."""
    assert emit(tmp_path, "x*y + sin(x)*exp(y)", "--name", "mix2", "--fuse") == 0
    module = load_module(tmp_path / "mix2.py")
    inputs = _inputs((3,), (3,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert torch.autograd.gradcheck(module.mix2, inputs, check_batched_grad=True)
    assert module._Fused.failed is False
    assert module._mix2.compiled is not None
