"""The Python API: the whole pipeline (parse -> derive -> render -> write) behind
`emit` (files), `render` (text) and `load` (the op, in memory)."""

from __future__ import annotations

import linecache
import math
import os
import shlex
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .derive import Param, build_model, check_name
from .domain import PARAM_TEST_VALUE, Domain, choose_domains
from .errors import InputError
from .parse import parse_expression
from .render import SAVE_POLICIES, EmitOptions, RenderedOp, render_op
from .write import PlannedFile, write_files


@dataclass(frozen=True)
class Plan:
    """What one `emit` would write."""

    module: PlannedFile  # ops/sin.py
    test: PlannedFile  # ops/test_sin.py
    warnings: tuple[str, ...]  # ("could not find an interval ...",)


def plan_emit(
    expr: str,
    *,
    name: str | None = None,
    out: str | os.PathLike[str] = ".",
    inputs: Sequence[str] | None = None,
    params: Mapping[str, float | None] | None = None,
    domains: Mapping[str, tuple[float, float]] | None = None,
    tests_dir: str | os.PathLike[str] | None = None,
    save: str = "inputs",
    fuse: bool = False,
    regenerate: str | None = None,
) -> Plan:
    """Run the pipeline up to the text of both files, writing nothing.

    `regenerate` is the command the header names for regenerating the files
    (default: the equivalent `adgen emit` line)."""
    parsed = parse_expression(expr)
    if name is None:
        if parsed.call_name is None:
            raise InputError(
                f"cannot derive a name from {parsed.text!r}; pass --name NAME"
            )
        name = parsed.call_name
    check_name(name)
    if save not in SAVE_POLICIES:
        raise InputError(f"`--save` expects one of {', '.join(SAVE_POLICIES)}, got {save!r}")
    options = EmitOptions(save=save, fuse=fuse)
    param_list = tuple(Param(n, _float_or_none(n, v)) for n, v in (params or {}).items())
    model = build_model(
        parsed, name, tuple(inputs) if inputs is not None else None, param_list
    )
    given = tuple(Domain(n, float(lo), float(hi)) for n, (lo, hi) in (domains or {}).items())
    param_values = {
        p.name: PARAM_TEST_VALUE if p.default is None else p.default for p in param_list
    }
    chosen, domain_warnings = choose_domains(
        model.expr, model.gradient, model.inputs, param_values, given
    )
    out_dir = Path(out)
    test_dir = Path(tests_dir) if tests_dir is not None else out_dir
    module_path = out_dir / f"{name}.py"
    test_path = test_dir / f"test_{name}.py"
    command = regenerate or regenerate_command(
        parsed.text, name, inputs, param_list, given, out_dir, tests_dir, options
    )
    relative = Path(
        os.path.relpath(module_path.resolve(), test_path.parent.resolve())
    ).as_posix()
    rendered = render_op(model, chosen, command, relative, options)
    return Plan(
        module=PlannedFile(module_path, rendered.module_source),
        test=PlannedFile(test_path, rendered.test_source),
        warnings=domain_warnings,
    )


def emit(
    expr: str,
    *,
    name: str | None = None,
    out: str | os.PathLike[str] = ".",
    inputs: Sequence[str] | None = None,
    params: Mapping[str, float | None] | None = None,
    domains: Mapping[str, tuple[float, float]] | None = None,
    tests_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    save: str = "inputs",
    fuse: bool = False,
) -> list[Path]:
    """Write `out/NAME.py` and `tests_dir/test_NAME.py` for `expr`; return the paths
    whose content changed.

    >>> emit("x*exp(-alpha*x**2)*cos(y)", name="wave", params={"alpha": 0.5}, out="ops")
    """
    plan = plan_emit(
        expr,
        name=name,
        out=out,
        inputs=inputs,
        params=params,
        domains=domains,
        tests_dir=tests_dir,
        save=save,
        fuse=fuse,
    )
    for warning in plan.warnings:
        warnings.warn(warning, stacklevel=2)
    return write_files([plan.module, plan.test], force=force)


def render(
    expr: str,
    *,
    name: str | None = None,
    inputs: Sequence[str] | None = None,
    params: Mapping[str, float | None] | None = None,
    domains: Mapping[str, tuple[float, float]] | None = None,
    save: str = "inputs",
    fuse: bool = False,
) -> RenderedOp:
    """The module and test source for `expr`, without writing files (the test
    expects the module beside it)."""
    plan = plan_emit(
        expr, name=name, inputs=inputs, params=params, domains=domains, save=save, fuse=fuse
    )
    return RenderedOp(module_source=plan.module.content, test_source=plan.test.content)


def load(
    expr: str,
    *,
    name: str | None = None,
    inputs: Sequence[str] | None = None,
    params: Mapping[str, float | None] | None = None,
    domains: Mapping[str, tuple[float, float]] | None = None,
    save: str = "inputs",
    fuse: bool = False,
) -> Callable[..., Any]:
    """The op's public function, built in memory (for notebooks and scripts).

    The code run is the rendered module, the same text `emit` would write;
    `expr` itself is only ever parsed, never executed.

    >>> mish = load("x*tanh(softplus(x))", name="mish")
    >>> y = mish(torch.randn(3, requires_grad=True))
    """
    plan = plan_emit(
        expr, name=name, inputs=inputs, params=params, domains=domains, save=save, fuse=fuse
    )
    name = plan.module.path.stem
    source = plan.module.content
    filename = f"<adgen.load {name}>"
    # A real module, known to linecache and sys.modules, so that tracebacks,
    # inspect.getsource and pickling by qualified name work as for a file.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"adgen.loaded.{name}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - rendered code
    sys.modules[module.__name__] = module
    return getattr(module, name)


def regenerate_command(
    text: str,
    name: str,
    inputs: Sequence[str] | None,
    params: Sequence[Param],
    domains: Sequence[Domain],
    out: Path,
    tests_dir: str | os.PathLike[str] | None,
    options: EmitOptions = EmitOptions(),
) -> str:
    """The canonical `adgen emit` line for these options. Folders appear as given
    when relative; absolute ones are reduced to their last part, so that output
    never depends on the machine it was generated on."""
    words = ["adgen", "emit", "--name", name]
    if inputs is not None:
        words += ["--inputs", ",".join(inputs)]
    for p in params:
        words += ["--param", p.name if p.default is None else f"{p.name}={p.default!r}"]
    for d in domains:
        words += ["--domain", f"{d.name}={d.low!r}:{d.high!r}"]
    words += ["-o", _portable(out)]
    if tests_dir is not None:
        words += ["--tests-dir", _portable(Path(tests_dir))]
    if options.save != EmitOptions.save:
        words += ["--save", options.save]
    if options.fuse:
        words.append("--fuse")
    if text.startswith("-"):
        words.append("--")
    return " ".join(shlex.quote(w) for w in words + [text])


def _portable(path: Path) -> str:
    if path.is_absolute():
        return path.name or "."
    return path.as_posix()


def _float_or_none(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"--param {name}: default must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"--param {name}: default must be finite, got {value!r}")
    return number
