"""Domain inference: without --domain, the generated test samples each input from
where the expression is real and smooth, so the generated tests pass untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

import adgen
from adgen.api import plan_emit
from adgen.domain import Domain, parse_domain
from adgen.errors import InputError
from tests.helpers import load_module, run_pytest

EXAMPLES = [
    # (name, expression, expected interval of x)
    ("logx", "log(x)", (0.1, 2.0)),
    ("sqrtx", "sqrt(x)", (0.1, 2.0)),
    ("acosx", "acos(x)", (-0.9, 0.9)),
    ("asinx", "asin(x)", (-0.9, 0.9)),
    ("atanhx", "atanh(x)", (-0.9, 0.9)),
    ("acoshx", "acosh(x)", (1.1, 3.0)),
    ("powxy", "x**y", (0.1, 2.0)),
    ("recip", "1/x", (0.1, 2.0)),
    ("shifted_pole", "1/(x - 0.3)", (1.1, 3.0)),
    ("lgammax", "lgamma(x)", (0.1, 2.0)),
    ("logit", "log(x/(1 - x))", (0.1, 0.9)),
    ("log_one_minus", "log(1 - x)", (-0.9, 0.9)),
    ("smooth", "sin(x)*exp(x)", (-2.0, 2.0)),
]


@pytest.mark.parametrize("name, expression, interval", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_inferred_interval(name: str, expression: str, interval: tuple[float, float], tmp_path: Path) -> None:
    plan = plan_emit(expression, name=name, out=tmp_path)
    assert plan.warnings == ()
    plan.test.path.write_text(plan.test.content)
    plan.module.path.write_text(plan.module.content)
    assert load_module(plan.test.path).DOMAINS["x"] == interval


def test_generated_tests_pass_untouched(tmp_path: Path) -> None:
    for name, expression, _ in EXAMPLES:
        adgen.emit(expression, name=name, out=tmp_path)
    result = run_pytest(str(tmp_path), "-k", "not compile")
    assert result.returncode == 0, result.stdout[-3000:]


def test_nothing_sensible_warns() -> None:
    plan = plan_emit("log(-x**2 - 1)", name="op")
    assert len(plan.warnings) == 1 and "--domain" in plan.warnings[0]


def test_given_domain_wins() -> None:
    plan = plan_emit("log(x)", name="op", domains={"x": (3.0, 4.0)})
    assert '"x": (3.0, 4.0)' in plan.test.content


@pytest.mark.parametrize("text", ["x=1", "x:1:2", "=1:2", "x=a:b", "x=2:1", "x=1:inf"])
def test_bad_domain_option(text: str) -> None:
    with pytest.raises(InputError):
        parse_domain(text)


def test_domain_option() -> None:
    assert parse_domain("x=-1:2.5") == Domain("x", -1.0, 2.5)
