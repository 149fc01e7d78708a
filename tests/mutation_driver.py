"""Run a generated test file against many mutants of its op in one process.

    python tests/mutation_driver.py FOLDER NAME [--first-outputs]

A mutant scales one output of one method (forward, backward or jvp) of one
Function class by 1.001, or one entry of the partial-derivative tables that
the module's `_partials` helper returns (df.xy), or one result of its
`_hessian_times` or `_third_times` (∂²f·a, ∂³f·a·b): a wrapper appended to the
module, so every output can be reached without knowing how the template
writes it. First
a recording run of the unmodified op finds which (class, method, output) the
generated tests call with a tensor result; then each of those is mutated in
turn (with --first-outputs, only the first output of each method that is
ever a tensor). Prints
one JSON object: the outputs found, the survivors, and the
methods of the Function classes that the tests never called.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest

from adgen.contract import HELPERS

SCALE = 1.001
METHODS = ("forward", "backward", "jvp")

_RECORDER = '''

# --- mutation driver: record which outputs of which methods the tests use
import torch as _torch

_MUTATION_SEEN = set()


def _mutation_record(cls, method):
    original = getattr(cls, method)

    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        outputs = result if isinstance(result, tuple) else (result,)
        for index, value in enumerate(outputs):
            if isinstance(value, _torch.Tensor):
                _MUTATION_SEEN.add((cls.__name__, method, index))
        return result

    setattr(cls, method, staticmethod(wrapped))


for _cls in [v for v in list(globals().values()) if isinstance(v, type)
             and issubclass(v, _torch.autograd.Function) and v is not _torch.autograd.Function]:
    for _method in {methods}:
        if _method in vars(_cls):
            _mutation_record(_cls, _method)
'''

_MUTANT = '''

# --- mutation driver: scale output {index} of {cls}.{method} by {scale}
def _mutation_scaled(original):
    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        if isinstance(result, tuple):
            return tuple(v * {scale} if i == {index} and v is not None else v
                         for i, v in enumerate(result))
        return result * {scale}

    return staticmethod(wrapped)


{cls}.{method} = _mutation_scaled({cls}.{method})
'''


_PARTIAL_MUTANT = '''

# --- mutation driver: scale the table entry {field} of _partials by {scale}
_mutation_unscaled_partials = _partials


def _partials(*args):
    table = _mutation_unscaled_partials(*args)
    if table.{field} is None:
        return table
    return table._replace({field}=table.{field} * {scale})
'''

# Several outputs: _partials returns a _Table of each output's entries.
_OUTPUT_PARTIAL_MUTANT = '''

# --- mutation driver: scale the table entry {output}.{field} of _partials by {scale}
_mutation_unscaled_partials = _partials


def _partials(*args):
    tables = _mutation_unscaled_partials(*args)
    if tables.{output}.{field} is None:
        return tables
    scaled = tables.{output}._replace({field}=tables.{output}.{field} * {scale})
    return tables._replace({output}=scaled)
'''

# The helpers for ∂²f·a and ∂³f·a·b (adgen/contract.py): one result per input.
_PRODUCT_MUTANT = '''

# --- mutation driver: scale result {index} of {helper} by {scale}
_mutation_unscaled_product = {helper}


def {helper}(*args):
    results = _mutation_unscaled_product(*args)
    return tuple(r * {scale} if i == {index} and r is not None else r for i, r in enumerate(results))
'''


def run_tests(folder: Path, module: Path, source: str, extra: list[str]) -> int:
    """pytest on `folder` with `module` holding `source`; its exit code."""
    module.write_text(source)
    for key in [k for k, m in sys.modules.items() if _inside(m, folder)]:
        del sys.modules[key]  # a fresh import of the test file and the op
    arguments = [str(folder), "-q", "-x", "-p", "no:cacheprovider", "--import-mode=importlib"]
    return int(pytest.main(arguments + ["-k", "not compile"] + extra))


def _inside(module: object, folder: Path) -> bool:
    path = getattr(module, "__file__", None)
    return path is not None and Path(path).resolve().parent == folder.resolve()


def main(argv: list[str]) -> None:
    folder, name = Path(argv[0]), argv[1]
    module = folder / f"{name}.py"
    original = module.read_text()
    alias = f"adgen_generated_{name}"
    recorder = original + _RECORDER.replace("{methods}", repr(METHODS))
    baseline = run_tests(folder, module, recorder, [])
    seen = sorted(sys.modules[alias]._MUTATION_SEEN) if alias in sys.modules else []
    classes = sorted(
        v.__name__
        for v in vars(sys.modules[alias]).values()
        if isinstance(v, type) and v.__module__ == alias and hasattr(v, "apply")
        and not v.__name__.endswith("ForCompile")
    ) if alias in sys.modules else []
    called = {(c, m) for c, m, _ in seen}
    defined = {
        (c, m) for c in classes for m in METHODS if m in vars(getattr(sys.modules[alias], c))
    } if alias in sys.modules else set()
    mutated = seen
    if "--first-outputs" in argv:  # the first output that is ever a tensor
        firsts = {}
        for cls, method, index in seen:
            firsts.setdefault((cls, method), index)
        mutated = [(c, m, i) for (c, m), i in sorted(firsts.items())]
    survivors = []
    for cls, method, index in mutated:
        mutant = original + _MUTANT.format(cls=cls, method=method, index=index, scale=SCALE)
        if run_tests(folder, module, mutant, ["--tb=no"]) != 1:
            survivors.append([cls, method, index])
    table = getattr(sys.modules.get(alias), "_Partials", None)
    per_output = getattr(sys.modules.get(alias), "_Table", None)
    if per_output is not None:  # several outputs: output.field
        fields = [f"{o}.{f}" for o in table._fields for f in per_output._fields]
    else:
        fields = list(table._fields) if table is not None else []
    for field in fields:
        if "." in field:
            output, entry = field.split(".")
            mutant = original + _OUTPUT_PARTIAL_MUTANT.format(
                output=output, field=entry, scale=SCALE
            )
        else:
            mutant = original + _PARTIAL_MUTANT.format(field=field, scale=SCALE)
        if run_tests(folder, module, mutant, ["--tb=no"]) != 1:
            survivors.append(["_partials", field])
    products = []  # (helper, result index)
    for helper in HELPERS.values():
        function = getattr(sys.modules.get(alias), helper, None)
        if function is not None:  # a_x, a_y, ...: one result per component of a
            first_vector = [p for p in inspect.signature(function).parameters if p.startswith("a_")]
            products += [(helper, index) for index in range(len(first_vector))]
    for helper, index in products:
        mutant = original + _PRODUCT_MUTANT.format(helper=helper, index=index, scale=SCALE)
        if run_tests(folder, module, mutant, ["--tb=no"]) != 1:
            survivors.append([helper, index])
    module.write_text(original)
    print(
        "MUTATION-RESULT "
        + json.dumps(
            {
                "baseline": baseline,
                "outputs": len(seen),
                "mutants": len(mutated),
                "table_entries": len(fields),
                "product_results": len(products),
                "survivors": survivors,
                "never_called": sorted(defined - called),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
