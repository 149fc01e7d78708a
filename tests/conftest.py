"""Hypothesis explores new random examples on every local run; under CI (CI set in
the environment) it replays a fixed set, so that a landing never depends on luck.
Run `pytest --hypothesis-seed=N` locally to explore more."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory):
    """Every op of tests/corpus.py emitted once per session (default options)."""
    from tests.corpus import CORPUS
    from tests.helpers import emit

    out = tmp_path_factory.mktemp("ops")
    for name, expression, options in CORPUS:
        assert emit(out, expression, "--name", name, *options) == 0, name
    return out
