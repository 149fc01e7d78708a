"""The README's set-up path: its two commands are the ones `.ci/run` runs, and
the `test` extra brings every third-party package the tests, examples,
benchmarks and generated code import (a missing one, such as matplotlib once,
fails the README path while CI, installing more, stays green)."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from tests.helpers import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HEADING = "## Set up and test: two commands\n"
LOCAL = {"adgen", "tests", "generated", "benchmarks", "examples", "ops"}


def readme_commands() -> list[str]:
    section = (REPO / "README.md").read_text(encoding="utf-8").split(HEADING, 1)[1]
    return re.search(r"```\n(.*?)```", section, re.S).group(1).strip().splitlines()


def test_readme_has_two_commands_install_first_then_tests() -> None:
    install, run_tests = readme_commands()
    steps = [step.strip() for step in install.split("&&")]
    # torch first, pinned, so that `torch>=2.4` of the extra installs nothing more.
    assert re.fullmatch(r"pip install torch==[0-9.]+", steps[0]), steps[0]
    assert steps[1] == 'pip install -e ".[test]"', steps[1]
    assert any(step.startswith("adgen emit") for step in steps) and steps[-1].startswith("python -c")
    assert run_tests.startswith("python -m pytest")


def test_ci_runs_the_readme_commands() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert HEADING.strip() in script
    assert "ADGEN_EXHAUSTIVE=1" in script
    assert "CI=1" in script  # hypothesis replays its fixed examples (conftest.py)
    # It installs nothing of its own besides the README's commands (the wheel
    # it builds and installs into a scratch folder is the project itself).
    installs = [line for line in script.splitlines() if re.search(r"pip install(?! -q --no-deps --target)", line)]
    assert installs == [], installs


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalize(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))


def _with_dependencies(names: set[str]) -> set[str]:
    """The names and, as installed here, everything they require."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def _imported_top_level_modules() -> dict[str, set[str]]:
    """Each top-level module imported, with the files (relative to the repo) that import it."""
    found: dict[str, set[str]] = {}
    files = [*REPO.glob("tests/**/*.py"), *REPO.glob("examples/**/*.py"), *REPO.glob("benchmarks/*.py"),
             *REPO.glob("generated/*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


# Evaluations that say they need a package of their own, each the one file that
# imports it (the check fails if another file imports it).
OUTSIDE_THE_SETUP = {"egglog": "benchmarks/egglog_trial.py"}


def test_the_test_extra_brings_every_imported_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_requirement_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    available = _with_dependencies(declared)
    distributions = metadata.packages_distributions()
    missing = {}
    for module, paths in _imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in LOCAL or module == "__future__":
            continue
        if paths == {OUTSIDE_THE_SETUP.get(module)}:
            continue
        providers = {_normalize(d) for d in distributions.get(module, [module])}
        if not providers & available:
            missing[module] = sorted(paths)
    assert missing == {}, f"imported but not brought by the test extra: {missing}"
