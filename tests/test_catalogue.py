"""generated/ is the repo's own catalogue, built from [tool.adgen] in the repo's
pyproject.toml: `adgen check` at the repo root must find it fresh (so a template
change cannot leave it stale), and its package must export every op."""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from adgen.cli import main
from adgen.spec import find_config, load_project
from tests.helpers import REPO


def test_catalogue_is_fresh(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO)
    code = main(["check"])
    assert code == 0, capsys.readouterr().out


def test_catalogue_package_exports_every_op(monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(find_config(REPO))
    names = [op.name for op in project.ops]
    assert len(names) >= 20
    assert project.out == REPO / "generated"
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delitem(sys.modules, "generated", raising=False)
    package = importlib.import_module("generated")
    assert sorted(package.__all__) == sorted(names)
    for name in names:
        assert callable(getattr(package, name)), name
        assert (REPO / "generated" / f"test_{name}.py").is_file(), name


# A run of this many lines, each one name and a comma, is a list black wrote a
# name a line: the Functions pack such lists a derivative level a line instead.
NAME_A_LINE = 6


@pytest.mark.parametrize(
    "module",
    sorted(p for p in (REPO / "generated").glob("*.py") if not p.name.startswith(("test_", "_"))),
    ids=lambda path: path.stem,
)
def test_functions_list_no_names_a_line(module) -> None:
    lines = module.read_text().splitlines()
    classes = [i for i, line in enumerate(lines) if line.startswith("class ")]
    assert classes, module.name
    run = []
    for number, line in enumerate(lines[classes[0] :], start=classes[0] + 1):
        if re.fullmatch(r"\s+[A-Za-z_]\w*,", line):
            run.append(number)
            assert len(run) < NAME_A_LINE, f"{module.name}:{run[0]}: a name a line"
        else:
            run = []
