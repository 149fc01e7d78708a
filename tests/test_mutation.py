"""A generated test that still passes when a formula is wrong is a defect:
scale one output of one method (forward, backward, jvp) of one Function of the
emitted family, one entry of its partial-derivative tables, or one result of
its ∂²f·a and ∂³f·a·b helpers, by 1.001, and the generated test must fail.

tests/mutation_driver.py runs all mutants of one op in one process: a
recording run finds every output of every method the tests reach, then each
is scaled in turn. The exhaustive part (every output, ops with where(), the
stable vocabulary, a parameter, under --save intermediates, several outputs)
takes minutes and is marked `exhaustive`; the unmarked test mutates the first
output of every method of every Function of one op that has all of these at
once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, emit

# (name, expression, emit options)
WHERE_VOCABULARY_PARAM = (
    "mixed",
    "where(x > 0, x, alpha*expm1(x))*softplus(y)",
    ("--param", "alpha=1.0"),
)
OPS = [
    ("sin", "sin(x)", ()),
    ("wave", "x*exp(-alpha*x**2)*cos(y)", ("--param", "alpha=0.5")),
    WHERE_VOCABULARY_PARAM,
    ("hypot_xlogy", "hypot(x, y) + xlogy(y, z)", ("--domain", "y=0.5:2")),
    # ∂²f numbers and a parameter: a Hessian helper that takes no table.
    ("quadratic", "x*y + y*z + k*z*x", ("--param", "k=0.5")),
]
SAVES = ["inputs", "intermediates"]


def mutate_all(folder: Path, name: str, *driver_options: str) -> dict[str, object]:
    """Run the driver on the op `name` emitted in `folder`; its JSON report."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "mutation_driver.py"), str(folder), name, *driver_options],
        capture_output=True,
        text=True,
        timeout=3000,
        cwd=REPO,
    )
    lines = [l for l in result.stdout.splitlines() if l.startswith("MUTATION-RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("MUTATION-RESULT "))


def check(report: dict[str, object]) -> None:
    assert report["baseline"] == 0, "the unmodified op must pass its tests"
    assert report["never_called"] == [], "methods the generated tests never call"
    assert report["mutants"] > 0
    assert report["survivors"] == [], (
        "generated test passes with these outputs (class, method, index) scaled by 1.001"
    )


def test_first_output_of_every_method_of_every_function(tmp_path: Path) -> None:
    name, expression, options = WHERE_VOCABULARY_PARAM
    assert emit(tmp_path, expression, "--name", name, "--save", "intermediates", *options) == 0
    report = mutate_all(tmp_path, name, "--first-outputs")
    check(report)
    # The op's forward under --save intermediates returns its derivatives too;
    # every Function has forward, backward and jvp (5 classes); the tables hold
    # f_x, f_y, f_xx, f_xy, f_yy and the third derivatives that are not zero.
    assert report["mutants"] == 15 and report["outputs"] > 15
    assert report["table_entries"] >= 7
    # ∂²f·a and ∂³f·a·b for its two inputs: each result of each helper.
    assert report["product_results"] == 4


@pytest.mark.exhaustive
@pytest.mark.parametrize("save", SAVES)
@pytest.mark.parametrize("name, expression, options", OPS, ids=[o[0] for o in OPS])
def test_every_output_of_every_method(
    tmp_path: Path, name: str, expression: str, options: tuple[str, ...], save: str
) -> None:
    assert emit(tmp_path, expression, "--name", name, "--save", save, *options) == 0
    check(mutate_all(tmp_path, name))


# Several outputs: each output of each method, per output's grad and tangent;
# under --save intermediates also each saved derivative (d_u_r, ...).
MULTI_OUTPUT_OPS = [
    ("polar", "r*cos(t), r*sin(t)", ("--outputs", "u,v")),
]


@pytest.mark.exhaustive
@pytest.mark.parametrize("save", SAVES)
@pytest.mark.parametrize(
    "name, expression, options", MULTI_OUTPUT_OPS, ids=[o[0] for o in MULTI_OUTPUT_OPS]
)
def test_every_output_of_every_method_of_a_multi_output_op(
    tmp_path: Path, name: str, expression: str, options: tuple[str, ...], save: str
) -> None:
    assert emit(tmp_path, expression, "--name", name, "--save", save, *options) == 0
    report = mutate_all(tmp_path, name)
    check(report)
    assert report["table_entries"] >= 12  # u_r, u_t, v_r, v_t and their higher orders
    # ∂²f·a and ∂³f·a·b over either output's table, for its two inputs.
    assert report["product_results"] == 4
