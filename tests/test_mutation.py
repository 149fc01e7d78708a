"""A generated test that still passes when a formula is wrong is a defect: scale
one first- or second-derivative formula by 1.001 and the generated test must fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import emit, run_pytest

OPS = [
    ("sin", "sin(x)", ()),
    ("wave", "x*exp(-alpha*x**2)*cos(y)", ("--param", "alpha=0.5")),
]


def scale_before_return(source: str, class_name: str, method: str, variable: str) -> str:
    """Insert `variable = variable * 1.001` just before `method`'s return in `class_name`."""
    class_start = source.index(f"class {class_name}(")
    method_start = source.index(f"    def {method}(", class_start)
    return_match = re.compile(r"^        return\b", re.M).search(source, method_start)
    assert return_match is not None
    line = f"        {variable} = {variable} * 1.001\n"
    return source[: return_match.start()] + line + source[return_match.start() :]


MUTATIONS = [
    # (what, class suffix, method, variable)
    ("first derivative", "Backward", "forward", "grad_x"),
    ("second derivative by x", "Backward", "backward", "d_x"),
    ("second derivative by grad", "Backward", "backward", "d_grad"),
]


@pytest.mark.parametrize("name, expression, options", OPS, ids=[o[0] for o in OPS])
def test_generated_test_fails_on_a_perturbed_formula(tmp_path: Path, name: str, expression: str, options: tuple[str, ...]) -> None:
    assert emit(tmp_path, expression, "--name", name, *options) == 0
    module = tmp_path / f"{name}.py"
    original = module.read_text()
    class_name = name.capitalize()
    assert run_pytest(str(tmp_path)).returncode == 0, "the unmodified op must pass"
    for what, suffix, method, variable in MUTATIONS:
        module.write_text(scale_before_return(original, class_name + suffix, method, variable))
        result = run_pytest(str(tmp_path))
        assert result.returncode == 1, f"generated test still passes with the {what} scaled by 1.001"
        assert "failed" in result.stdout.splitlines()[-1]
    module.write_text(original)
