"""generated/ is the output of the commands in its files' headers: regenerating
each op gives the committed bytes (so a template change cannot leave it stale)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from adgen.cli import main
from tests.helpers import REPO

CATALOGUE = REPO / "generated"
MODULES = sorted(p for p in CATALOGUE.glob("*.py") if not p.name.startswith("test_"))


def regenerate_command(module: Path) -> list[str]:
    for line in module.read_text().splitlines()[:5]:
        if line.startswith("# Regenerate: "):
            words = shlex.split(line.removeprefix("# Regenerate: "))
            assert words[:2] == ["adgen", "emit"]
            return words[1:]
    raise AssertionError(f"{module.name} has no Regenerate line")


def test_catalogue_is_not_empty() -> None:
    assert len(MODULES) >= 4


@pytest.mark.parametrize("module", MODULES, ids=[m.stem for m in MODULES])
def test_catalogue_is_fresh(module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(regenerate_command(module)) == 0
    for name in (module.name, f"test_{module.name}"):
        fresh = (tmp_path / "generated" / name).read_text()
        assert fresh == (CATALOGUE / name).read_text(), f"generated/{name} is stale: rerun its Regenerate line"
