"""A generated test that still passes when a formula is wrong is a defect: scale
one formula of one Function by 1.001 and the generated test must fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adgen.derive import camel_case
from tests.helpers import emit, run_pytest

OPS = [
    ("sin", "sin(x)", ()),
    ("wave", "x*exp(-alpha*x**2)*cos(y)", ("--param", "alpha=0.5")),
]

# (what, class suffix, method, how): how is "return" to scale what the method
# returns (its first result), or the name of a result variable to scale.
MUTATIONS = [
    ("value", "", "forward", "return"),
    ("first derivative", "Backward", "forward", "return"),
    ("second derivative by x", "Backward", "backward", "d_x"),
    ("second derivative by grad", "Backward", "backward", "d_grad"),
    ("forward-mode derivative", "Jvp", "forward", "return"),
    ("reverse over forward", "Jvp", "backward", "d_x"),
    ("forward over reverse", "BackwardJvp", "forward", "return"),
    ("forward over forward", "JvpJvp", "forward", "return"),
    ("third order, reverse over forward over forward", "JvpJvp", "backward", "d_x"),
    ("third order, forward over forward over forward", "JvpJvp", "jvp", "return"),
    ("third order, forward over forward over reverse", "BackwardJvp", "jvp", "return"),
]


def mutate(source: str, class_name: str, method: str, how: str) -> str:
    class_start = source.index(f"class {class_name}(")
    method_start = source.index(f"    def {method}(", class_start)
    match = re.compile(r"^        return\b", re.M).search(source, method_start)
    assert match is not None
    if how == "return":
        return source[: match.end()] + " 1.001 *" + source[match.end() :]
    assert f"        {how} = " in source[method_start : match.start()], (class_name, method, how)
    line = f"        {how} = {how} * 1.001\n"
    return source[: match.start()] + line + source[match.start() :]


@pytest.mark.parametrize("name, expression, options", OPS, ids=[o[0] for o in OPS])
def test_generated_test_fails_on_a_perturbed_formula(
    tmp_path: Path, name: str, expression: str, options: tuple[str, ...]
) -> None:
    assert emit(tmp_path, expression, "--name", name, *options) == 0
    module = tmp_path / f"{name}.py"
    original = module.read_text()
    assert run_pytest(str(tmp_path), "-x").returncode == 0, "the unmodified op must pass"
    survivors = []
    for what, suffix, method, how in MUTATIONS:
        module.write_text(mutate(original, camel_case(name) + suffix, method, how))
        result = run_pytest(str(tmp_path), "-x", "-k", "not compile")
        if result.returncode != 1:
            survivors.append(what)
    module.write_text(original)
    assert survivors == [], f"generated test passes with these formulas scaled by 1.001: {survivors}"
