"""Rendered modules and tests compared byte for byte with tests/golden/, so that
template changes show up in review. Regenerate with ADGEN_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import adgen

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = {
    "sin": dict(expr="sin(x)"),
    "wave": dict(expr="x*exp(-alpha*x**2)*cos(y)", name="wave", params={"alpha": 0.5}),
    "normal_nll": dict(
        expr="(x - mu)**2/(2*sigma**2) + log(sigma)", name="normal_nll", params={"mu": None, "sigma": 1.5}
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    options = dict(CASES[case])
    rendered = adgen.render(options.pop("expr"), **options)
    for suffix, text in (("", rendered.module_source), ("test_", rendered.test_source)):
        path = GOLDEN / f"{suffix}{case}.py.txt"
        if os.environ.get("ADGEN_UPDATE_GOLDEN"):
            path.write_text(text, encoding="utf-8")
        assert path.read_text(encoding="utf-8") == text, f"{path.name} differs; rerun with ADGEN_UPDATE_GOLDEN=1 if intended"
