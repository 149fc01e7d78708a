"""The `adgen` command line: argparse in front of the Python API; errors become
one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import timing
from .api import plan_emit
from .build import carry_out, describe, plan_build, relative_to
from .errors import AdgenError, InputError
from .write import Difference, differences, write_files

EXIT_OK = 0
EXIT_STALE = 1  # --check / check: the files on disk are not what adgen would write
EXIT_INTERNAL = 3  # a bug in adgen, not in the input


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="adgen",
        description="Generate torch.autograd.Function modules (with tests) from math expressions.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    emit = commands.add_parser(
        "emit",
        help="write NAME.py and test_NAME.py for one expression",
        description="Write OUT/NAME.py (the op) and TESTS/test_NAME.py (its pytest file).",
    )
    emit.add_argument("expression", metavar="EXPR", help="e.g. 'x*tanh(log(1 + exp(x)))'; use -- before an EXPR that starts with '-'")
    emit.add_argument("-o", "--out", default=".", metavar="DIR", help="folder for NAME.py (default: .)")
    emit.add_argument("--name", help="module and function name (default: the function of EXPR, as 'sin' for 'sin(x)')")
    emit.add_argument("--inputs", metavar="X,Y", help="tensor inputs in call order (default: order of appearance)")
    emit.add_argument("--outputs", metavar="U,V", help="names of the outputs of a tuple expression such as 'r*cos(t), r*sin(t)' (default: out0,out1,...)")
    emit.add_argument("--param", action="append", default=[], metavar="NAME[=DEFAULT]", help="a float parameter, keyword-only, not differentiated (repeatable)")
    emit.add_argument("--domain", action="append", default=[], metavar="NAME=LO:HI", help="interval the generated test samples NAME from (repeatable)")
    emit.add_argument("--tests-dir", metavar="DIR", help="folder for test_NAME.py (default: the --out folder)")
    # No argparse `choices`: they live in render (black, jinja2); the API checks the value.
    emit.add_argument("--save", default="inputs", metavar="POLICY", help="what forward keeps for backward: 'inputs' (the default: least memory) or 'intermediates', also the derivatives (faster first-order backward)")
    emit.add_argument("--fuse", action="store_true", help="run the kernels under torch.compile (compiled on first use; eager with a warning where it fails)")
    emit.add_argument("--force", action="store_true", help="overwrite files that adgen did not generate")
    _add_check_options(emit, "write nothing; exit 1 if NAME.py or test_NAME.py is missing, stale or edited by hand")

    build = commands.add_parser(
        "build",
        help="regenerate every op of the spec file and the package's __init__.py",
        description=(
            "Regenerate every op listed in adgen.toml or pyproject.toml [tool.adgen], "
            "write the package's __init__.py and remove the generated files of ops "
            "dropped from the spec. Files adgen did not generate are never touched."
        ),
    )
    build.add_argument("--config", metavar="FILE", help="the spec file (default: adgen.toml or pyproject.toml here)")
    build.add_argument("--force", action="store_true", help="overwrite files that adgen did not generate")
    _add_check_options(build, "write nothing; exit 1 if any file would change (same as `adgen check`)")
    _add_jobs_option(build)

    check = commands.add_parser(
        "check",
        help="exit 1 if the spec's generated files are stale, missing or edited by hand",
        description="Regenerate in memory and compare; exit 0 when every file is fresh, 1 otherwise (for CI and pre-commit).",
    )
    check.add_argument("--config", metavar="FILE", help="the spec file (default: adgen.toml or pyproject.toml here)")
    check.add_argument("--diff", action="store_true", help="also print a unified diff of each changed file")
    _add_jobs_option(check)
    for command in (emit, build, check):
        command.add_argument("--profile", action="store_true", help="print the time of each stage to stderr (as ADGEN_PROFILE=1)")
    return parser


def _add_jobs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-j", "--jobs", type=_positive_int, metavar="N", help="derive ops not in the cache in N processes (default: ADGEN_JOBS, else every core; 1: serially)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _add_check_options(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--check", action="store_true", help=text)
    parser.add_argument("--diff", action="store_true", help="with --check: print a unified diff of each changed file")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    started = time.perf_counter()
    timing.reset()
    try:
        return _run(build_parser().parse_args(argv))
    except AdgenError as error:
        print(f"adgen: error: {error.message}", file=sys.stderr)
        if error.detail:
            print(error.detail, file=sys.stderr)
        return error.exit_code
    except (RecursionError, MemoryError):
        print("adgen: error: expression is too large or too deeply nested", file=sys.stderr)
        return InputError.exit_code
    except Exception as error:  # a bug: say so in one line unless debugging
        if os.environ.get("ADGEN_DEBUG"):
            raise
        print(
            f"adgen: internal error: {type(error).__name__}: {error} "
            "(set ADGEN_DEBUG=1 for a traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        if timing.wanted():
            timing.print_table(sys.stderr, time.perf_counter() - started)


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "profile", False) or timing.wanted():
        timing.ask()
    if args.command == "emit":
        return _emit(args)
    if args.command in ("build", "check"):
        return _build(args, check_only=args.command == "check" or args.check)
    build_parser().print_help(sys.stderr)
    return InputError.exit_code


def _emit(args: argparse.Namespace) -> int:
    plan = plan_emit(
        args.expression,
        name=args.name,
        out=args.out,
        inputs=_split_inputs(args.inputs),
        outputs=_split_inputs(args.outputs, "--outputs"),
        params=_parse_params(args.param),
        domains=_parse_domains(args.domain),
        tests_dir=args.tests_dir,
        save=args.save,
        fuse=args.fuse,
    )
    for warning in plan.warnings:
        print(f"adgen: warning: {warning}", file=sys.stderr)
    files = [plan.module, plan.test]
    if args.check:
        with timing.stage("write / compare"):
            found = differences(files)
        return _report(found, Path(), args.diff, "rerun without --check")
    with timing.stage("write / compare"):
        written = write_files(files, force=args.force)
    for planned in files:
        state = "wrote" if planned.path in written else "unchanged"
        print(f"{state} {planned.path}")
    return EXIT_OK


def _build(args: argparse.Namespace, check_only: bool) -> int:
    plan = plan_build(args.config, jobs=args.jobs)
    root = plan.project.config.resolve().parent
    for warning in plan.warnings:
        print(f"adgen: warning: {plan.project.label}: {warning}", file=sys.stderr)
    files = list(plan.files)
    if check_only:
        with timing.stage("write / compare"):
            found = differences(files, list(plan.removals))
        return _report(found, root, args.diff, "run `adgen build`")
    with timing.stage("write / compare"):
        result = carry_out(plan, force=args.force)
    for planned in files:
        state = "wrote" if planned.path in result.written else "unchanged"
        print(f"{state} {relative_to(planned.path, root)}")
    for path in result.removed:
        print(f"removed {relative_to(path, root)}")
    return EXIT_OK


def _report(found: list[Difference], root: Path, show_diff: bool, fix: str) -> int:
    """Print what --check found, paths relative to `root`; the exit code says
    whether anything would change."""
    if not found:
        print("adgen: generated files are up to date")
        return EXIT_OK
    for difference, line in zip(found, describe(found, root)):
        print(line)
        if show_diff:
            sys.stdout.writelines(_unified_diff(difference))
    count = f"{len(found)} file" + ("s" if len(found) > 1 else "")
    print(f"adgen: {count} would change; {fix}")
    return EXIT_STALE


def _unified_diff(difference: Difference) -> list[str]:
    try:
        current = difference.path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        current = ""
    lines = difflib.unified_diff(
        current.splitlines(True),
        (difference.expected or "").splitlines(True),
        fromfile=f"{difference.path} (on disk)",
        tofile=f"{difference.path} (fresh)",
    )
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def _split_inputs(text: str | None, option: str = "--inputs") -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise InputError(f"`{option}` expects names separated by commas, got {text!r}")
    return names


def _parse_domains(texts: list[str]) -> dict[str, tuple[float, float]]:
    if not texts:
        return {}
    from .domain import parse_domain  # imports sympy: only when --domain is given

    return {d.name: (d.low, d.high) for d in map(parse_domain, texts)}


def _parse_params(texts: list[str]) -> dict[str, float | None]:
    params: dict[str, float | None] = {}
    for text in texts:
        name, default = _parse_param(text)
        if name in params:
            raise InputError(f"--param {name!r} is given twice")
        params[name] = default
    return params


def _parse_param(text: str) -> tuple[str, float | None]:
    name, equals, default = text.partition("=")
    name = name.strip()
    if not name:
        raise InputError(f"`--param` expects NAME or NAME=DEFAULT, got {text!r}")
    if not equals:
        return name, None
    try:
        return name, float(default)
    except ValueError:
        raise InputError(f"`--param {text}`: DEFAULT must be a number") from None
