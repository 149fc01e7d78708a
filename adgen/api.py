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
from typing import TYPE_CHECKING, Any

# cache first: it fingerprints the generator's files when adgen is imported.
from . import cache, timing
from .errors import InputError
from .write import PlannedFile, write_files

# The stages (parse, derive, domain, select, render) import sympy, black and
# jinja2, which cost most of a warm command's second: they are imported inside
# the functions that run on a cache miss, never on a hit.
if TYPE_CHECKING:
    from .derive import Param
    from .domain import Domain
    from .parse import ParsedExpression
    from .render import EmitOptions, RenderedOp


@dataclass(frozen=True)
class Plan:
    """What one `emit` would write."""

    module: PlannedFile  # ops/sin.py
    test: PlannedFile  # ops/test_sin.py
    warnings: tuple[str, ...]  # ("could not find an interval ...",)


# The arguments of one op's request, in the order `_Given` takes them.
_GIVEN_FIELDS = (
    "expr", "name", "out", "inputs", "outputs", "params", "domains", "tests_dir",
    "save", "fuse", "regenerate",
)


@dataclass(frozen=True)
class _Given:
    """One op's request exactly as the caller gave it, unchecked.

    The cache key is made of it, so a hit parses nothing: an invalid request is
    never stored, so its key can only hit for a request that was valid."""

    expr: object  # "x*exp(-alpha*x**2)*cos(y)", or a list of strings
    name: object  # "wave", or None
    out: object  # "ops"
    inputs: object  # ["x", "y"], or None
    outputs: object  # ["u", "v"], or None
    params: object  # {"alpha": 0.5}, or None
    domains: object  # {"x": (-2.0, 2.0)}, or None
    tests_dir: object  # "tests", or None
    save: object  # "inputs"
    fuse: object  # False
    regenerate: object  # "adgen build (op 'wave' of adgen.toml)", or None

    def cache_fields(self, with_test: bool) -> dict[str, object] | None:
        """The request as JSON values, for the cache key; None when a value is of a
        type the key cannot hold exactly (such a request is not cached)."""
        try:
            fields: dict[str, object] = {f: _plain(getattr(self, f)) for f in _GIVEN_FIELDS}
            out = Path(self.out)  # type: ignore[arg-type]
            tests = out if self.tests_dir is None else Path(self.tests_dir)  # type: ignore[arg-type]
            # The folders reach the text only as the Regenerate line names them,
            # so the same op built in another checkout is the same entry.
            fields["out"] = _portable(out)
            fields["tests_dir"] = None if self.tests_dir is None else _portable(tests)
            if with_test:
                # The test imports the module by its path from the test's folder,
                # which depends on the file system (symbolic links) too.
                fields["folders"] = os.path.relpath(out.resolve(), tests.resolve())
        except (_NotPlain, TypeError, ValueError, OSError, RuntimeError):
            # Not cached (RuntimeError: a loop of links, or absurd nesting);
            # planning reports an invalid value.
            return None
        fields["parts"] = "module+test" if with_test else "module"
        return fields


class _NotPlain(Exception):
    """A value the cache key cannot hold exactly."""


def _plain(value: object) -> object:
    """`value` as JSON values that tell apart every two inputs that could be treated
    differently: exact types only (a subclass or a numpy number raises _NotPlain),
    a dict as {"items": [[key, value], ...]} in its own order (params are ordered)."""
    if value is None or type(value) in (str, bool, int):
        return value
    if type(value) is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise _NotPlain  # invalid anyway (JSON has no NaN)
        return value
    if type(value) in (list, tuple):
        return [_plain(item) for item in value]  # type: ignore[union-attr]
    if type(value) is dict:
        return {"items": [[_plain(k), _plain(v)] for k, v in value.items()]}  # type: ignore[union-attr]
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if type(path) is str:
            return path  # a folder: Path(out) treats "ops" and Path("ops") alike
    raise _NotPlain


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
    command: str  # the Regenerate line
    module_from_tests: str  # "../ops/wave.py": the module's path from the test's folder


@dataclass(frozen=True)
class _Generated:
    """One op's text and where it goes."""

    name: str  # "wave"
    module_path: Path  # ops/wave.py
    test_path: Path  # tests/test_wave.py
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
    given = _Given(
        expr, name, out, inputs, outputs, params, domains, tests_dir, save, fuse, regenerate
    )
    generated = _generate(given, with_test=True)
    assert generated is not None and generated.test is not None
    return _plan(generated)


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
    """`plan_emit`'s result when the cache holds it, else None: nothing is checked,
    parsed or derived (only a valid request is ever stored; `plan_emit` reports
    an invalid one)."""
    given = _Given(
        expr, name, out, inputs, outputs, params, domains, tests_dir, save, fuse, regenerate
    )
    generated = _generate(given, with_test=True, lookup_only=True)
    return None if generated is None else _plan(generated)


def _plan(generated: _Generated) -> Plan:
    assert generated.test is not None
    return Plan(
        module=PlannedFile(generated.module_path, generated.module),
        test=PlannedFile(generated.test_path, generated.test),
        warnings=generated.warnings,
    )


def _request(given: _Given) -> _Request:
    """Parse and check the cheap part of the input (no derivation)."""
    from .derive import Param, check_name  # imports sympy: only on a cache miss
    from .domain import checked_domain
    from .parse import joined_outputs, parse_expression
    from .render import SAVE_POLICIES, EmitOptions

    expr = joined_outputs(given.expr)
    with timing.stage("parse"):
        parsed = parse_expression(expr)
    name = given.name
    if name is None:
        if parsed.call_name is None:
            raise InputError(
                f"cannot derive a name from {parsed.text!r}; pass --name NAME"
            )
        name = parsed.call_name
    check_name(name)  # type: ignore[arg-type]
    save, fuse = given.save, given.fuse
    if save not in SAVE_POLICIES:
        raise InputError(f"`--save` expects one of {', '.join(SAVE_POLICIES)}, got {save!r}")
    options = EmitOptions(save=save, fuse=fuse)  # type: ignore[arg-type]
    params: Mapping[str, float | None] = given.params or {}  # type: ignore[assignment]
    domains: Mapping[str, tuple[float, float]] = given.domains or {}  # type: ignore[assignment]
    param_list = tuple(Param(n, _float_or_none(n, v)) for n, v in params.items())
    domain_list = tuple(
        checked_domain(n, _float_bound(n, lo), _float_bound(n, hi), f"domains[{n!r}] = ({lo!r}, {hi!r})")
        for n, (lo, hi) in domains.items()
    )
    inputs: Sequence[str] | None = given.inputs  # type: ignore[assignment]
    outputs: Sequence[str] | None = given.outputs  # type: ignore[assignment]
    tests_dir: str | os.PathLike[str] | None = given.tests_dir  # type: ignore[assignment]
    module_path, test_path = _paths(given, name)  # type: ignore[arg-type]
    command = given.regenerate or regenerate_command(
        parsed.text, name, inputs, param_list, domain_list, Path(given.out),  # type: ignore[arg-type]
        tests_dir, options, outputs,
    )
    return _Request(
        expr=expr,
        parsed=parsed,
        name=name,  # type: ignore[arg-type]
        inputs=tuple(inputs) if inputs is not None else None,
        outputs=tuple(outputs) if outputs is not None else None,
        params=param_list,
        domains=domain_list,
        options=options,
        command=command,  # type: ignore[arg-type]
        module_from_tests=_module_from_tests(module_path, test_path),
    )


def _paths(given: _Given, name: str) -> tuple[Path, Path]:
    """Where the op's module and test go: OUT/NAME.py and TESTS/test_NAME.py."""
    out = Path(given.out)  # type: ignore[arg-type]
    tests = out if given.tests_dir is None else Path(given.tests_dir)  # type: ignore[arg-type]
    return out / f"{name}.py", tests / f"test_{name}.py"


def _module_from_tests(module_path: Path, test_path: Path) -> str:
    """The module's path from the test's folder, as the test names it."""
    return Path(
        os.path.relpath(module_path.resolve(), test_path.parent.resolve())
    ).as_posix()


def _generate(given: _Given, with_test: bool, lookup_only: bool = False) -> _Generated | None:
    """The op's text: from the cache, or (unless `lookup_only`, then None) checked,
    derived, rendered and then stored."""
    store = cache.default_cache()
    with timing.stage("cache lookup"):
        fields = given.cache_fields(with_test)
        key = None if fields is None else store.key(fields)
        found = _found(store.get(key), given, with_test)
    if found is not None:
        timing.count("cache hit")
        return found
    if lookup_only:
        return None  # not counted as a miss: plan_emit looks again and counts it
    request = _request(given)
    timing.count("cache miss")
    generated = _derive(given, request, with_test)
    with timing.stage("cache store"):
        store.put(
            key,
            {
                "name": generated.name,
                "module": generated.module,
                "test": generated.test,
                "warnings": list(generated.warnings),
                "module_from_tests": request.module_from_tests if with_test else None,
            },
        )
    return generated


def _found(payload: dict[str, Any] | None, given: _Given, with_test: bool) -> _Generated | None:
    """The entry's text, unless it is of another shape or was made for another
    layout of folders (then it is a miss)."""
    if payload is None:
        return None
    name, module, test = payload.get("name"), payload.get("module"), payload.get("test")
    notes, relative = payload.get("warnings"), payload.get("module_from_tests")
    if not (
        isinstance(name, str)
        and isinstance(module, str)
        and (isinstance(test, str) or not with_test)
        and isinstance(notes, list)
        and all(isinstance(n, str) for n in notes)
    ):
        return None  # a well-formed entry of another shape: not ours to trust
    module_path, test_path = _paths(given, name)
    # The key holds the folders' relation; the module file itself may be a link.
    if with_test and relative != _module_from_tests(module_path, test_path):
        return None
    return _Generated(
        name, module_path, test_path, module, test if with_test else None, tuple(notes)
    )


def _derive(given: _Given, request: _Request, with_test: bool) -> _Generated:
    """Derive and render the op's text (a cache miss)."""
    # These stages import sympy, mpmath, black and jinja2: only on a cache miss.
    from .derive import build_model
    from .domain import PARAM_TEST_VALUE, Domain, choose_domains
    from .render import render_module, render_test
    from .select import FormSelector

    param_values = {
        p.name: PARAM_TEST_VALUE if p.default is None else p.default for p in request.params
    }
    given_domains = {d.name: (d.low, d.high) for d in request.domains}
    with timing.stage("derive"):  # select, nested, times itself
        model = build_model(
            request.parsed, request.name, request.inputs, request.params, request.outputs,
            chooser=lambda inputs: FormSelector(inputs, given_domains, param_values),
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
        named = {d.name for d in request.domains}
        placeholders = tuple(Domain(n, -1.0, 1.0) for n in model.inputs if n not in named)
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
    module_path, test_path = _paths(given, request.name)
    return _Generated(request.name, module_path, test_path, module, test, tuple(notes))


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
    from .render import RenderedOp  # imports black and jinja2: not at adgen's import

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
    given = _Given(expr, name, ".", inputs, outputs, params, domains, None, save, fuse, None)
    # Only the module: no test file, so no test domains to probe.
    generated = _generate(given, with_test=False)
    assert generated is not None
    name, source = generated.name, generated.module
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
    options: EmitOptions | None = None,
    outputs: Sequence[str] | None = None,
) -> str:
    """The canonical `adgen emit` line for these options (default: EmitOptions()).
    Folders appear as given when relative; absolute ones are reduced to their
    last part, so that output never depends on the machine it was generated on."""
    from .render import EmitOptions  # imports black: regenerate lines are made on a miss

    options = options or EmitOptions()
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
