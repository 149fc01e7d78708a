"""The buffer-reusing kernels of Function.forward: exact strings for the planner's
rules, then every Function of every corpus op run on random inputs, checking
that no input is written to and that vmap with any mix of batched and unbatched
arguments (the case an unsound in-place op breaks) gives the unbatched values."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest
import sympy
import torch

from adgen.derive import Kernel
from adgen.functions import sigmoid
from adgen.inplace import print_in_place
from tests.corpus import CORPUS
from tests.helpers import load_module

x, y, t0, t1, alpha = sympy.symbols("x y t0 t1 alpha", real=True)


def _kernel(arguments, temporaries, outputs) -> Kernel:
    return Kernel(arguments=arguments, temporaries=tuple(temporaries), outputs=tuple(outputs))


def test_first_operation_on_an_input_allocates() -> None:
    printed = print_in_place(_kernel(("x",), [], [2 * sympy.sin(x) + 1]), frozenset())
    assert printed.outputs == ("torch.sin(x).mul_(2.0).add_(1.0)",)


def test_dead_temporary_is_taken_over_and_live_one_is_not() -> None:
    kernel = _kernel(("x",), [("t0", sympy.sin(x)), ("t1", sympy.exp(t0))], [t1 * t0 * x, t1])
    printed = print_in_place(kernel, frozenset())
    # t0 is still used by the first output: exp(t0) must not overwrite it.
    assert printed.statements == ("t0 = torch.sin(x)", "t1 = torch.exp(t0)")
    # t1 is returned as the second output, so it stays; t0 dies in the first.
    assert printed.outputs == ("t0.mul_(t1).mul_(x)", "t1")


def test_a_value_equal_to_a_live_temporary_gets_its_own_buffer() -> None:
    # 1.0*t0 is t0: returning t0 itself would let the second output's t0.mul_(x) change it.
    kernel = _kernel(("x",), [("t0", sympy.sin(x))], [sympy.Float(1.0) * t0, t0 * x])
    assert print_in_place(kernel, frozenset()).outputs == ("t0.clone()", "t0.mul_(x)")


def test_temporary_used_twice_in_a_statement_is_not_overwritten() -> None:
    kernel = _kernel(("x",), [("t0", sympy.sin(x))], [sympy.exp(t0) + t0])
    (output,) = print_in_place(kernel, frozenset()).outputs
    assert "t0.exp_()" not in output and output == "torch.exp(t0).add_(t0)"


def test_in_place_only_onto_a_value_that_depends_on_every_input_of_the_operand() -> None:
    # sin(x) must not absorb y in place: y may be batched or broadcast larger.
    kernel = _kernel(("x", "y"), [("t0", sympy.sin(x))], [t0 * y + t0 * x])
    (output,) = print_in_place(kernel, frozenset()).outputs
    assert not any(f"t0.{op}_(y" in output for op in ("mul", "add", "sub", "div"))
    # The dead t0 takes x in place; widening by y allocates.
    kernel = _kernel(("x", "y"), [("t0", sympy.sin(x))], [t0 * x * y])
    assert print_in_place(kernel, frozenset()).outputs == ("t0.mul_(x) * y",)
    # (x*y)*sin(x) in the printed order: x*y allocates, sin(x) multiplies in place.
    kernel = _kernel(("x", "y"), [], [x * y * sympy.sin(x)])
    assert print_in_place(kernel, frozenset()).outputs == ("(x * y).mul_(torch.sin(x))",)


def test_parameters_are_floats_and_cheap_forms_are_used() -> None:
    kernel = _kernel(("x", "alpha"), [("t0", 2 * alpha)], [sigmoid(t0 * x**2) / (1 + x) - 1.0 * x])
    printed = print_in_place(kernel, frozenset({"alpha"}))
    assert printed.statements == ("t0 = 2.0*alpha",)
    assert printed.outputs == ("x.square().mul_(t0).sigmoid_().div_(x + 1.0).sub_(x)",)


# -- every Function of the corpus -------------------------------------------------


@pytest.fixture(scope="module")
def families(corpus_dir: Path) -> list[tuple[str, list[type], list[str]]]:
    out = corpus_dir
    found = []
    for name, _, _ in CORPUS:
        module = load_module(out / f"{name}.py")
        classes = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, torch.autograd.Function)
            and "forward" in vars(value)
            and not value.__name__.startswith("_")
        ]
        public = inspect.signature(getattr(module, name)).parameters.values()
        params = [p.name for p in public if p.kind is inspect.Parameter.KEYWORD_ONLY]
        found.append((name, classes, params))
    return found


def _arguments(function: type, params: list[str]) -> tuple[list[str], list[object]]:
    """Tensor arguments, then the values of the others: 0.75 for each parameter
    (the public function's keyword-only ones), and for a Backward's `need` bits
    all set (-1: every input needs its gradient)."""
    parameters = inspect.signature(function.forward).parameters.values()
    if [p.name for p in parameters] == ["tensors"]:  # forward(*tensors): named as unpacked
        return _unpacked_tensors(function), []
    # `*saved`: table entries, given only under create_graph (test_recompute_or_save).
    names = [p.name for p in parameters if p.kind is not p.VAR_POSITIONAL]
    tensors = [n for n in names if n not in params and n != "need"]
    return tensors, [0.75 if n in params else -1 for n in names if n not in tensors]


def _unpacked_tensors(function: type) -> list[str]:
    """The names a `forward(*tensors)` gives its tensors, in order: the targets
    of `dtype, x, y = _opmath(*tensors)`, or of the lines unpacking `tensors`
    (or slices of it) after `dtype, *tensors = _opmath(*tensors)`."""
    body = ast.parse(textwrap.dedent(inspect.getsource(function.forward))).body[0].body
    names = []
    for statement in body:
        if not isinstance(statement, ast.Assign) or not isinstance(statement.targets[0], ast.Tuple):
            continue
        targets = [t.id for t in statement.targets[0].elts if isinstance(t, ast.Name)]
        value = statement.value
        if isinstance(value, ast.Call) and ast.unparse(value) == "_opmath(*tensors)":
            names += targets[1:]  # after dtype; none where `*tensors` follows it
        elif ast.unparse(value).startswith("tensors"):
            names += targets
    assert names, f"{function.__name__}.forward(*tensors) unpacks no names"
    return names


def test_forward_kernels_never_write_to_their_inputs(families) -> None:
    generator = torch.Generator().manual_seed(0)
    for name, classes, param_names in families:
        for function in classes:
            tensors, others = _arguments(function, param_names)
            # Broadcasting shapes: an in-place op onto the smaller one would fail.
            shapes = [(2, 1), (3,), (2, 3), (1, 3)]
            args = [
                torch.rand(shapes[i % len(shapes)], generator=generator, dtype=torch.float64) + 0.5
                for i in range(len(tensors))
            ]
            before = [a.clone() for a in args]
            function.forward(*args, *others)
            for arg, old, arg_name in zip(args, before, tensors):
                assert torch.equal(arg, old), f"{name}: {function.__name__} wrote to {arg_name}"


def test_forward_kernels_under_vmap_with_any_argument_batched(families) -> None:
    """vmap rejects an in-place op whose target is unbatched while the operand is
    batched; each argument batched alone and all together."""
    generator = torch.Generator().manual_seed(1)
    for name, classes, param_names in families:
        for function in classes:
            tensors, others = _arguments(function, param_names)
            args = [
                torch.rand((4, 3), generator=generator, dtype=torch.float64) + 0.5
                for _ in tensors
            ]
            patterns = [[i == j for j in range(len(tensors))] for i in range(len(tensors))]
            for batched in patterns + [[True] * len(tensors)]:
                inputs = [a if b else a[0] for a, b in zip(args, batched)]
                in_dims = tuple(0 if b else None for b in batched) + (None,) * len(others)
                result = torch.func.vmap(function.apply, in_dims=in_dims)(
                    *inputs, *others
                )
                expected = function.apply(
                    *[a if b else a[0].expand_as(a) for a, b in zip(args, batched)],
                    *others,
                )
                torch.testing.assert_close(result, expected, equal_nan=True, msg=lambda m: f"{name}: {function.__name__}: {m}")
