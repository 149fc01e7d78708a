"""Hypothesis explores new random examples on every local run; under CI (CI set in
the environment) it replays a fixed set, so that a landing never depends on luck.
Run `pytest --hypothesis-seed=N` locally to explore more."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
