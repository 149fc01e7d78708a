"""Hypothesis explores new random examples on every local run; under CI (CI set in
the environment) it replays a fixed set, so that a landing never depends on luck.
Run `pytest --hypothesis-seed=N` locally to explore more.

Tests marked `exhaustive` (the whole corpus under every emit option, the slow
sweeps) are skipped unless ADGEN_EXHAUSTIVE=1; `bash .ci/run` sets it, so CI runs
everything while `python -m pytest -q` stays within a few minutes."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


import pytest  # noqa: E402

EXHAUSTIVE = os.environ.get("ADGEN_EXHAUSTIVE") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if EXHAUSTIVE:
        return
    skip = pytest.mark.skip(reason="exhaustive: run with ADGEN_EXHAUSTIVE=1 (bash .ci/run sets it)")
    for item in items:
        if item.get_closest_marker("exhaustive") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """Every op of tests/corpus.py emitted once per test run (default options).

    Under pytest-xdist each worker is its own session: the first to get the lock
    emits into a folder all workers share, the others wait and reuse it."""
    from filelock import FileLock

    from tests.corpus import CORPUS
    from tests.helpers import emit

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # xdist: basetemp/popen-gwN; share its parent
        shared = shared.parent
    out = shared / "corpus_ops"
    with FileLock(str(shared / "corpus_ops.lock")):
        if not (out / "done").exists():
            out.mkdir(exist_ok=True)
            for name, expression, options in CORPUS:
                assert emit(out, expression, "--name", name, *options) == 0, name
            (out / "done").write_text("")
    return out


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """xdist's worker id ("gw0", ...), or "master" without xdist (xdist defines
    this fixture too; this one serves when xdist is not installed)."""
    return getattr(request.config, "workerinput", {}).get("workerid", "master")
