"""The CLI contract: options, outputs, exit codes, errors, safety of files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adgen.cli import main
from adgen.render import HEADER_FIRST_LINE
from tests.helpers import REPO, emit


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_emit_writes_module_and_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emit", "sin(x)", "-o", str(tmp_path / "ops")]) == 0
    assert files_in(tmp_path) == ["ops/sin.py", "ops/test_sin.py"]
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'ops' / 'sin.py'}" in out
    assert f"wrote {tmp_path / 'ops' / 'test_sin.py'}" in out


def test_second_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emit(tmp_path, "x*exp(-alpha*x**2)*cos(y)", "--name", "wave", "--param", "alpha=0.5") == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert emit(tmp_path, "x*exp(-alpha*x**2)*cos(y)", "--name", "wave", "--param", "alpha=0.5") == 0
    assert "unchanged" in capsys.readouterr().out
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before


def test_output_independent_of_cwd_and_hash_seed(tmp_path: Path) -> None:
    """Same command from two folders, two hash seeds: byte-identical files."""
    outputs = []
    for index, seed in enumerate(["1", "2"]):
        cwd = tmp_path / f"run{index}"
        cwd.mkdir()
        subprocess.run(
            [sys.executable, "-m", "adgen", "emit", "--name", "wave", "--param", "alpha=0.5",
             "-o", "ops", "x*exp(-alpha*x**2)*cos(y) + atan2(y, x)"],
            cwd=cwd, check=True, env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
        )
        outputs.append({p.name: p.read_bytes() for p in (cwd / "ops").iterdir()})
    assert outputs[0] == outputs[1]
    assert str(tmp_path).encode() not in b"".join(outputs[0].values())


def test_generator_does_not_import_torch() -> None:
    code = (
        "import sys, tempfile; from adgen.cli import main; "
        "d = tempfile.mkdtemp(); assert main(['emit', 'sin(x)*y', '--name', 'op', '-o', d]) == 0; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_python_dash_m_and_double_dash(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adgen", "emit", "--name", "neg", "-o", str(tmp_path), "--", "-x**2"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "neg.py").exists()


def test_tests_dir(tmp_path: Path) -> None:
    assert emit(tmp_path / "pkg" / "ops", "tanh(x)", "--tests-dir", str(tmp_path / "tests" / "ops")) == 0
    test_file = tmp_path / "tests" / "ops" / "test_tanh.py"
    assert (tmp_path / "pkg" / "ops" / "tanh.py").exists()
    assert '"../../pkg/ops/tanh.py"' in test_file.read_text()


def test_inputs_order_and_params(tmp_path: Path) -> None:
    assert emit(tmp_path, "a*x + y", "--name", "lin", "--inputs", "y,x", "--param", "a") == 0
    source = (tmp_path / "lin.py").read_text()
    assert "def lin(y: torch.Tensor, x: torch.Tensor, *, a: float) -> torch.Tensor:" in source
    assert "adgen emit --name lin --inputs y,x --param a" in source


def test_header(tmp_path: Path) -> None:
    assert emit(tmp_path, "x*exp(-alpha*x**2)", "--name", "g", "--param", "alpha=0.5", "--domain", "x=-1:1") == 0
    for name in ("g.py", "test_g.py"):
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0] == HEADER_FIRST_LINE
        assert lines[1] == "# Expression: x*exp(-alpha*x**2)"
        assert lines[2].startswith("# Regenerate: adgen emit --name g --param alpha=0.5 --domain x=-1.0:1.0 -o ")


ERRORS = [
    (["emit", "x*sin(x)"], "cannot derive a name from 'x*sin(x)'; pass --name NAME"),
    (["emit", "sine(x)"], "unknown function 'sine' at column 1; did you mean sin"),
    (["emit", "sin(x)", "--domain", "x=1"], "`--domain` expects NAME=LO:HI, got 'x=1'"),
    (["emit", "sin(x)", "--domain", "x=2:1"], "LO must be finite and less than HI"),
    (["emit", "sin(x)", "--domain", "y=0:1"], "--domain names 'y', which is not an input"),
    (["emit", "x*a", "--name", "op", "--param", "a=abc"], "DEFAULT must be a number"),
    (["emit", "2*a", "--name", "op", "--param", "a"], "no tensor inputs"),
    (["emit", "sin(x)", "--name", "Bad-Name"], "--name expects a snake_case identifier"),
    (["emit", "sin(x)", "--inputs", "x,,y"], "`--inputs` expects names separated by commas"),
    (["emit"], "the following arguments are required: EXPR"),
    (["emit", "sin(x)", "--bogus"], "unrecognized arguments: --bogus"),
    (["emit", "__import__('os').system('touch PWNED')"], "not allowed at column"),
]


@pytest.mark.parametrize("argv, message", ERRORS)
def test_errors_are_one_line_exit_2_and_write_nothing(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["-o", "ops"] if len(argv) > 1 else argv) == 2
    captured = capsys.readouterr()
    first_line = captured.err.splitlines()[0]
    assert first_line.startswith("adgen: error: ")
    assert message in first_line
    assert "Traceback" not in captured.err
    assert files_in(tmp_path) == []


def test_parse_error_shows_caret(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert emit(tmp_path, "x + sine(y)", "--name", "op") == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "adgen: error: unknown function 'sine' at column 5; did you mean sin, sinh, sign?",
        "  x + sine(y)",
        "      ^",
    ]


def test_refuses_to_overwrite_hand_written_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "test_sin.py"
    mine.write_text("# my own test\n")
    assert emit(tmp_path, "sin(x)") == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert mine.read_text() == "# my own test\n"
    assert not (tmp_path / "sin.py").exists(), "nothing is written when one file is refused"
    assert emit(tmp_path, "sin(x)", "--force") == 0
    assert mine.read_text().startswith(HEADER_FIRST_LINE)


def test_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ops").write_text("")
    assert emit(tmp_path / "ops", "sin(x)") == 2
    assert "is not a directory" in capsys.readouterr().err


def test_domain_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emit(tmp_path, "log(-x**2 - 1)", "--name", "op") == 0
    assert "adgen: warning: could not find an interval" in capsys.readouterr().err


def test_api_render_and_emit(tmp_path: Path) -> None:
    import adgen

    rendered = adgen.render("x*exp(-alpha*x**2)*cos(y)", name="wave", params={"alpha": 0.5})
    assert "class WaveBackward(_Function):" in rendered.module_source
    written = adgen.emit("x*exp(-alpha*x**2)*cos(y)", name="wave", params={"alpha": 0.5}, out=tmp_path)
    assert written == [tmp_path / "wave.py", tmp_path / "test_wave.py"]
    assert (tmp_path / "wave.py").read_text() == rendered.module_source.replace("-o .", f"-o {tmp_path.name}")


PROFILE_STAGES = ("parse", "derive", "select", "domain", "render module", "render test", "black", "cache lookup", "cache store", "write / compare")


def _profile_rows(err: str) -> dict[str, float]:
    rows = {}
    for line in err.splitlines():
        for stage in PROFILE_STAGES:
            if line.startswith(f"  {stage} ") and line[2 + len(stage):].split()[0][0].isdigit():
                rows[stage] = float(line[2 + len(stage):].split()[0])
    return rows


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_profile_prints_one_table_of_stages(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ADGEN_CACHE_DIR", str(tmp_path / "cache"))
    options = ["--profile"] if how == "flag" else []
    if how == "environment":
        monkeypatch.setenv("ADGEN_PROFILE", "1")
    assert emit(tmp_path / "ops", "sin(x)", *options) == 0
    err = capsys.readouterr().err
    wall = float(err.split("adgen profile: wall ")[1].split(" s")[0])
    rows = _profile_rows(err)
    assert set(rows) == set(PROFILE_STAGES), err
    assert rows["derive"] > 0 and rows["black"] > 0
    assert sum(rows.values()) <= wall + 0.01  # stage times exclude their nested stages
    assert "cache: 0 hits, 1 miss" in err
    # Warm: the cache serves the text, nothing is derived.
    assert emit(tmp_path / "ops", "sin(x)", *options) == 0
    err = capsys.readouterr().err
    assert "cache: 1 hit, 0 misses" in err and "derive" not in _profile_rows(err)


def test_no_profile_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ADGEN_PROFILE", raising=False)
    assert emit(tmp_path, "sin(x)") == 0
    assert "profile" not in capsys.readouterr().err


@pytest.mark.parametrize("interval", [(0.0, float("inf")), (2.0, 1.0), (float("nan"), 1.0), ("a", 1.0)])
def test_api_domain_must_be_a_finite_interval(interval) -> None:
    import adgen

    with pytest.raises(adgen.AdgenError, match="domains"):
        adgen.render("sin(x)", domains={"x": interval})
