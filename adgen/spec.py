"""The spec file: the list of a project's ops, read from `adgen.toml` (keys at the
top level) or from `[tool.adgen]` in `pyproject.toml`.

    [tool.adgen]
    out = "ops"              # package folder for the modules
    tests = "tests/ops"      # optional; default: next to the modules
    [tool.adgen.ops.wave]
    expr = "x*exp(-alpha*x**2)*cos(y)"
    inputs = ["x", "y"]
    params = { alpha = 0.5 }
    domain = { x = [-2.0, 2.0] }
    save = "intermediates"   # optional, as `adgen emit --save`
    fuse = true              # optional, as `adgen emit --fuse`

Only the shape of the file is checked here; what the values mean (a valid
expression, a domain naming an input ...) is checked by the pipeline, and its
errors are prefixed with the op they came from.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SPEC_FILE = "adgen.toml"
PYPROJECT = "pyproject.toml"
_TOP_KEYS = ("out", "tests", "ops")
_OP_KEYS = ("expr", "inputs", "outputs", "params", "domain", "save", "fuse")


@dataclass(frozen=True)
class OpEntry:
    """One `[ops.NAME]` table."""

    name: str  # "wave"
    # "x*exp(-alpha*x**2)*cos(y)"; several outputs: "r*cos(t), r*sin(t)", or one
    # string per output, ("x1*c - x2*s", "x2*c + x1*s"), which the pipeline checks
    # and joins (parsing here would import sympy for every `adgen check`).
    expr: str | tuple[str, ...]
    inputs: tuple[str, ...] | None  # ("x", "y"); None: order of appearance
    params: tuple[tuple[str, float | None], ...]  # (("alpha", 0.5),)
    domains: tuple[tuple[str, float, float], ...]  # (("x", -2.0, 2.0),)
    save: str  # "inputs" or "intermediates", as `adgen emit --save`
    fuse: bool  # True: kernels under torch.compile, as `adgen emit --fuse`
    outputs: tuple[str, ...] | None = None  # ("u", "v"): names of several outputs


@dataclass(frozen=True)
class Project:
    """A parsed spec file; folders are resolved against the file's own folder."""

    config: Path  # /work/app/pyproject.toml
    label: str  # "pyproject.toml [tool.adgen]", used in messages and headers
    out: Path  # /work/app/ops
    tests: Path | None  # /work/app/tests/ops; None: next to the modules
    ops: tuple[OpEntry, ...]  # sorted by name


def find_config(folder: Path, explicit: Path | None = None) -> Path:
    """The spec file to use: `explicit` if given, else `adgen.toml` or a
    `pyproject.toml` with a `[tool.adgen]` table in `folder`."""
    if explicit is not None:
        if not explicit.is_file():
            raise InputError(f"--config {explicit}: no such file")
        return explicit
    candidates = [folder / SPEC_FILE] if (folder / SPEC_FILE).is_file() else []
    pyproject = folder / PYPROJECT
    if pyproject.is_file() and "adgen" in _read_toml(pyproject).get("tool", {}):
        candidates.append(pyproject)
    if len(candidates) > 1:
        raise InputError(
            f"both {SPEC_FILE} and {PYPROJECT} [tool.adgen] configure adgen in "
            f"{folder}; keep one, or pick one with --config"
        )
    if not candidates:
        raise InputError(
            f"no {SPEC_FILE} and no [tool.adgen] in {PYPROJECT} in {folder}; "
            "create one (see README) or pass --config FILE"
        )
    return candidates[0]


def load_project(config: Path) -> Project:
    """Read and check the spec file `config`."""
    document = _read_toml(config)
    if config.name == PYPROJECT:
        table = document.get("tool", {}).get("adgen")
        label = f"{PYPROJECT} [tool.adgen]"
        if table is None:
            raise InputError(f"{config}: no [tool.adgen] table")
    else:
        table, label = document, config.name
    _reject_unknown(table, _TOP_KEYS, label)
    root = config.resolve().parent
    out = _folder(table, "out", label)
    if out is None:
        raise InputError(
            f"{label}: missing key 'out' (the package folder, e.g. out = \"ops\")"
        )
    tests = _folder(table, "tests", label)
    ops_table = table.get("ops", {})
    if not isinstance(ops_table, dict):
        raise InputError(f"{label}: 'ops' must be a table of [ops.NAME] tables")
    if not ops_table:
        raise InputError(f'{label}: no ops; add an [ops.NAME] table with expr = "..."')
    ops = tuple(_op_entry(name, ops_table[name], label) for name in sorted(ops_table))
    return Project(
        config=config,
        label=label,
        out=root / out,
        tests=None if tests is None else root / tests,
        ops=ops,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None


def _reject_unknown(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise InputError(
                f"{where}: unknown key {key!r} (expected one of {', '.join(known)})"
            )


def _folder(table: dict[str, Any], key: str, where: str) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{where}: {key!r} must be a folder path string, got {value!r}"
        )
    path = Path(value)
    # Folders stay inside the project so a spec cannot point a build elsewhere.
    if path.is_absolute() or ".." in path.parts:
        raise InputError(
            f"{where}: {key!r} must be a relative path inside the project, got {value!r}"
        )
    return path


def _op_entry(name: str, table: Any, where: str) -> OpEntry:
    here = f"{where}: ops.{name}"
    if not isinstance(table, dict):
        raise InputError(f'{here} must be a table with expr = "..."')
    _reject_unknown(table, _OP_KEYS, here)
    expr = table.get("expr")
    if isinstance(expr, list) and all(isinstance(item, str) for item in expr):
        expr = tuple(expr)  # several outputs, one string each
    if not isinstance(expr, (str, tuple)):
        raise InputError(f"{here}: missing or non-string 'expr' (a string, or a list of strings for several outputs)")
    outputs = table.get("outputs")
    if outputs is not None and not (
        isinstance(outputs, list) and outputs and all(isinstance(n, str) for n in outputs)
    ):
        raise InputError(f'{here}: \'outputs\' must be a list of names, e.g. ["u", "v"]')
    inputs = table.get("inputs")
    if inputs is not None and not (
        isinstance(inputs, list) and inputs and all(isinstance(n, str) for n in inputs)
    ):
        raise InputError(f'{here}: \'inputs\' must be a list of names, e.g. ["x", "y"]')
    save = table.get("save", "inputs")
    if not isinstance(save, str):
        raise InputError(f"{here}: 'save' must be a string such as \"intermediates\"")
    fuse = table.get("fuse", False)
    if not isinstance(fuse, bool):
        raise InputError(f"{here}: 'fuse' must be true or false, got {fuse!r}")
    return OpEntry(
        name=name,
        expr=expr,
        inputs=None if inputs is None else tuple(inputs),
        params=_params(table.get("params", {}), here),
        domains=_domains(table.get("domain", {}), here),
        save=save,
        fuse=fuse,
        outputs=None if outputs is None else tuple(outputs),
    )


def _params(value: Any, here: str) -> tuple[tuple[str, float | None], ...]:
    # A list names required params; a table gives defaults.
    if isinstance(value, list) and all(isinstance(n, str) for n in value):
        return tuple((n, None) for n in value)
    if not isinstance(value, dict):
        raise InputError(
            f"{here}: 'params' must be a table of defaults, e.g. {{ alpha = 0.5 }}, "
            "or a list of names"
        )
    params = []
    for param, default in value.items():
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise InputError(
                f"{here}: params.{param} must be a number, got {default!r}"
            )
        if not math.isfinite(default):
            raise InputError(f"{here}: params.{param} must be finite, got {default!r}")
        params.append((param, float(default)))
    return tuple(params)


def _domains(value: Any, here: str) -> tuple[tuple[str, float, float], ...]:
    if not isinstance(value, dict):
        raise InputError(
            f"{here}: 'domain' must be a table, e.g. {{ x = [-2.0, 2.0] }}"
        )
    domains = []
    for input_name, bounds in value.items():
        if not (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds
            )
        ):
            raise InputError(
                f"{here}: domain.{input_name} must be [LO, HI], got {bounds!r}"
            )
        low, high = float(bounds[0]), float(bounds[1])
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise InputError(
                f"{here}: domain.{input_name} needs finite LO < HI, got {bounds!r}"
            )
        domains.append((input_name, low, high))
    return tuple(domains)
