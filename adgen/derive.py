"""Stage 2: sympy expression -> OpModel (derivatives and the kernels that compute them).

Only this module knows calculus. Each kernel is straight-line code: the outputs a
Function method returns, written over named arguments, with common subexpressions
shared through `sympy.cse`. No `simplify()`: its running time is unbounded.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

import sympy

from .errors import InputError
from .parse import ParsedExpression


@dataclass(frozen=True)
class Param:
    """A non-tensor float argument of the op."""

    name: str  # "alpha"
    default: float | None  # 0.5, or None when the caller must pass it


@dataclass(frozen=True)
class Kernel:
    """Outputs of one Function method as straight-line code over named arguments."""

    arguments: tuple[str, ...]  # ("grad", "x", "y", "alpha")
    temporaries: tuple[tuple[str, sympy.Expr], ...]  # (("t0", exp(-alpha*x**2)), ...)
    outputs: tuple[sympy.Expr, ...]  # (grad*t0*(1 - 2*alpha*x**2), ...), in terms of t*


@dataclass(frozen=True)
class OpModel:
    """Everything the renderer needs to write one op's module and test."""

    name: str  # "wave": module and public function
    class_name: str  # "Wave": the autograd.Function; its derivative is "WaveBackward"
    text: str  # "x*exp(-alpha*x**2)*cos(y)": the user's expression
    expr: sympy.Expr  # the same, parsed
    inputs: tuple[str, ...]  # ("x", "y"): tensor inputs, in call order
    params: tuple[Param, ...]  # (Param("alpha", 0.5),)
    gradient: tuple[sympy.Expr, ...]  # (df/dx, df/dy)
    hessian: tuple[tuple[sympy.Expr, ...], ...]  # ((d2f/dx2, d2f/dxdy), (..., d2f/dy2))
    forward: Kernel  # (x, y, alpha) -> (f,)
    backward: Kernel  # (grad, x, y, alpha) -> (grad*df/dx, grad*df/dy)
    double_backward: Kernel  # (grad, x, y, gg_x, gg_y, alpha) -> (d/dgrad, d/dx, d/dy)


NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*\Z")
# Names the generated module uses for itself; an input or param may not take them.
_RESERVED = frozenset({"torch", "ctx", "grad", "inputs", "output", "outputs", "functools"})
# pytest puts a test's folder first on sys.path, so NAME.py there would shadow these.
_IMPORTED_BY_GENERATED_CODE = frozenset(
    {"torch", "pytest", "os", "pathlib", "importlib", "adgen", "sympy", "numpy"}
)


def camel_case(name: str) -> str:
    """`h_sin` -> `HSin`, `wave` -> `Wave`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def grad_grad_name(input_name: str) -> str:
    """Name of the incoming gradient for output `grad_x` of the backward Function."""
    return f"grad_grad_{input_name}"


def double_backward_name(argument: str) -> str:
    """Name of the double backward's gradient with respect to `grad` or input `x`."""
    return f"d_{argument}"


def check_name(name: str) -> None:
    """Raise InputError unless `name` can be a module and public function name."""
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise InputError(
            f"--name expects a snake_case identifier such as 'my_op', got {name!r}"
        )
    if name.startswith("test"):
        raise InputError(f"--name {name!r}: names starting with 'test' confuse pytest")
    if name in _IMPORTED_BY_GENERATED_CODE:
        raise InputError(
            f"--name {name!r} would shadow the module the generated code imports; "
            "choose another"
        )


def build_model(
    parsed: ParsedExpression,
    name: str,
    inputs: tuple[str, ...] | None = None,
    params: tuple[Param, ...] = (),
) -> OpModel:
    """Derive gradient and Hessian of `parsed` and lay out every kernel of the op."""
    check_name(name)
    class_name = camel_case(name)
    inputs = _resolve_inputs(parsed, inputs, params)
    _check_argument_names(inputs, params, class_name)

    symbols = {s.name: s for s in parsed.expr.free_symbols}
    x = [symbols.get(n, sympy.Symbol(n, real=True)) for n in inputs]
    f = parsed.expr
    gradient = tuple(_derivative(f, xi) for xi in x)
    hessian = tuple(tuple(_derivative(gi, xj) for xj in x) for gi in gradient)

    names = set(inputs) | {p.name for p in params}
    grad = _symbol("grad")
    grad_grads = [_symbol(grad_grad_name(n)) for n in inputs]
    param_names = tuple(p.name for p in params)

    forward = _kernel(inputs + param_names, [f], names)
    backward = _kernel(
        ("grad",) + inputs + param_names, [grad * gi for gi in gradient], names
    )
    # Double backward: the backward Function maps (grad, x...) to grad*df/dx_i, so
    # the gradient it receives for output i is grad_grad_i and it returns
    #   d/dgrad = sum_i grad_grad_i df/dx_i
    #   d/dx_j  = grad * sum_i grad_grad_i d2f/dx_i dx_j
    double_backward = _kernel(
        ("grad",) + inputs + tuple(s.name for s in grad_grads) + param_names,
        [sum((gg * gi for gg, gi in zip(grad_grads, gradient)), sympy.S.Zero)]
        + [
            grad * sum((gg * hessian[i][j] for i, gg in enumerate(grad_grads)), sympy.S.Zero)
            for j in range(len(x))
        ],
        names,
    )
    return OpModel(
        name=name,
        class_name=class_name,
        text=parsed.text,
        expr=f,
        inputs=inputs,
        params=params,
        gradient=gradient,
        hessian=hessian,
        forward=forward,
        backward=backward,
        double_backward=double_backward,
    )


def _symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


def _derivative(expr: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    # Like PyTorch, differentiate almost everywhere: the derivative of sign(x)
    # (and so the second derivative of abs(x)) is zero, not a Dirac delta.
    result = sympy.diff(expr, variable)
    return result.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)


def _kernel(
    arguments: tuple[str, ...], outputs: list[sympy.Expr], taken: set[str]
) -> Kernel:
    taken_names = taken | set(arguments)
    temporaries = sympy.numbered_symbols(
        "t", cls=sympy.Symbol, real=True, exclude=[_symbol(n) for n in taken_names]
    )
    replacements, reduced = sympy.cse(outputs, symbols=temporaries, order="canonical")
    return Kernel(
        arguments=arguments,
        temporaries=tuple((str(symbol), value) for symbol, value in replacements),
        outputs=tuple(reduced),
    )


def _resolve_inputs(
    parsed: ParsedExpression, inputs: tuple[str, ...] | None, params: tuple[Param, ...]
) -> tuple[str, ...]:
    param_names = [p.name for p in params]
    duplicates = sorted({n for n in param_names if param_names.count(n) > 1})
    if duplicates:
        raise InputError(f"--param {duplicates[0]!r} is given twice")
    if inputs is None:
        inputs = tuple(n for n in parsed.names if n not in param_names)
    else:
        doubled = sorted({n for n in inputs if inputs.count(n) > 1})
        if doubled:
            raise InputError(f"--inputs names {doubled[0]!r} twice")
        both = sorted(set(inputs) & set(param_names))
        if both:
            raise InputError(f"{both[0]!r} is given both as an input and as a --param")
        missing = [n for n in parsed.names if n not in inputs and n not in param_names]
        if missing:
            raise InputError(
                f"symbol {missing[0]!r} in the expression is neither in --inputs "
                f"({','.join(inputs)}) nor a --param"
            )
    if not inputs:
        raise InputError("the expression has no tensor inputs (every symbol is a --param)")
    return tuple(inputs)


def _check_argument_names(
    inputs: tuple[str, ...], params: tuple[Param, ...], class_name: str
) -> None:
    generated = set(_RESERVED)
    generated |= {class_name, f"{class_name}Backward"}
    generated |= {grad_grad_name(n) for n in inputs}
    generated |= {double_backward_name(n) for n in ("grad",) + inputs}
    generated |= {f"grad_{n}" for n in inputs}
    for name in inputs + tuple(p.name for p in params):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or keyword.iskeyword(name):
            raise InputError(f"{name!r} is not a valid input or parameter name")
        if name in generated:
            raise InputError(
                f"name {name!r} is used by the generated code; rename that symbol"
            )
