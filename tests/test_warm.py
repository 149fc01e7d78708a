"""A warm command (every op in the cache) never imports the heavy libraries: the
cache key is the request as given, and the stages that import sympy, mpmath,
black and jinja2 run only on a miss (issue #13: `adgen check` under a second).
Each run is a fresh interpreter, since this one has imported them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adgen import cache, write
from tests.helpers import REPO

HEAVY = ("sympy", "black", "jinja2", "mpmath")

SPEC = """\
out = "ops"
tests = "tests/ops"

[ops.wave]
expr = "x*exp(-alpha*x**2)*cos(y)"
inputs = ["x", "y"]
params = { alpha = 0.5 }
domain = { x = [-2.0, 2.0] }

[ops.polar]
expr = ["r*cos(t)", "r*sin(t)"]
outputs = ["u", "v"]
"""

# Runs `code` with `rc` set by it; prints the exit code and the heavy modules loaded.
_RUNNER = """\
import json, sys
{code}
print(json.dumps([rc, sorted(m for m in {heavy!r} if m in sys.modules)]))
"""


def fresh_interpreter(project: Path, cache_dir: Path, code: str) -> subprocess.CompletedProcess:
    """Run `code` (with _RUNNER's report) in a fresh interpreter in `project`,
    importing this checkout's adgen, with its cache in `cache_dir`."""
    environment = {**os.environ, cache.CACHE_DIR_ENV: str(cache_dir), "PYTHONPATH": str(REPO)}
    environment.pop(cache.CACHE_ENV, None)
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER.format(code=code, heavy=HEAVY)],
        cwd=project, capture_output=True, text=True, env=environment, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result


def run(project: Path, cache_dir: Path, code: str) -> tuple[int, list[str], str]:
    """`code`'s `rc`, the heavy modules it imported, and its stderr."""
    result = fresh_interpreter(project, cache_dir, code)
    rc, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    return rc, heavy, result.stderr


def cli(*argv: str) -> str:
    return f"from adgen.cli import main\nrc = main({list(argv)!r})"


@pytest.fixture()
def built(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose ops were built once: (project folder, cache folder)."""
    project, cache_dir = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    (project / "adgen.toml").write_text(SPEC)
    rc, heavy, errors = run(project, cache_dir, cli("build"))
    assert rc == 0, errors
    assert heavy == sorted(HEAVY)  # a miss derives, renders and formats
    return project, cache_dir


def test_warm_check_and_build_import_none_of_the_heavy_libraries(built: tuple[Path, Path]) -> None:
    project, cache_dir = built
    before = {p: p.read_bytes() for p in project.rglob("*.py")}
    assert len(before) == 5  # two modules, two tests, the package
    for argv in (["check"], ["build"], ["build", "--check"]):
        assert run(project, cache_dir, cli(*argv))[:2] == (0, []), argv
    assert {p: p.read_bytes() for p in project.rglob("*.py")} == before
    # The profile still works, and counts only hits.
    rc, heavy, errors = run(
        project, cache_dir, "import os\nos.environ['ADGEN_PROFILE'] = '1'\n" + cli("check")
    )
    assert (rc, heavy) == (0, []) and "cache: 2 hits, 0 misses" in errors  # two ops


def test_warm_check_still_reports_a_hand_edit(built: tuple[Path, Path]) -> None:
    project, cache_dir = built
    module = project / "ops" / "wave.py"
    module.write_text(module.read_text().replace("torch.cos", "torch.sin"))
    rc, heavy, _ = run(project, cache_dir, cli("check"))
    assert (rc, heavy) == (1, [])
    module.unlink()
    assert run(project, cache_dir, cli("check"))[:2] == (1, [])


def test_a_changed_request_is_a_miss_that_derives(built: tuple[Path, Path]) -> None:
    project, cache_dir = built
    spec = project / "adgen.toml"
    spec.write_text(SPEC.replace("cos(y)", "sin(y)"))
    rc, heavy, _ = run(project, cache_dir, cli("check"))
    assert (rc, heavy) == (1, sorted(HEAVY))  # the wave module and its test are stale
    assert run(project, cache_dir, cli("build"))[:2] == (0, [])  # check stored it
    assert "torch.sin(y)" in (project / "ops" / "wave.py").read_text()
    assert run(project, cache_dir, cli("check"))[:2] == (0, [])


def test_invalid_input_is_reported_with_a_warm_cache(built: tuple[Path, Path]) -> None:
    """An invalid request is never stored, so it is never a hit: the error is the
    one of a cold run, and nothing is written."""
    project, cache_dir = built
    spec = project / "adgen.toml"
    before = {p: p.read_bytes() for p in project.rglob("*.py")}
    cases = {
        '[ops.bad]\nexpr = "sinn(x)"\n': "adgen.toml: ops.bad: unknown function 'sinn'",
        '[ops.bad]\nexpr = ["sin(x)"]\n': "adgen.toml: ops.bad: a list of expressions needs one string per output",
        '[ops.bad]\nexpr = "x"\nsave = "all"\n': "adgen.toml: ops.bad: `--save` expects one of",
        '[ops.test_bad]\nexpr = "x"\n': "adgen.toml: ops.test_bad: --name 'test_bad'",
    }
    for added, message in cases.items():
        spec.write_text(SPEC + added)
        for argv in (["check"], ["build"]):
            rc, _, errors = run(project, cache_dir, cli(*argv))
            assert rc == 2, (added, errors)
            assert errors.startswith(f"adgen: error: {message}"), errors
            assert "Traceback" not in errors
    assert {p: p.read_bytes() for p in project.rglob("*.py")} == before


def test_warm_emit_and_load_import_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    emit = cli("emit", "-o", "ops", "--name", "wave", "--param", "alpha=0.5", "--inputs", "x,y", "x*exp(-alpha*x**2)*cos(y)")
    load = (  # wave(1, 0) = exp(-alpha)
        "import adgen, math, torch\n"
        "wave = adgen.load('x*exp(-alpha*x**2)*cos(y)', name='wave', params={'alpha': 0.5})\n"
        "rc = 0 if abs(wave(torch.ones(1), torch.zeros(1)).item() - math.exp(-0.5)) < 1e-6 else 1"
    )
    for code in (emit, load):
        assert run(tmp_path, cache_dir, code)[:2] == (0, sorted(HEAVY)), code
        assert run(tmp_path, cache_dir, code)[:2] == (0, []), code
    # An invalid option is still an error on a warm cache.
    rc, heavy, errors = run(tmp_path, cache_dir, cli("emit", "-o", "ops", "--save", "all", "sin(x)"))
    assert rc == 2 and errors.startswith("adgen: error: `--save` expects one of")
    assert not (tmp_path / "ops" / "sin.py").exists()


def test_the_header_line_is_the_renderers() -> None:
    from adgen.render import HEADER_FIRST_LINE

    assert write.HEADER_FIRST_LINE == HEADER_FIRST_LINE


def test_the_api_function_render_survives_loading_the_render_module(tmp_path: Path) -> None:
    """`adgen.render` is the API function; the submodule of that name, first
    loaded after the package, must not replace it."""
    code = (
        "import adgen\n"
        "from adgen.render import render_module\n"
        "rc = 0 if adgen.render('sin(x)').module_source.startswith('# Code generated') else 1"
    )
    assert run(tmp_path, tmp_path / "cache", code)[:2] == (0, sorted(HEAVY))


def test_warm_emit_with_a_domain_imports_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    emit = cli("emit", "-o", "ops", "--name", "lg", "--domain", "x=0.5:1.5", "--domain", "y=-1:1", "log(x)*y")
    assert run(tmp_path, cache_dir, emit)[:2] == (0, sorted(HEAVY))
    module, test = tmp_path / "ops" / "lg.py", tmp_path / "ops" / "test_lg.py"
    written = (module.read_bytes(), test.read_bytes())
    assert '"x": (0.5, 1.5)' in test.read_text()
    module.unlink()
    test.unlink()
    assert run(tmp_path, cache_dir, emit)[:2] == (0, [])
    assert (module.read_bytes(), test.read_bytes()) == written  # the hit wrote the same bytes
    # A bad --domain is reported on a warm cache as on a cold one: exit 2, one line,
    # nothing written.
    bad = {
        "x=2:1": "adgen: error: `--domain x=2:1`: LO must be finite and less than HI",
        "x=1:inf": "adgen: error: `--domain x=1:inf`: LO must be finite and less than HI",
        "x=a:b": "adgen: error: `--domain` expects NAME=LO:HI, got 'x=a:b'",
        "z=0:1": "adgen: error: --domain names 'z', which is not an input (x, y)",
    }
    module.unlink()
    test.unlink()
    for domain, message in bad.items():
        argv = ("emit", "-o", "ops", "--name", "lg", "--domain", domain, "--domain", "y=-1:1", "log(x)*y")
        rc, _, errors = run(tmp_path, cache_dir, cli(*argv))
        assert rc == 2 and errors.startswith(message), (domain, errors)
        assert "Traceback" not in errors and len(errors.strip().splitlines()) == 1, errors
        assert not module.exists() and not test.exists()


_RENDER = (
    "import adgen, json\n"
    "op = adgen.render('log(x)*y', name='lg', domains={'x': (0.5, 1.5)})\n"
    "print(json.dumps([type(op).__name__, op.module_source, op.test_source]))\n"
    "rc = 0 if isinstance(op, adgen.RenderedOp) else 1"
)


def test_warm_render_imports_none_of_the_heavy_libraries_and_returns_the_same(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"

    def rendered() -> tuple[list[str], list[object]]:
        result = fresh_interpreter(tmp_path, cache_dir, _RENDER)
        op, status = result.stdout.strip().splitlines()[-2:]
        return json.loads(op), json.loads(status)

    cold, cold_status = rendered()
    warm, warm_status = rendered()
    assert cold_status == [0, sorted(HEAVY)]
    assert warm_status == [0, []]
    assert warm == cold and cold[0] == "RenderedOp"
    assert '"x": (0.5, 1.5)' in cold[2]
    # A bad domain stays an error on a warm cache (an invalid request is never stored).
    bad = (
        "import adgen\n"
        "try:\n"
        "    adgen.render('log(x)*y', name='lg', domains={'x': (1.5, 0.5)})\n"
        "    rc = 0\n"
        "except adgen.AdgenError as error:\n"
        "    print(error)\n"
        "    rc = 2\n"
    )
    rc, _, _ = run(tmp_path, cache_dir, bad)
    assert rc == 2

