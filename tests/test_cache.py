"""The cache of generated text: it hits when nothing changed, misses when anything
that decides the output changed (generator files, dependency versions, any part
of the request), never trusts a damaged entry and never fails a command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import adgen
from adgen import api, cache, timing
from adgen.cli import main
from adgen.errors import InputError
from tests.helpers import REPO


@pytest.fixture(autouse=True)
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache folder, enabled."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(folder))
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    return folder


def entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def counted(call, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run `call`; return its result and the cache hits and misses it made."""
    timing.reset()
    result = call(*args, **kwargs)
    counts = timing.snapshot()["counts"]
    return result, counts.get("cache hit", 0), counts.get("cache miss", 0)


def test_second_render_is_a_hit_with_the_same_text(cache_folder: Path) -> None:
    first, hits, misses = counted(adgen.render, "sin(x)")
    assert (hits, misses) == (0, 1)
    assert len(entries(cache_folder)) == 1
    second, hits, misses = counted(adgen.render, "sin(x)")
    assert (hits, misses) == (1, 0)
    assert second == first


def test_disabled_cache_stores_nothing(cache_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, "0")
    for _ in range(2):
        _, hits, misses = counted(adgen.render, "sin(x)")
        assert (hits, misses) == (0, 1)
    assert entries(cache_folder) == []


def test_default_folder_is_the_user_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cache.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache.default_folder() == tmp_path / "xdg" / "adgen"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert cache.default_folder() == tmp_path / "home" / ".cache" / "adgen"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert cache.default_folder() == tmp_path / "mine"


_WAVE: dict[str, object] = dict(
    expr="x*exp(-alpha*x**2)*cos(y)", name="wave", out="ops", inputs=["x", "y"], outputs=None,
    params={"alpha": 0.5}, domains={"x": (-2.0, 2.0)}, tests_dir=None,
    save="inputs", fuse=False, regenerate=None,
)


def _request_key(with_test: bool = True, **changes: object) -> str | None:
    """The cache key of the wave request with `changes`, as given (nothing parsed)."""
    fields = api._Given(**{**_WAVE, **changes}).cache_fields(with_test)  # type: ignore[arg-type]
    return None if fields is None else cache.default_cache().key(fields)


def test_key_covers_every_part_of_the_request() -> None:
    variants = [
        {},
        {"expr": "x*exp(-alpha*x**2)*cos(y) "},  # same formula, other text: the header shows it
        {"expr": "x*exp(-alpha*x**2)*sin(y)"},
        {"expr": ["x*exp(-alpha*x**2)", "cos(y)"]},
        {"name": "wave2"},
        {"name": None},
        {"inputs": ["y", "x"]},
        {"outputs": ["u"]},
        {"params": {"alpha": 0.25}},
        {"params": {"alpha": None}},
        {"params": {"alpha": 1}},  # an int, not 1.0: told apart, though both are valid
        {"params": {"alpha": 0.5, "beta": 1.0}},
        {"params": {"beta": 1.0, "alpha": 0.5}},  # the order of params is the signature's
        {"params": [["alpha", 0.5]]},  # invalid: must not share the dict's key
        {"domains": {"x": (-2.0, 3.0)}},
        {"domains": {}},
        {"domains": None},
        {"save": "intermediates"},
        {"fuse": True},
        {"fuse": 1},
        {"tests_dir": "tests"},  # the test imports the module by its path
        {"out": "other"},  # the default Regenerate line names it
        {"regenerate": "make"},
        {"regenerate": "make ops"},
    ]
    keys = [_request_key(**v) for v in variants]
    assert None not in keys
    assert len(set(keys)) == len(keys)
    assert _request_key() == keys[0]  # and it is stable
    assert _request_key(params={"alpha": 0.5}, domains={"x": [-2.0, 2.0]}) == keys[0]
    # The module-only entry of `load` is another entry than module + test.
    assert _request_key(with_test=False) not in keys


def test_values_the_key_cannot_hold_exactly_are_not_cached(tmp_path: Path) -> None:
    class Text(str):
        pass

    for changes in (
        {"params": {"alpha": float("nan")}},  # invalid, and JSON has no NaN
        {"expr": Text("x*exp(-alpha*x**2)*cos(y)")},  # a subclass may behave otherwise
        {"params": {"alpha": __import__("fractions").Fraction(1, 2)}},
        {"out": 3},  # invalid folder
    ):
        assert _request_key(**changes) is None, changes
    # A folder given as a path is the folder given as text.
    assert _request_key(out=Path("ops")) == _request_key(out="ops")
    # The same op in two checkouts is one entry: the text names no absolute folder.
    assert _request_key(out=str(tmp_path / "a" / "ops")) == _request_key(out=str(tmp_path / "b" / "ops"))
    assert _request_key(out=str(tmp_path / "a" / "ops")) != _request_key(out=str(tmp_path / "a" / "kernels"))


def test_the_layout_of_folders_on_disk_is_part_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same request, relative folders: where `tests` really is decides the
    module's path from the test, so it is another key."""
    plain, linked = tmp_path / "plain", tmp_path / "linked"
    (plain / "tests").mkdir(parents=True)
    (linked / "deep" / "tests").mkdir(parents=True)
    (linked / "tests").symlink_to(linked / "deep" / "tests")
    keys = []
    for folder in (plain, linked):
        monkeypatch.chdir(folder)
        keys.append(_request_key(tests_dir="tests"))
    assert keys[0] != keys[1]


def test_a_hit_is_the_text_a_miss_makes_where_the_module_file_is_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key holds the folders, not the module file: where ops/sin.py is a link,
    the entry's path from the test is wrong, and it must be a miss."""
    def planned(folder: Path) -> tuple[str, str]:
        monkeypatch.chdir(folder)
        plan = api.plan_emit("sin(x)", out="ops", tests_dir="tests")
        return plan.module.content, plan.test.content

    plain, linked = tmp_path / "plain", tmp_path / "linked"
    for folder in (plain, linked):
        (folder / "ops").mkdir(parents=True)
        (folder / "tests").mkdir()
    (linked / "elsewhere").mkdir()
    (linked / "elsewhere" / "sin.py").write_text("")
    (linked / "ops" / "sin.py").symlink_to(linked / "elsewhere" / "sin.py")
    first, hits, misses = counted(planned, plain)
    assert (hits, misses) == (0, 1)
    from_link, hits, misses = counted(planned, linked)
    assert (hits, misses) == (0, 1)
    monkeypatch.setenv(cache.CACHE_ENV, "0")
    assert from_link == planned(linked) != first


def _copy_generator(target: Path) -> list[Path]:
    """The generator's files copied under `target`, same relative layout."""
    files = cache.generator_files()
    root = Path(os.path.commonpath([str(f) for f in files]))
    copies = []
    for path in files:
        copy = target / path.relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        copies.append(copy)
    return copies


def test_fingerprint_changes_with_any_byte_of_the_generator(tmp_path: Path) -> None:
    copies = _copy_generator(tmp_path / "copy")
    versions = cache.dependency_versions()
    base = cache.fingerprint(copies, versions).digest
    # Where the files live does not matter, their bytes do.
    assert base == cache.fingerprint(cache.generator_files(), versions).digest
    assert any(p.name == "module.py.j2" for p in copies) and any(p.name == "derive.py" for p in copies)
    for path in copies:
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert cache.fingerprint(copies, versions).digest != base, path.name
        path.write_bytes(original)
    assert cache.fingerprint(copies, versions).digest == base
    for name in ("python", "black", "sympy", "jinja2"):
        other = {**versions, name: versions[name] + ".post1"}
        assert cache.fingerprint(copies, other).digest != base, name


def _emit_in_process(source: Path, out: Path, cache_dir: Path) -> tuple[str, str]:
    """`adgen emit sin(x)` in a fresh process running the adgen under `source`."""
    environment = {
        **os.environ, cache.CACHE_DIR_ENV: str(cache_dir), "ADGEN_PROFILE": "1", "PYTHONPATH": str(source),
    }
    result = subprocess.run(
        [sys.executable, "-m", "adgen", "emit", "-o", str(out), "sin(x)"],
        cwd=source, capture_output=True, text=True, env=environment, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return (out / "sin.py").read_text(), result.stderr


def test_an_edited_generator_never_gets_old_text(tmp_path: Path, cache_folder: Path) -> None:
    source = tmp_path / "src"
    copies = _copy_generator(source)
    template = next(p for p in copies if p.name == "module.py.j2")
    stage = next(p for p in copies if p.name == "stable.py")
    text, profile = _emit_in_process(source, tmp_path / "a" / "ops", cache_folder)
    assert "cache: 0 hits, 1 miss" in profile
    again, profile = _emit_in_process(source, tmp_path / "b" / "ops", cache_folder)
    assert "cache: 1 hit, 0 misses" in profile and again == text
    # A template edit shows in the output at once.
    template.write_text(template.read_text() + "# an edited template\n")
    edited, profile = _emit_in_process(source, tmp_path / "c" / "ops", cache_folder)
    assert "cache: 0 hits, 1 miss" in profile
    assert "# an edited template" not in text
    assert edited.rstrip().endswith("# an edited template")
    # Any source edit is a miss, even one that leaves the text as it was.
    stage.write_text(stage.read_text() + "# a comment\n")
    _, profile = _emit_in_process(source, tmp_path / "d" / "ops", cache_folder)
    assert "cache: 0 hits, 1 miss" in profile


def test_damaged_entries_are_misses_never_trusted(tmp_path: Path) -> None:
    store = cache.TextCache(tmp_path / "store", cache.GENERATOR)
    key = store.key({"expr": "sin(x)"})
    assert store.put(key, {"module": "text of the module"})
    assert store.get(key) == {"module": "text of the module"}
    [entry] = entries(tmp_path / "store")
    good = entry.read_bytes()
    header, body = good.split(b"\n", 1)
    damaged = {
        "truncated": good[: len(good) - 5],
        "only the header": header + b"\n",
        "empty": b"",
        "one byte of the body changed": header + b"\n" + body.replace(b"module", b"modulE"),
        "another format": good.replace(b"adgen-cache-1", b"adgen-cache-9", 1),
        "another key": good.replace(key.encode(), key[::-1].encode(), 1),
        "not UTF-8": b"\xff\xfe" + good,
    }
    for what, data in damaged.items():
        entry.write_bytes(data)
        assert store.get(key) is None, what
    entry.unlink()
    entry.mkdir()  # a folder where the entry should be
    assert store.get(key) is None
    entry.rmdir()


def test_a_damaged_entry_is_regenerated_and_overwritten(cache_folder: Path) -> None:
    first = adgen.render("sin(x)")
    [entry] = entries(cache_folder)
    entry.write_bytes(entry.read_bytes()[:-40])
    second, hits, misses = counted(adgen.render, "sin(x)")
    assert (hits, misses) == (0, 1) and second == first
    third, hits, misses = counted(adgen.render, "sin(x)")
    assert (hits, misses) == (1, 0) and third == first


def test_an_unusable_cache_folder_never_fails_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(blocker / "cache"))  # cannot be created
    assert main(["emit", "-o", str(tmp_path / "out"), "sin(x)"]) == 0
    assert "error" not in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o500)
        monkeypatch.setenv(cache.CACHE_DIR_ENV, str(read_only))
        try:
            assert main(["emit", "-o", str(tmp_path / "out2"), "sin(x)"]) == 0
            assert entries(read_only) == []
        finally:
            read_only.chmod(0o700)


def test_nothing_is_stored_when_the_generator_changed_while_running(tmp_path: Path) -> None:
    copies = _copy_generator(tmp_path / "copy")
    generator = cache.fingerprint(copies, cache.dependency_versions())
    store = cache.TextCache(tmp_path / "store", generator)
    key = store.key({"expr": "sin(x)"})
    assert store.put(key, {"module": "m"})
    copies[0].write_bytes(copies[0].read_bytes() + b"# edited after hashing\n")
    other = store.key({"expr": "cos(x)"})
    assert not store.put(other, {"module": "m"})
    assert store.get(other) is None


def test_check_still_reports_a_hand_edit_with_a_warm_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "adgen.toml").write_text('out = "ops"\n[ops.s]\nexpr = "sin(x)"\n[ops.c]\nexpr = "cos(x)"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["build"]) == 0
    _, hits, misses = counted(main, ["check"])
    assert (hits, misses) == (2, 0)
    (tmp_path / "ops/s.py").write_text((tmp_path / "ops/s.py").read_text() + "# edit\n")
    capsys.readouterr()
    assert main(["check"]) == 1
    assert "ops/s.py: stale or edited by hand" in capsys.readouterr().out


def test_load_builds_only_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("load must not render the test or probe test domains")

    rendered = adgen.render("x*sigmoid(x)", name="silu_cached")
    monkeypatch.setenv(cache.CACHE_ENV, "0")  # derive again, with the spies in place
    monkeypatch.setattr(sys.modules["adgen.render"], "render_test", forbidden)
    monkeypatch.setattr("adgen.domain._well_defined", forbidden)
    silu = adgen.load("x*sigmoid(x)", name="silu_cached")
    import linecache

    source = "".join(linecache.getlines("<adgen.load silu_cached>"))
    assert source == rendered.module_source
    assert callable(silu)
    # A domain naming no input is still an error, as for emit.
    with pytest.raises(InputError, match="not an input"):
        adgen.load("sin(x)", name="sin_bad", domains={"y": (0.0, 1.0)})


def test_repository_checkout_is_what_the_fingerprint_hashes() -> None:
    names = {p.relative_to(REPO).as_posix() for p in cache.generator_files()}
    assert {"adgen/api.py", "adgen/derive.py", "templates/module.py.j2", "templates/test_module.py.j2"} <= names
