"""The generated test's DIRECTIONAL_ANCHORS: the op's value and derivatives to
the third along a direction, against mpmath, near 0 (where the op may switch to
a Taylor series, which the other tests' points rarely reach) and with the
parameters at other values than the ones every other generated test passes.
A series whose coefficients are right at the default parameters only (a bug
adgen had) passes every other generated test, and must fail this one."""

from __future__ import annotations

import re
from pathlib import Path

import sympy

from adgen.anchors import direction, directional_anchors, other_parameters
from adgen.domain import Domain
from adgen.derive import Param, build_model
from adgen.parse import parse_expression
from tests.helpers import emit, run_pytest


def _run(test_file: Path, *options: str) -> tuple[int, str]:
    result = run_pytest(str(test_file), "-p", "no:warnings", *options)
    return result.returncode, result.stdout.strip().splitlines()[-1]


def test_a_series_right_only_at_the_default_parameter_fails(tmp_path: Path) -> None:
    # Across 0 (the interval adgen infers stops short of x = 0, where the text is 0/0).
    options = ("--name", "damped", "--param", "a=1.5", "--domain", "x=-2:2")
    assert emit(tmp_path, "tanh(a*x)/x", *options) == 0
    module = tmp_path / "damped.py"
    source = module.read_text()
    assert "torch.abs(x) <" in source  # a series regime near 0
    # The series' coefficients' a**3, a number computed at the default a = 1.5:
    mutated = re.sub(r"= a\*\*3$", "= 1.5**3", source, count=1, flags=re.M)
    assert mutated != source
    test_file = tmp_path / "test_damped.py"
    assert _run(test_file)[0] == 0
    module.write_text(mutated)
    code, summary = _run(test_file)
    assert code == 1 and "failed" in summary, summary
    others, summary = _run(test_file, "-k", "not direction")
    assert others == 0, summary  # at a = 1.5 the op is right: no other test sees it


def test_a_series_off_near_zero_fails_where_the_formula_as_written_cancels(tmp_path: Path) -> None:
    """f_xx of tanh(a*x)/x 0.1% off below 2**-10, where none of the other
    tests' points falls, and where the formula as written cancels (its third
    derivative at 1e-8 by 1e23 eps): the error scale is the op's own formulas'
    rounding, so the near-zero anchors see it, forward and reverse."""
    options = ("--name", "damped", "--param", "a=1.5", "--domain", "x=-2:2")
    assert emit(tmp_path, "tanh(a*x)/x", *options) == 0
    module = tmp_path / "damped.py"
    source = module.read_text()
    ask = "    if order == 2:\n        return _Partials(f_x, f_xx)\n"
    off = "    f_xx = torch.where(torch.abs(x) < 2**-10, 1.001 * f_xx, f_xx)\n"
    assert source.count(ask) == 1
    module.write_text(source.replace(ask, off + ask))
    code, summary = _run(tmp_path / "test_damped.py")
    assert code == 1 and "2 failed" in summary, summary


def _model(text: str, params: dict[str, float]):
    return build_model(
        parse_expression(text), "op", params=tuple(Param(n, v) for n, v in params.items())
    )


def test_anchors_hold_the_derivatives_along_the_direction() -> None:
    """The values are h(t) = f(p + t*v) and its t-derivatives at 0, here
    against sympy's own derivatives of f at 40 digits; near-zero points and the
    moved parameters are where the docstring says."""
    x, y, a = sympy.symbols("x y a", real=True)
    model = _model("exp(-a*x**2)*sin(y)", {"a": 0.5})
    domains = (Domain("x", -2.0, 2.0), Domain("y", 0.5, 3.0))
    found = directional_anchors(model, domains, {"a": 0.5})
    moved = other_parameters({"a": 0.5})
    assert moved == {"a": 0.75}
    assert {anchor.params for anchor in found} == {(("a", 0.5),), (("a", 0.75),)}
    t = sympy.Symbol("t", real=True)
    for anchor in found:
        px, py = anchor.point
        assert abs(px) < 2.0**-6 and 0.5 <= py <= 3.0  # x toward 0, y's interval lacks 0
        vx, vy = direction(2)
        h = sympy.exp(-a * (px + t * vx) ** 2) * sympy.sin(py + t * vy)
        h = h.subs(a, dict(anchor.params)["a"])
        for order, value in enumerate(anchor.values):
            exact = sympy.diff(h, t, order).subs(t, 0).evalf(40)
            assert abs(value - exact) <= 1e-15 * (1 + abs(exact)), (anchor, order)


def test_no_anchors_where_nothing_is_near_zero_and_no_parameters() -> None:
    model = _model("log(x)", {})
    assert directional_anchors(model, (Domain("x", 0.5, 3.0),), {}) == ()


def test_many_inputs_and_wide_intervals() -> None:
    """A direction for any number of inputs; near-zero points near 0 whatever
    the width of the interval (inside every series regime, 2**-20)."""
    v = direction(9)
    assert len(set(map(abs, v))) == 9 and all((c * 2**12).is_integer() for c in v)
    text = "+".join(f"sin(x{i}*x{i + 1})" for i in range(8))
    model = _model(text, {})
    domains = tuple(Domain(name, -100.0, 100.0) for name in model.inputs)
    found = directional_anchors(model, domains, {})
    assert len(found) == 2
    assert all(abs(x) < 2.0**-7 for x in found[0].point)
    assert all(abs(x) < 2.0**-20 for x in found[1].point)


def test_a_derivative_that_cancels_to_zero_keeps_its_anchor() -> None:
    """(sin² + cos² - 1) cancels to 0 at every digit count: that number is 0,
    and the point keeps its other numbers."""
    model = _model("y + exp(x)*(sin(x)**2 + cos(x)**2 - 1)", {})
    found = directional_anchors(model, (Domain("x", -1.0, 1.0), Domain("y", -1.0, 1.0)), {})
    assert found and all(anchor.values[2:] == (0.0, 0.0) for anchor in found)


def test_each_scale_is_the_rounding_of_the_formula_the_op_runs() -> None:
    """log(cosh(x)) near 0: the op's forward is a series there (selection
    chose it), so the value's scale is a few eps of the value itself, where
    the stable formula x + softplus(-2x) - log(2) would allow eps of log(2)."""
    from adgen.select import FormSelector

    model = build_model(
        parse_expression("log(cosh(x))"), "op", chooser=lambda inputs: FormSelector(inputs, {}, {})
    )
    found = directional_anchors(model, (Domain("x", -2.0, 2.0),), {})
    assert found
    for anchor in found:
        assert anchor.scales[0] < 16 * abs(anchor.values[0]), anchor
