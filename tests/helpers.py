"""Shared helpers for the project's tests."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from hypothesis import strategies as st

from adgen.cli import main
from adgen.parse import FUNCTIONS

REPO = Path(__file__).resolve().parent.parent


def emit(out: Path, expression: str, *options: str) -> int:
    """Run `adgen emit` in-process."""
    return main(["emit", "-o", str(out), *options, "--", expression])


def load_module(path: Path) -> ModuleType:
    """Import a generated module by path, under a unique name."""
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chunks(names: list[str], count: int, label: str, *marks) -> list:
    """`names` split into `count` pytest params, so that `pytest -n 2` spreads
    the runs and each stays within run_pytest's timeout."""
    import pytest

    return [pytest.param(names[i::count], id=f"{label}{i}", marks=marks) for i in range(count)]


def run_pytest(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run pytest in a fresh process (generated tests must stand on their own)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


def expression_trees(leaves: list[str], max_leaves: int) -> st.SearchStrategy[str]:
    """Random expressions: leaves combined by one-argument functions, the binary
    operators and unary minus."""
    unary_functions = sorted(n for n, (_, arity) in FUNCTIONS.items() if arity == 1)

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        unary = st.tuples(st.sampled_from(unary_functions), children)
        binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children)
        return st.one_of(
            unary.map(lambda t: f"{t[0]}({t[1]})"),
            binary.map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            children.map(lambda c: f"-({c})"),
        )

    return st.recursive(st.sampled_from(leaves), extend, max_leaves=max_leaves)
