"""examples/spec_project: its committed output is fresh, and its demo (build,
import, check, hand edit, dropped op) runs to the end."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

PROJECT = REPO / "examples" / "spec_project"


def test_demo_runs_in_smoke_mode() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "demo.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ops/swish.py: stale or edited by hand" in result.stdout
    assert "removed ops/pseudo_huber.py" in result.stdout
    assert result.stdout.strip().endswith("spec project: build + check OK")
