"""Ops with several outputs (a top-level tuple): errors, naming, the API's
list form, values against sympy per output, and the generated tests of a
corpus of 2-4 outputs, 1-4 inputs, with params and broadcasting."""

from __future__ import annotations

import inspect
import itertools
import os
import re
from pathlib import Path

import pytest
import sympy
import torch

import adgen
from adgen.cli import main
from adgen.functions import elementary
from adgen.parse import parse_expression
from tests.helpers import emit, load_module, run_pytest

# (name, expression, options): every one passes its generated test.
MULTI_CORPUS = [
    ("m_polar", "r*cos(t), r*sin(t)", ("--outputs", "u,v")),
    ("m_complex_mul", "a*c - b*d, a*d + b*c", ()),
    ("m_rope", "x1*c - x2*s, x2*c + x1*s", ("--outputs", "y1,y2", "--inputs", "x1,x2,c,s")),
    ("m_sincos", "(sin(x), cos(x))", ()),
    ("m_three", "exp(x)*y, x*y**2, tanh(x + y)", ("--outputs", "p,q,w")),
    ("m_four", "x + y, x - y, x*y, x/(1 + y**2)", ()),
    ("m_scaled", "alpha*sigmoid(x), softplus(beta*x)/beta", ("--param", "alpha=1.5", "--param", "beta=2.0")),
    ("m_spherical", "r*sin(t)*cos(p), r*sin(t)*sin(p), r*cos(t)", ("--outputs", "x,y,z")),
    ("m_value_aux", "log(1 + exp(x)), sigmoid(x)", ("--outputs", "value,slope")),
    ("m_gauss", "exp(-alpha*(x**2 + y**2)), -2*alpha*x*exp(-alpha*(x**2 + y**2))", ("--param", "alpha",)),
    ("m_mix4", "a*b + c*d, a*tanh(d), exp(-b*c), a*b*c*d", ("--outputs", "s,t1,e,prod")),
    # Outputs that are an input itself or a constant (their grads pass through or vanish).
    ("m_passthrough", "x*y, y, 2", ("--outputs", "prod,same,two")),
    # Three outputs of three inputs: BackwardJvp.jvp unpacks 12 tangents in
    # groups that leave one name alone on the last line.
    ("m_three_by_three", "x*y*z, x + y + z, sin(x*y)", ()),
    # An input (h) that some outputs (x, y) do not depend on.
    ("m_cylindrical", "r*cos(t), r*sin(t), h*r", ("--outputs", "x,y,z")),
]
# The generated tests of these run by default; all with ADGEN_EXHAUSTIVE=1.
REPRESENTATIVE = {"m_polar", "m_three", "m_scaled", "m_passthrough", "m_three_by_three", "m_cylindrical"}


@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("multi")
    for name, expression, options in MULTI_CORPUS:
        assert emit(out, expression, "--name", name, *options) == 0, name
    return out


def test_corpus_shape() -> None:
    counts = [len(parse_expression(e).outputs) for _, e, _ in MULTI_CORPUS]
    assert len(MULTI_CORPUS) >= 10 and min(counts) == 2 and max(counts) == 4


@pytest.mark.parametrize("name, expression, options", MULTI_CORPUS, ids=[c[0] for c in MULTI_CORPUS])
def test_values_and_gradients_match_sympy(multi_dir: Path, name: str, expression: str, options: tuple[str, ...]) -> None:
    function = getattr(load_module(multi_dir / f"{name}.py"), name)
    parsed = parse_expression(expression)
    params = {}
    for flag, value in zip(options, options[1:]):
        if flag == "--param":
            key, _, default = value.partition("=")
            params[key] = float(default) if default else 0.75
    inputs = [n for n in parsed.names if n not in params]
    if "--inputs" in options:
        inputs = options[options.index("--inputs") + 1].split(",")
    domains = load_module(multi_dir / f"test_{name}.py").DOMAINS
    symbols = {s.name: s for s in parsed.expr.free_symbols}
    values = {n: lo + (hi - lo) * 0.37 for n, (lo, hi) in domains.items()}
    tensors = [torch.tensor(values[n], dtype=torch.float64, requires_grad=True) for n in inputs]
    outputs = function(*tensors, **params)
    assert isinstance(outputs, tuple) and len(outputs) == len(parsed.outputs)
    subs = {symbols[n]: v for n, v in {**values, **params}.items() if n in symbols}
    for output, formula in zip(outputs, parsed.outputs):
        formula = elementary(formula)
        assert float(output) == pytest.approx(float(formula.subs(subs).evalf(30)), rel=1e-12, abs=1e-12)
        found = torch.autograd.grad(output, tensors, allow_unused=True, retain_graph=True)
        for n, g in zip(inputs, found):
            want = float(sympy.diff(formula, symbols[n]).subs(subs).evalf(30))
            assert (0.0 if g is None else float(g)) == pytest.approx(want, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=() if n in REPRESENTATIVE or os.environ.get("ADGEN_EXHAUSTIVE") else pytest.mark.skip("ADGEN_EXHAUSTIVE=1 runs it"),
        )
        for n, _, _ in MULTI_CORPUS
    ],
)
def test_generated_tests_pass(multi_dir: Path, name: str) -> None:
    result = run_pytest("-x", "-p", "no:warnings", str(multi_dir / f"test_{name}.py"))
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("name", sorted(REPRESENTATIVE))
def test_generated_tests_pass_under_save_intermediates(tmp_path: Path, name: str) -> None:
    """Forward also saves each output's derivatives; a first-order backward sums
    grad times them over the outputs whose grad is present (the generated tests
    check it, with one output used and in float16 and bfloat16)."""
    _, expression, options = next(case for case in MULTI_CORPUS if case[0] == name)
    assert emit(tmp_path, expression, "--name", name, *options, "--save", "intermediates") == 0
    result = run_pytest("-x", "-p", "no:warnings", str(tmp_path / f"test_{name}.py"))
    assert result.returncode == 0, result.stdout[-3000:]


def test_backward_with_one_output_used_gets_none(multi_dir: Path) -> None:
    """The op's backward receives None (not zeros) for an unused output's grad."""
    module = load_module(multi_dir / "m_polar.py")
    seen = []
    original = module.MPolarBackward.forward

    def spy(grad_u, grad_v, r, t, need):
        seen.append((grad_u is None, grad_v is None))
        return original(grad_u, grad_v, r, t, need)

    module.MPolarBackward.forward = staticmethod(spy)
    r = torch.rand(4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(4, dtype=torch.float64, requires_grad=True)
    u, v = module.m_polar(r, t)
    (gr,) = torch.autograd.grad(v.sum(), r)
    assert seen == [(True, False)]
    torch.testing.assert_close(gr, torch.sin(t.detach()))


def test_outputs_of_degree_two_take_autograds_zeros_for_an_unused_output(multi_dir: Path) -> None:
    """An op whose outputs are polynomials of degree at most 2 in its inputs
    (the complex product) takes autograd's zeros for an unused output's grad:
    the module handles no None grad and its kernels sum the outputs' terms
    directly. Any other op keeps that grad None and skips its terms, since zero
    times an unused output's inf derivative would make the gradient NaN."""
    path = multi_dir / "m_complex_mul.py"
    source = path.read_text()
    for none_handling in ("_NoneGrads", "set_materialize_grads", "_present(", "_add(", "_zeros_for_none("):
        assert none_handling not in source, none_handling
    module = load_module(path)
    seen = []
    original = module.MComplexMulBackward.forward

    def spy(*args):
        seen.append(tuple(grad is None for grad in args[:2]))
        return original(*args)

    module.MComplexMulBackward.forward = staticmethod(spy)
    a, c, b, d = (torch.rand(3, dtype=torch.float64, requires_grad=True) for _ in range(4))
    _, imaginary = module.m_complex_mul(a, c, b, d)
    got = torch.autograd.grad(imaginary.sum(), (a, c, b, d))
    assert seen == [(False, False)]
    for gradient, expected in zip(got, (d, b, c, a)):  # of a*d + b*c
        torch.testing.assert_close(gradient, expected.detach())
    op = adgen.load("sqrt(x), x*y", name="root_prod", outputs=["root", "prod"])
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    y = torch.full((2,), 3.0, dtype=torch.float64)
    _, product = op(x, y)
    (grad_x,) = torch.autograd.grad(product.sum(), x)  # sqrt's derivative is inf at 0
    torch.testing.assert_close(grad_x, y)


@pytest.mark.parametrize("expression", ["x, y", "(y, x)", "x, 1", "sin(x), y"])
def test_bare_inputs_and_constants_as_outputs_emit_without_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expression: str
) -> None:
    assert main(["emit", "--name", "op", "-o", str(tmp_path), "--", expression]) == 0
    assert capsys.readouterr().err == ""  # no domain warning: every output is finite anywhere
    point = {"x": 0.3, "y": -0.7}
    op = load_module(tmp_path / "op.py").op
    names = inspect.signature(op).parameters  # the inputs in order of appearance
    values = op(*(torch.tensor([point[n]], dtype=torch.float64) for n in names))
    expected = [float(sympy.sympify(o).subs(point)) for o in expression.strip("()").split(",")]
    assert [float(v) for v in values] == pytest.approx(expected)


def test_api_takes_a_list_of_strings() -> None:
    polar = adgen.load(["r*cos(t)", "r*sin(t)"], name="lpolar", outputs=["u", "v"])
    r, t = torch.tensor([2.0]), torch.tensor([0.5])
    u, v = polar(r, t)
    torch.testing.assert_close(u, 2.0 * torch.cos(t))
    torch.testing.assert_close(v, 2.0 * torch.sin(t))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["()"], "empty tuple"),
        (["x, (y, x)"], "nested tuples"),
        ([", ".join(f"x*{i}" for i in range(1, 18))], "limit is 16"),
        (["x, y", "--outputs", "u"], "names 1 output"),
        (["x, y", "--outputs", "u,u"], "twice"),
        (["x, y", "--outputs", "u,x"], "name of an input"),
        (["x, y", "--outputs", "u,2v"], "snake_case"),
        (["x", "--outputs", "u"], "tuple expression"),
        (["x, y", "--outputs", "u,need"], "used by the generated code"),
    ],
)
def test_errors_are_one_line_exit_2_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code = main(["emit", "--name", "bad", "-o", str(tmp_path), *argv[1:], "--", argv[0]])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not any(tmp_path.iterdir())


class _DropsGrads(torch.autograd.Function):
    """a + b whose backward gives both arguments no grad (None): an op whose
    outputs feed only this gets None for every output's grad."""

    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    @staticmethod
    def setup_context(ctx: object, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[None, None]:
        return None, None


def _all_none_paths(function, inputs: list[torch.Tensor]) -> list[list[torch.Tensor | None]]:
    """Gradients by `inputs` of (the outputs, or their derivatives, through
    _DropsGrads) + the sum of the inputs, along the three paths on which the
    op's Functions receive None for every output's grad: its backward, the
    backward of its Backward (double backward) and the backward of its Jvp
    (reverse over forward)."""
    import torch.autograd.forward_ad as fwAD

    def dropped(tensors):
        total = sum(tensors[1:], tensors[0] * 0.0)
        return _DropsGrads.apply(total, tensors[0]).sum() + sum(x.sum() for x in inputs)

    first = function(*inputs)
    paths = [torch.autograd.grad(dropped(first), inputs, allow_unused=True)]
    outputs = function(*inputs)
    grads = torch.autograd.grad(sum(o.sum() for o in outputs), inputs, create_graph=True)
    paths.append(torch.autograd.grad(dropped(list(grads)), inputs, allow_unused=True))
    with fwAD.dual_level():
        duals = [fwAD.make_dual(x, torch.ones_like(x)) for x in inputs]
        tangents = [fwAD.unpack_dual(o).tangent for o in function(*duals)]
    paths.append(torch.autograd.grad(dropped(tangents), inputs, allow_unused=True))
    return [list(p) for p in paths]


@pytest.mark.parametrize(
    "name, shapes",
    [("m_polar", [(3,), (3,)]), ("m_spherical", [(2, 3), (3,), (1, 3)])],
    ids=["polar", "spherical-broadcasting"],
)
def test_every_grad_none_at_once(multi_dir: Path, name: str, shapes: list[tuple[int, ...]]) -> None:
    """Every output's grad None at once (the outputs, or their derivatives, feed
    only a Function that drops its grads): the Functions of the family run with
    all-None grads, crash nowhere and return None or gradients of the inputs'
    shapes; the only gradient left is the plain sum's (ones)."""
    module = load_module(multi_dir / f"{name}.py")
    classes = {c: getattr(module, c) for c in dir(module) if c.endswith(("Backward", "Jvp", "BackwardJvp"))}
    calls: list[str] = []

    def spy(original, label):
        def wrapped(*args):
            if any(a is None for a in args):
                calls.append(label)
            return original(*args)

        return staticmethod(wrapped)

    for class_name, cls in classes.items():
        for method in ("forward", "backward"):
            setattr(cls, method, spy(vars(cls)[method], f"{class_name}.{method}"))
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(s, generator=generator, dtype=torch.float64).requires_grad_() for s in shapes]
    for path in _all_none_paths(getattr(module, name), inputs):
        for gradient, tensor in zip(path, inputs):
            assert gradient is not None and gradient.shape == tensor.shape
            torch.testing.assert_close(gradient, torch.ones_like(tensor))
    assert calls, "no Function ran with a None grad"
    # Direct calls with every grad None: nothing to add, so no gradient at all.
    count = len(inputs)
    prefix = "".join(p.title() for p in name.split("_"))
    outputs = len(getattr(module, name)(*inputs))
    every = (1 << count) - 1  # the need bits: each input needs a gradient
    assert module.__dict__[f"{prefix}Backward"].apply(*[None] * outputs, *inputs, every) == (None,) * count
    tangents = [torch.ones_like(x) for x in inputs]
    result = module.__dict__[f"{prefix}BackwardJvp"].apply(*[None] * outputs, *inputs, *[None] * outputs, *tangents)
    assert result == (None,) * count


def test_fuse_with_an_unused_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--fuse with several outputs: the kernel of a backward whose grads are
    partly None (so some of its gradients are None too) runs through the
    compiled path (torch.compile stubbed: what is adgen's is the wrapper around
    it), with no fallback warning, and gives autograd's gradients."""
    import warnings

    assert emit(tmp_path, "a*b, exp(c)", "--name", "f_pair", "--fuse") == 0
    compiled: list[str] = []

    def stub(function, **options):
        compiled.append(function.__name__)
        return function

    monkeypatch.setattr(torch, "compile", stub)
    fused = load_module(tmp_path / "f_pair.py")
    inputs = [torch.rand(4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    a, b, c = inputs
    reference = (a * b, torch.exp(c))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for used in [(0,), (1,), (0, 1)]:
            got = torch.autograd.grad(sum(fused.f_pair(a, b, c)[o].sum() for o in used), inputs, allow_unused=True)
            want = torch.autograd.grad(sum(reference[o].sum() for o in used), inputs, allow_unused=True, retain_graph=True)
            for g, w, x in zip(got, want, inputs):
                torch.testing.assert_close(torch.zeros_like(x) if g is None else g, torch.zeros_like(x) if w is None else w)
    assert not fused._Fused.failed
    assert compiled == ["_f_pair", "_f_pair_backward"]


@pytest.mark.exhaustive
def test_fuse_generated_test_passes(tmp_path: Path) -> None:
    """The generated test of a fused op with several outputs, torch.compile for real."""
    assert emit(tmp_path, "r*cos(t), r*sin(t)", "--name", "f_polar", "--fuse") == 0
    result = run_pytest("-x", "-W", "error::RuntimeWarning", str(tmp_path / "test_f_polar.py"))
    assert result.returncode == 0, result.stdout[-3000:]


def test_outputs_whose_terms_are_one_formula_are_written_once() -> None:
    """x and y of spherical coordinates differentiate alike (cos p for sin p):
    their terms are one loop over the two outputs' tables; z's stay apart."""
    source = adgen.render(
        "r*sin(t)*cos(p), r*sin(t)*sin(p), r*cos(t)", name="sph", outputs=["x", "y", "z"]
    ).module_source
    backward = source[source.index("class SphBackward(") : source.index("class SphJvp(")]
    assert "for grad, f in _present((grad_x, df.x), (grad_y, df.y)):" in backward
    assert "if grad_z is not None:" in backward
    assert "if grad_x is not None:" not in backward and "if grad_y is not None:" not in backward
    assert backward.count("for grad, f in _present((") == 2  # forward and backward
    # Outputs whose terms differ keep a block each (exp(x)*y, x*y**2: the
    # second-order entries differ in sparsity).
    source = adgen.render("exp(x)*y, x*y**2", name="two", outputs=["p", "q"]).module_source
    backward = source[source.index("def backward(ctx, gg_x") :]
    backward = backward[: backward.index("def jvp(")]
    assert "if grad_p is not None:" in backward and "if grad_q is not None:" in backward


def test_results_one_formula_per_output_are_written_once() -> None:
    """The jvps of polar (r cos t, r sin t) give x's and y's results by one
    formula over each output's own table: a loop over (df.x, df.y), not the
    formula twice. Where a third output differs (spherical z: no p, another
    sparsity), x and y still share the loop and z's formula is written out
    after it; so also where the looped results lack an input (cylindrical x,
    y). The values: the generated tests' jacfwd of jacfwd of jacfwd (run in
    test_generated_tests_pass)."""
    source = adgen.render("r*cos(t), r*sin(t)", name="pol", outputs=["x", "y"]).module_source
    jvp_jvp = source[source.index("class PolJvpJvp(") : source.index("class _PolForCompile(")]
    loop = "for f in (df.x, df.y):  # one formula, over each output's table"
    assert jvp_jvp.count(loop) == 2  # its forward and its jvp
    assert "df.x." not in jvp_jvp.split("def jvp(")[1] and "df.y." not in jvp_jvp.split("def jvp(")[1]
    assert "return tuple(_round(result, dtype) for result in results)" in jvp_jvp
    source = adgen.render(
        "r*sin(t)*cos(p), r*sin(t)*sin(p), r*cos(t)", name="sph", outputs=["x", "y", "z"]
    ).module_source
    jvp_jvp = source[source.index("class SphJvpJvp(") : source.index("class _SphForCompile(")]
    assert jvp_jvp.count(loop) == 2  # its forward and its jvp
    assert "x_t_u, y_t_u = results" in jvp_jvp and "x_t_u_v, y_t_u_v = results" in jvp_jvp
    assert "df.x." not in jvp_jvp and "df.y." not in jvp_jvp and "df.z.tt * " in jvp_jvp
    # Cylindrical coordinates: x and y lack h, so each result is made a tensor of
    # the full shape; that is part of the one formula, inside the loop.
    source = adgen.render("r*cos(t), r*sin(t), h*r", name="cyl", outputs=["x", "y", "z"]).module_source
    jvp_jvp = source[source.index("class CylJvpJvp(") : source.index("class _CylForCompile(")]
    assert jvp_jvp.count(loop) == 2 and "df.x." not in jvp_jvp and "df.y." not in jvp_jvp
    assert re.search(r"results\.append\(\s*_broadcast_new\(", jvp_jvp)


def test_functions_of_several_outputs_share_one_setup_context() -> None:
    """Functions whose outputs' grads may be None derive from _NoneGrads (grads
    not materialised): one setup_context written once, not one per Function.
    The compile twin has its op's: inherited, or the op's own where it saves a
    stand-in (polar's r)."""
    for expression, stand_in in (("exp(x)*sin(y), exp(x)*cos(y)", False), ("x*cos(y), x*sin(y)", True)):
        source = adgen.render(expression, name="pol", outputs=["u", "v"]).module_source
        classes = {
            line.split("(")[0].removeprefix("class "): line.split("(")[1].rstrip("):")
            for line in source.splitlines()
            if line.startswith("class ")
        }
        assert classes["PolJvp"] == classes["PolJvpJvp"] == "_NoneGrads"
        assert classes["PolBackward"] == classes["PolBackwardJvp"] == "_Function"
        assert classes["_PolForCompile"] == classes["Pol"] == ("_Function" if stand_in else "_NoneGrads")
        assert source.count("ctx.set_materialize_grads(False)") == 1 + stand_in
        assert ("setup_context = staticmethod(Pol.setup_context)" in source) == stand_in


def test_a_loop_over_outputs_never_shadows_a_name() -> None:
    """Output u's grad tangent by the `_u` direction is grad_u_u: the loop's
    generic names (grad, grad_u, ...) would shadow output u's grad itself."""
    op = adgen.load("r*cos(t), r*sin(t)", name="pol", outputs=["u", "v"])
    r, t = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1.3, 0.4))
    u, v = op(r, t)
    (grad_r,) = torch.autograd.grad(u + 2 * v, r, create_graph=True)
    (second,) = torch.autograd.grad(grad_r, t, create_graph=True)
    (third,) = torch.autograd.grad(second, t)
    # d/dr (u + 2v) = cos t + 2 sin t; d²/dt² of that = -cos t - 2 sin t
    torch.testing.assert_close(third, -torch.cos(t) - 2 * torch.sin(t))
    source = adgen.render("r*cos(t), r*sin(t)", name="pol", outputs=["u", "v"]).module_source
    for line in source.splitlines():
        if line.strip().startswith("for ") and " f in _present(" in line:
            loop_names = line.strip().removeprefix("for ").split(" in ")[0].split(", ")
            assert "grad_u" not in loop_names and "grad_v" not in loop_names


def _output_loops(source: str) -> list[str]:
    """The bodies of the loops over several outputs' grads (`for grad, f in ...`)."""
    lines = source.splitlines()
    bodies = []
    for start, line in enumerate(lines):
        if line.lstrip().startswith("for grad") and " f in _present(" in line:
            indent = len(line) - len(line.lstrip())
            while not lines[start].endswith(":"):  # a header black wrapped
                start += 1
            end = start + 1
            while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
                end += 1
            bodies.append("\n".join(lines[start + 1 : end]))
    return bodies


def test_outputs_like_the_first_contract_through_the_helpers() -> None:
    """polar's x and y have their second and third derivatives at the same
    places: the kernels that add each output's terms take ∂²f·a and ∂³f·a·b
    from the helpers over that output's table (`_hessian_times(f, ...)`), as
    the kernels of one output do, not as sums of its entries written out.
    Spherical z (no ∂²z/∂p², where x and y have one) keeps its terms written
    out; its x and y still share the helpers. The values: the generated tests."""
    source = adgen.render("r*cos(t), r*sin(t)", name="pol", outputs=["x", "y"]).module_source
    assert "\ndef _hessian_times(df, a_r, a_t, needed=(True, True)):" in source
    assert "\ndef _third_times(df, a_r, a_t, b_r, b_t, needed=(True, True)):" in source
    loops = _output_loops(source)
    assert len(loops) == 7  # each kernel whose terms add up per output
    higher = re.compile(r"\bf\.(rt|tt|rtt|ttt)\b")  # the entries of ∂²f and ∂³f
    assert not [body for body in loops if higher.search(body)]
    # Backward's forward is first order; the others contract ∂²f, three of them ∂³f.
    assert sum("_hessian_times(" in body for body in loops) == 6
    assert sum("_third_times(" in body for body in loops) == 3
    source = adgen.render(
        "r*sin(t)*cos(p), r*sin(t)*sin(p), r*cos(t)", name="sph", outputs=["x", "y", "z"]
    ).module_source
    assert all("_hessian_times(" in body for body in _output_loops(source)[1:])
    blocks = source.split("if grad_z is not None:")[1:]
    assert blocks and all("_hessian_times(" not in block.split("\n\n")[0] for block in blocks)
    assert re.search(r"df\.z\.tt\b", source)


def test_the_helpers_vectors_are_named_apart_from_the_table_entries() -> None:
    """Output a's first derivatives are a_r and a_t, the names the helpers'
    first vector would take: it takes others (a__r), or the helper would read
    the table in place of its argument."""
    op = adgen.load("r*cos(t), r*sin(t)", name="ab", outputs=["a", "b"])
    source = adgen.render("r*cos(t), r*sin(t)", name="ab", outputs=["a", "b"]).module_source
    assert "\ndef _hessian_times(df, a__r, a__t, needed=(True, True)):" in source

    def composite(r: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return r * torch.cos(t), r * torch.sin(t)

    def hessian(function) -> torch.Tensor:
        def weighted(r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            a, b = function(r, t)
            return a + 2 * b

        point = (torch.tensor(1.3, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64))
        return torch.stack([torch.stack(row) for row in torch.autograd.functional.hessian(weighted, point)])

    torch.testing.assert_close(hessian(op), hessian(composite))


def test_second_derivatives_where_the_outputs_used_do_not_depend_on_an_input() -> None:
    """Cylindrical coordinates with only x = r cos t used: no output whose grad
    is present depends on h, so the backward has no term for h. It returns
    zeros there (not None), and the double backward, which reads the grad of
    that gradient, equals autograd's through the plain formula."""
    op = adgen.load("r*cos(t), r*sin(t), h*r", name="cyl", outputs=["x", "y", "z"])
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(3, 4, dtype=torch.float64, generator=generator) + 0.5
    direction = torch.randn(3, 4, dtype=torch.float64, generator=generator)

    def hessian_times_direction(x_of):
        inputs = [v.clone().requires_grad_() for v in values]
        grads = torch.autograd.grad(x_of(*inputs).sum(), inputs, create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(v) if g is None else g for g, v in zip(grads, inputs)]
        dotted = sum((g * v).sum() for g, v in zip(grads, direction))
        found = torch.autograd.grad(dotted, inputs, allow_unused=True)
        return [torch.zeros_like(v) if g is None else g for g, v in zip(found, inputs)]

    got = hessian_times_direction(lambda r, t, h: op(r, t, h)[0])
    expected = hessian_times_direction(lambda r, t, h: r * torch.cos(t) + 0 * h)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize(
    "expression, outputs, reference",
    [
        ("r*cos(t), r*sin(t), h*r", ["x", "y", "z"], lambda r, t, h: (r * torch.cos(t), r * torch.sin(t), h * r)),
        ("sqrt(x), x*y", ["root", "prod"], lambda x, y: (torch.sqrt(x), x * y)),
    ],
    ids=["cylindrical", "sqrt-product"],
)
def test_every_mix_of_three_modes_with_one_output_used(expression, outputs, reference) -> None:
    """Outputs that do not depend on every input (x = r cos t has no h), one
    used at a time: the third directional derivative, by each of the eight
    nestings of forward (jvp) and reverse (grad) mode, equals the same nesting
    through the plain formulas. A Function whose results sum the present
    outputs' terms returns zeros, not None, for an input none of them reads
    (forward mode writes a tangent to it; the next backward reads its grad)."""
    op = adgen.load(expression, name="partial", outputs=outputs)
    arity = len(inspect.signature(reference).parameters)
    generator = torch.Generator().manual_seed(2)
    point = tuple(torch.rand(3, dtype=torch.float64, generator=generator) + 0.5 for _ in range(arity))
    direction = tuple(torch.randn(3, dtype=torch.float64, generator=generator) for _ in range(arity))

    def nested(function, output, modes):
        level = lambda *a: function(*a)[output].sum()  # noqa: E731
        for mode in modes:
            if mode == "forward":
                level = (lambda h: lambda *a: torch.func.jvp(h, a, direction)[1])(level)
            else:
                level = (
                    lambda h: lambda *a: sum(
                        (g * v).sum() for g, v in zip(torch.func.grad(h, argnums=tuple(range(arity)))(*a), direction)
                    )
                )(level)
        return level(*point)

    for output in range(len(outputs)):
        for modes in itertools.product(("forward", "reverse"), repeat=3):
            got = nested(op, output, modes)
            torch.testing.assert_close(got, nested(reference, output, modes), msg=f"{outputs[output]} {modes}")
