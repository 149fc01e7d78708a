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

# cache first: it fingerprints the generator's files before the stages are imported.
from . import cache, timing
from .derive import Param, build_model, check_name
from .domain import PARAM_TEST_VALUE, Domain, checked_domain, choose_domains
from .errors import InputError
from .parse import ParsedExpression, joined_outputs, parse_expression
from .select import FormSelector
from .render import SAVE_POLICIES, EmitOptions, RenderedOp, render_module, render_test
from .write import PlannedFile, write_files


@dataclass(frozen=True)
class Plan:
    """What one `emit` would write."""

    module: PlannedFile  # ops/sin.py
    test: PlannedFile  # ops/test_sin.py
    warnings: tuple[str, ...]  # ("could not find an interval ...",)


@dataclass(frozen=True)
class _Request:
    """One op's request, checked and normalised: everything that decides its text."""

    expr: str  # the user's text, as given
    parsed: ParsedExpression
    name: str  # "wave"
    inputs: tuple[str, ...] | None  # None: order of appearance
    outputs: tuple[str, ...] | None  # ("u", "v"): names of a tuple's outputs; None: out0, ...
    params: tuple[Param, ...]
    domains: tuple[Domain, ...]  # the domains given; the others are chosen
    options: EmitOptions
    module_path: Path  # ops/wave.py
    test_path: Path  # tests/test_wave.py
    command: str  # the Regenerate line
    module_from_tests: str  # "../ops/wave.py": the module's path from the test's folder

    def cache_fields(self, with_test: bool) -> dict[str, object]:
        """The request as JSON-able values, for the cache key."""
        return {
            "parts": "module+test" if with_test else "module",
            "expr": self.expr,
            "name": self.name,
            "inputs": self.inputs,
            **({"outputs": self.outputs} if self.outputs is not None else {}),
            "params": [[p.name, p.default] for p in self.params],
            "domains": [[d.name, d.low, d.high] for d in self.domains],
            "save": self.options.save,
            "fuse": self.options.fuse,
            "command": self.command,
            "module_from_tests": self.module_from_tests if with_test else None,
        }


@dataclass(frozen=True)
class _Generated:
    module: str
    test: str | None  # None when only the module was asked for
    warnings: tuple[str, ...]


def plan_emit(
    expr: str | Sequence[str],
    *,
    name: str | None = None,
    out: str | os.PathLike[str] = ".",
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    params: Mapping[str, float | None] | None = None,
    domains: Mapping[str, tuple[float, float]] | None = None,
    tests_dir: str | os.PathLike[str] | None = None,
    save: str = "inputs",
    fuse: bool = False,
    regenerate: str | None = None,
) -> Plan:
    """Run the pipeline up to the text of both files, writing nothing.

    `regenerate` is the command the header names for regenerating the files
    (default: the equivalent `adgen emit` line). The text comes from the cache
    when this generator already produced it for the same request."""
    request = _request(
        expr, name, out, inputs, params, domains, tests_dir, save, fuse, regenerate, outputs
    )
    generated = _generate(request, with_test=True)
    assert generated.test is not None
    return Plan(
        module=PlannedFile(request.module_path, generated.module),
        test=PlannedFile(request.test_path, generated.test),
        warnings=generated.warnings,
    )


def cached_plan(
    expr: str | Sequence[str],
    *,
    name: str | None = None,
    out: str | os.PathLike[str] = ".",
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    params: Mapping[str, float | None] | None = None,
    domains: Mapping[str, tuple[float, float]] | None = None,
    tests_dir: str | os.PathLike[str] | None = None,
    save: str = "inputs",
    fuse: bool = False,
    regenerate: str | None = None,
) -> Plan | None:
    """`plan_emit`'s result when the cache holds it, else None (nothing derived).
    Raises what `plan_emit` raises for input it rejects before deriving."""
    request = _request(
        expr, name, out, inputs, params, domains, tests_dir, save, fuse, regenerate, outputs
    )
    found = _lookup(cache.default_cache(), request, with_test=True)
    if found is None or found.test is None:
        return None  # not counted as a miss: plan_emit looks again and counts it
    timing.count("cache hit")
    return Plan(
        module=PlannedFile(request.module_path, found.module),
        test=PlannedFile(request.test_path, found.test),
        warnings=found.warnings,
    )


def _request(
    expr: str | Sequence[str],
    name: str | None,
    out: str | os.PathLike[str],
    inputs: Sequence[str] | None,
    params: Mapping[str, float | None] | None,
    domains: Mapping[str, tuple[float, float]] | None,
    tests_dir: str | os.PathLike[str] | None,
    save: str,
    fuse: bool,
    regenerate: str | None,
    outputs: Sequence[str] | None = None,
) -> _Request:
    """Parse and check the cheap part of the input (no derivation)."""
    expr = joined_outputs(expr)
    with timing.stage("parse"):
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
    given = tuple(
        checked_domain(n, _float_bound(n, lo), _float_bound(n, hi), f"domains[{n!r}] = ({lo!r}, {hi!r})")
        for n, (lo, hi) in (domains or {}).items()
    )
    out_dir = Path(out)
    test_dir = Path(tests_dir) if tests_dir is not None else out_dir
    module_path = out_dir / f"{name}.py"
    test_path = test_dir / f"test_{name}.py"
    command = regenerate or regenerate_command(
        parsed.text, name, inputs, param_list, given, out_dir, tests_dir, options, outputs
    )
    relative = Path(
        os.path.relpath(module_path.resolve(), test_path.parent.resolve())
    ).as_posix()
    return _Request(
        expr=expr,
        parsed=parsed,
        name=name,
        inputs=tuple(inputs) if inputs is not None else None,
        outputs=tuple(outputs) if outputs is not None else None,
        params=param_list,
        domains=given,
        options=options,
        module_path=module_path,
        test_path=test_path,
        command=command,
        module_from_tests=relative,
    )


def _lookup(store: cache.TextCache, request: _Request, with_test: bool) -> _Generated | None:
    with timing.stage("cache lookup"):
        payload = store.get(store.key(request.cache_fields(with_test)))
    if payload is None:
        return None
    module, test, notes = payload.get("module"), payload.get("test"), payload.get("warnings")
    if not (
        isinstance(module, str)
        and (isinstance(test, str) or not with_test)
        and isinstance(notes, list)
        and all(isinstance(n, str) for n in notes)
    ):
        return None  # a well-formed entry of another shape: not ours to trust
    return _Generated(module, test if with_test else None, tuple(notes))


def _generate(request: _Request, with_test: bool) -> _Generated:
    """The op's text: from the cache, or derived, rendered and then stored."""
    store = cache.default_cache()
    found = _lookup(store, request, with_test)
    if found is not None:
        timing.count("cache hit")
        return found
    timing.count("cache miss")
    param_values = {
        p.name: PARAM_TEST_VALUE if p.default is None else p.default for p in request.params
    }
    given = {d.name: (d.low, d.high) for d in request.domains}
    with timing.stage("derive"):  # select, nested, times itself
        model = build_model(
            request.parsed, request.name, request.inputs, request.params, request.outputs,
            chooser=lambda inputs: FormSelector(inputs, given, param_values),
        )
    # Several outputs: every output and its gradient must be real and finite.
    first, rest = model.exprs[0], tuple(model.exprs[1:]) + model.gradient
    if with_test:
        with timing.stage("domain"):
            chosen, notes = choose_domains(
                first, rest, model.inputs, param_values, request.domains
            )
    else:
        # Only the module: check the names of the domains given, probe nothing
        # (every input counts as given, so choose_domains returns at once).
        given = {d.name for d in request.domains}
        placeholders = tuple(Domain(n, -1.0, 1.0) for n in model.inputs if n not in given)
        choose_domains(
            first, rest, model.inputs, param_values,
            request.domains + placeholders,
        )
        notes = ()
    with timing.stage("render module"):
        module = render_module(model, request.command, request.options)
    test = None
    if with_test:
        with timing.stage("render test"):
            test = render_test(model, chosen, request.command, request.module_from_tests)
    generated = _Generated(module, test, tuple(notes))
    with timing.stage("cache store"):
        store.put(
            store.key(request.cache_fields(with_test)),
            {"module": module, "test": test, "warnings": list(generated.warnings)},
        )
    return generated


def emit(
    expr: str | Sequence[str],
    *,
    name: str | None = None,
    out: str | os.PathLike[str] = ".",
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
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
        outputs=outputs,
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
    expr: str | Sequence[str],
    *,
    name: str | None = None,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    params: Mapping[str, float | None] | None = None,
    domains: Mapping[str, tuple[float, float]] | None = None,
    save: str = "inputs",
    fuse: bool = False,
) -> RenderedOp:
    """The module and test source for `expr`, without writing files (the test
    expects the module beside it)."""
    plan = plan_emit(
        expr, name=name, inputs=inputs, outputs=outputs, params=params, domains=domains,
        save=save, fuse=fuse,
    )
    return RenderedOp(module_source=plan.module.content, test_source=plan.test.content)


def load(
    expr: str | Sequence[str],
    *,
    name: str | None = None,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
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
    request = _request(
        expr, name, ".", inputs, params, domains, None, save, fuse, None, outputs
    )
    name = request.name
    # Only the module: no test file, so no test domains to probe.
    source = _generate(request, with_test=False).module
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
    outputs: Sequence[str] | None = None,
) -> str:
    """The canonical `adgen emit` line for these options. Folders appear as given
    when relative; absolute ones are reduced to their last part, so that output
    never depends on the machine it was generated on."""
    words = ["adgen", "emit", "--name", name]
    if inputs is not None:
        words += ["--inputs", ",".join(inputs)]
    if outputs is not None:
        words += ["--outputs", ",".join(outputs)]
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


def _float_bound(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"domains[{name!r}]: bounds must be numbers, got {value!r}") from None


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
