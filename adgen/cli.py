"""The `adgen` command line: argparse in front of the Python API; errors become
one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .api import plan_emit
from .domain import parse_domain
from .errors import AdgenError, InputError
from .render import SAVE_POLICIES
from .write import write_files

EXIT_OK = 0
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
    emit.add_argument("--param", action="append", default=[], metavar="NAME[=DEFAULT]", help="a float parameter, keyword-only, not differentiated (repeatable)")
    emit.add_argument("--domain", action="append", default=[], metavar="NAME=LO:HI", help="interval the generated test samples NAME from (repeatable)")
    emit.add_argument("--tests-dir", metavar="DIR", help="folder for test_NAME.py (default: the --out folder)")
    emit.add_argument("--save", choices=SAVE_POLICIES, default="inputs", help="what forward keeps for backward: the inputs (least memory) or also the derivatives (faster first-order backward)")
    emit.add_argument("--fuse", action="store_true", help="run the kernels under torch.compile (compiled on first use; eager with a warning where it fails)")
    emit.add_argument("--force", action="store_true", help="overwrite files that adgen did not generate")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
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


def _run(args: argparse.Namespace) -> int:
    if args.command != "emit":
        build_parser().print_help(sys.stderr)
        return InputError.exit_code
    plan = plan_emit(
        args.expression,
        name=args.name,
        out=args.out,
        inputs=_split_inputs(args.inputs),
        params=_parse_params(args.param),
        domains={d.name: (d.low, d.high) for d in map(parse_domain, args.domain)},
        tests_dir=args.tests_dir,
        save=args.save,
        fuse=args.fuse,
    )
    for warning in plan.warnings:
        print(f"adgen: warning: {warning}", file=sys.stderr)
    written = write_files([plan.module, plan.test], force=args.force)
    for planned in (plan.module, plan.test):
        state = "wrote" if planned.path in written else "unchanged"
        print(f"{state} {planned.path}")
    return EXIT_OK


def _split_inputs(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise InputError(f"`--inputs` expects names separated by commas, got {text!r}")
    return names


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
