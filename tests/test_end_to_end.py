"""Emit every op of the corpus, import it, check it against values computed by
sympy (independent of the printer) and against PyTorch's native ops where they
exist, then run the generated test files: those of a representative subset in
the default run, the rest of the corpus when ADGEN_EXHAUSTIVE=1 (as in
`bash .ci/run`)."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import pytest
import sympy
import torch

from adgen.functions import elementary
from adgen.parse import parse_expression
from tests.corpus import CORPUS
from tests.helpers import chunks, emit, load_module, run_pytest


@pytest.fixture(scope="module")
def ops_dir(corpus_dir: Path) -> Path:
    return corpus_dir  # emitted once per session (conftest.py)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS)


def _domain_points(ops_dir: Path, name: str) -> dict[str, list[float]]:
    """Three points inside each input's interval, as chosen for the generated test."""
    domains = load_module(ops_dir / f"test_{name}.py").DOMAINS
    return {n: [lo + (hi - lo) * f for f in (0.23, 0.51, 0.87)] for n, (lo, hi) in domains.items()}


@pytest.mark.parametrize("name, expression, options", CORPUS, ids=[c[0] for c in CORPUS])
def test_values_and_gradients_match_sympy(ops_dir: Path, name: str, expression: str, options: tuple[str, ...]) -> None:
    module: ModuleType = load_module(ops_dir / f"{name}.py")
    function = getattr(module, name)
    parsed = parse_expression(expression)
    expr = elementary(parsed.expr)  # sympy evaluates its own functions only
    params = {}
    for flag, value in zip(options, options[1:]):
        if flag == "--param":
            key, _, default = value.partition("=")
            params[key] = float(default) if default else 0.75
    inputs = [n for n in parsed.names if n not in params]
    if "--inputs" in options:
        inputs = options[options.index("--inputs") + 1].split(",")
    points = _domain_points(ops_dir, name)
    symbols = {s.name: s for s in parsed.expr.free_symbols}
    for k in range(3):
        values = {n: points[n][k] for n in inputs}
        tensors = [torch.tensor(values[n], dtype=torch.float64, requires_grad=True) for n in inputs]
        out = function(*tensors, **params)
        subs = {symbols[n]: v for n, v in {**values, **params}.items() if n in symbols}
        expected = float(expr.subs(subs).evalf(30))
        assert out.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
        grads = torch.autograd.grad(out, tensors, allow_unused=True)
        for n, g in zip(inputs, grads):
            derivative = sympy.diff(expr, sympy.Symbol(n, real=True))
            derivative = derivative.replace(sympy.DiracDelta, lambda *a: 0)
            expected_grad = float(derivative.subs(subs).evalf(30))
            got = 0.0 if g is None else g.item()
            # rel 1e-9: torch.special.polygamma(1, x) itself is good to about 1e-10
            assert got == pytest.approx(expected_grad, rel=1e-9, abs=1e-12), (name, n)


# PyTorch's own derivative formulas are an independent oracle.
NATIVE = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "asin": torch.asin, "acos": torch.acos,
    "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh,
    "asinh": torch.asinh, "acosh": torch.acosh, "atanh": torch.atanh, "exp": torch.exp,
    "log": torch.log, "sqrt": torch.sqrt, "erf": torch.erf, "erfc": torch.erfc,
    "lgamma": torch.lgamma, "atan2": torch.atan2,
    "mish_naive": torch.nn.functional.mish, "silu_naive": torch.nn.functional.silu,
    "gelu_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "sigmoid": torch.sigmoid, "softplus": torch.nn.functional.softplus, "relu": torch.relu,
    "log1p": torch.log1p, "expm1": torch.expm1, "logaddexp": torch.logaddexp,
    "erfinv": torch.erfinv, "digamma": torch.special.digamma, "xlogy": torch.special.xlogy,
    "hypot": torch.hypot, "elu": torch.nn.functional.elu,
    "logsigmoid": torch.nn.functional.logsigmoid, "gelu": torch.nn.functional.gelu,
}


def _third_order(function, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Value, gradient, Hessian-vector and third-order contractions."""
    generator = torch.Generator().manual_seed(7)
    out = function(*inputs)
    results = [out]
    level = [out.sum()]
    for _ in range(3):
        if level[0].requires_grad:
            grads = torch.autograd.grad(level[0], inputs, create_graph=True, allow_unused=True)
        else:  # the previous derivative is constant (relu's second)
            grads = [None] * len(inputs)
        grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]
        results += grads
        vectors = [torch.randn(x.shape, generator=generator, dtype=x.dtype) for x in inputs]
        level = [sum((g * v).sum() for g, v in zip(grads, vectors))]
    return results


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_first_to_third_derivatives_match_native_torch(ops_dir: Path, name: str) -> None:
    module = load_module(ops_dir / f"{name}.py")
    points = _domain_points(ops_dir, name)
    names = list(points)  # the op's inputs, in call order
    inputs = [torch.tensor(points[n], dtype=torch.float64, requires_grad=True) for n in names]
    ours = _third_order(getattr(module, name), inputs)
    native = _third_order(NATIVE[name], inputs)
    for a, b in zip(ours, native):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_seed_example_sin(ops_dir: Path) -> None:
    """The seed tutorial's checks on the generated sin."""
    sin = load_module(ops_dir / "sin.py").sin
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(sin(x), x, create_graph=True)
    (g2,) = torch.autograd.grad(g1, x)
    x_ref = x.detach().clone().requires_grad_()
    (r1,) = torch.autograd.grad(torch.sin(x_ref), x_ref, create_graph=True)
    (r2,) = torch.autograd.grad(r1, x_ref)
    assert torch.allclose(g1, r1) and torch.allclose(g2, r2)
    assert math.isclose(g2.item(), -math.sin(0.5), rel_tol=1e-14)
    assert torch.autograd.gradcheck(sin, (x,))
    assert torch.autograd.gradgradcheck(sin, (x,))


def test_saves_only_inputs_for_backward(ops_dir: Path) -> None:
    gelu = load_module(ops_dir / "gelu_tanh.py").gelu_tanh
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        gelu(x)
    assert sum(saved) == x.numel() * x.element_size()


# Generated tests run in the default test command: the features the catalogue in
# generated/ (whose tests always run) lacks: two and three inputs with
# broadcasting and a domain, parameters with and without defaults, an unused
# input, a constant, a constant second derivative, min/max, a special function.
GENERATED_TESTS_SUBSET = ["wave", "norm3", "scaled", "unused_input", "constant_of_two", "relu", "clipped", "lgamma"]
REST_OF_CORPUS = [name for name, _, _ in CORPUS if name not in GENERATED_TESTS_SUBSET]


def test_subset_names_are_in_the_corpus() -> None:
    assert set(GENERATED_TESTS_SUBSET) <= {name for name, _, _ in CORPUS}


@pytest.mark.parametrize(
    "names", chunks(GENERATED_TESTS_SUBSET, 2, "subset") + chunks(REST_OF_CORPUS, 4, "rest", pytest.mark.exhaustive)
)
def test_generated_tests_pass(ops_dir: Path, names: list[str]) -> None:
    result = run_pytest(*(str(ops_dir / f"test_{name}.py") for name in names))
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in summary and "failed" not in summary
    print(f"generated tests of {', '.join(names)}: {summary}")


def test_generated_tests_run_inside_a_package_and_from_anywhere(tmp_path: Path) -> None:
    """`pytest ops/` with ops a package, run from its parent and from elsewhere,
    and the op importable as `from ops.sin import sin`."""
    ops = tmp_path / "project" / "ops"
    assert emit(ops, "sin(x)") == 0
    (ops / "__init__.py").write_text("")
    # Where the files are found is the point here, not the checks (those run above).
    assert run_pytest("ops", "-k", "derivatives", cwd=tmp_path / "project").returncode == 0
    assert run_pytest(str(ops), "-k", "derivatives", cwd=tmp_path).returncode == 0
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import torch; from ops.sin import sin; "
         "x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True); print(sin(x).item())"],
        cwd=tmp_path / "project", capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == pytest.approx(math.sin(0.5), rel=1e-15)


def test_where_does_not_leak_nan_gradients(ops_dir: Path) -> None:
    """where(x > 0, sqrt(x), 0.5*x) at x < 0: the sqrt branch is not taken, and
    its NaN derivatives must not reach any derivative order, in any mode."""
    op = load_module(ops_dir / "sqrt_or_linear.py").sqrt_or_linear
    x = torch.tensor([-1.0, -0.5, 0.25, 4.0], dtype=torch.float64)
    for mix in ([torch.func.jacrev] * 3, [torch.func.jacfwd] * 3, [torch.func.jacfwd, torch.func.jacrev, torch.func.jacrev]):
        function = op
        for transform in mix:
            function = transform(function)
        third = torch.einsum("iiii->i", function(x))
        assert torch.isfinite(third).all(), mix
        expected = torch.where(x > 0, 0.375 * x.abs() ** -2.5, 0.0)
        torch.testing.assert_close(third, expected)
