"""Stage 2: sympy expression -> OpModel (derivatives and the kernels that compute them).

Only this module knows calculus. Each kernel is straight-line code: the outputs a
Function method returns, written over named arguments, with common subexpressions
shared through `sympy.cse`. No `simplify()`: its running time is unbounded.
"""

from __future__ import annotations

import dataclasses
import functools
import keyword
import re
from dataclasses import dataclass

import sympy

from .errors import InputError
from .functions import sigmoid
from .parse import ParsedExpression
from .stable import guard_branches, stabilize


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
class FunctionSpec:
    """One torch.autograd.Function of the emitted family.

    Its backward (and jvp) is either a call of another Function of the family,
    which keeps the result differentiable by exact formulas, or a plain kernel of
    differentiable torch ops at the last level.
    """

    class_name: str  # "WaveBackward"
    summary: str  # "(grad, x, y) -> grad·∂f/∂x, grad·∂f/∂y"
    tensor_args: tuple[str, ...]  # ("grad", "x", "y")
    outputs: tuple[str, ...]  # ("grad_x", "grad_y")
    output_shape_of: tuple[str, ...]  # ("grad",): args whose broadcast shape each output has
    tangent_suffix: str  # "_t": the tangent of argument x is named x_t in jvp
    forward: Kernel  # (grad, x, y, alpha) -> (grad_x, grad_y)
    backward_call: str | None  # "WaveBackward": backward returns that Function's outputs
    backward: Kernel | None  # plain kernel when backward_call is None
    jvp_call: str | None  # "WaveJvp": jvp returns that Function's output
    jvp: Kernel | None  # plain kernel when jvp_call is None

    def grad_names(self) -> tuple[str, ...]:
        """Names of the gradients backward receives, one per output."""
        return _grad_names(self.outputs, self.tensor_args)

    def tangent_names(self) -> tuple[str, ...]:
        """Names of the tangents jvp receives, one per tensor argument."""
        return tuple(a + self.tangent_suffix for a in self.tensor_args)


@dataclass(frozen=True)
class OpModel:
    """Everything the renderer needs to write one op's module and test."""

    name: str  # "wave": module and public function
    class_name: str  # "Wave": the op's autograd.Function
    text: str  # "x*exp(-alpha*x**2)*cos(y)": the user's expression
    expr: sympy.Expr  # the same, parsed, with naive spellings made stable
    inputs: tuple[str, ...]  # ("x", "y"): tensor inputs, in call order
    params: tuple[Param, ...]  # (Param("alpha", 0.5),)
    gradient: tuple[sympy.Expr, ...]  # (df/dx, df/dy)
    reference: sympy.Expr  # the user's formula as written, where() guarded: the tests' oracle
    functions: tuple[FunctionSpec, ...]  # Wave, WaveBackward, WaveJvp, ...: the op first


NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*\Z")
# Names the generated module uses for itself; an input or param may not take them.
_RESERVED = frozenset(
    {"torch", "math", "ctx", "grad", "inputs", "output", "function", "float", "abs", "dtype"}
)
# pytest puts a test's folder first on sys.path, so NAME.py there would shadow these.
_IMPORTED_BY_GENERATED_CODE = frozenset(
    {"torch", "pytest", "os", "pathlib", "importlib", "adgen", "sympy", "numpy"}
)


def camel_case(name: str) -> str:
    """`h_sin` -> `HSin`, `wave` -> `Wave`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


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
    """Derive the op's family of Functions and the kernels of each."""
    check_name(name)
    class_name = camel_case(name)
    inputs = _resolve_inputs(parsed, inputs, params)
    param_names = tuple(p.name for p in params)
    f = stabilize(parsed.expr)
    gradient = tuple(_derivative(f, _symbol(n)) for n in inputs)

    # The family. Every Function has a backward and a jvp; those that return
    # another Function's output stay exactly differentiable one more time, in
    # either mode. PyTorch differentiates a custom Function only through what it
    # returns: a jvp written in plain ops gives silent zeros under an outer
    # forward-mode level (pytorch#197867), while plain ops in backward are fine.
    # So jvp chains reach one level deeper than backward: every mix of three
    # reverse and forward levels is exact.
    #
    #   Op            backward -> Backward      jvp -> Jvp
    #   Backward      backward:  plain          jvp -> BackwardJvp
    #   Jvp           backward:  plain          jvp -> JvpJvp
    #   BackwardJvp   backward:  plain          jvp:   plain
    #   JvpJvp        backward:  plain          jvp:   plain
    op = _Formula(f"{class_name}", inputs, ("out",), (f,), inputs, "_t")
    backward = op.vjp_formula(f"{class_name}Backward", ("grad",))
    jvp = op.jvp_formula(f"{class_name}Jvp", inputs)
    backward_jvp = backward.jvp_formula(f"{class_name}BackwardJvp", ("grad",))
    jvp_jvp = jvp.jvp_formula(f"{class_name}JvpJvp", inputs)

    taken = set(inputs) | set(param_names)
    functions = (
        op.spec(param_names, taken, backward_call=backward, jvp_call=jvp),
        backward.spec(param_names, taken, jvp_call=backward_jvp),
        jvp.spec(param_names, taken, jvp_call=jvp_jvp),
        backward_jvp.spec(param_names, taken),
        jvp_jvp.spec(param_names, taken),
    )
    _check_argument_names(inputs, params, functions)
    summaries = {
        op.class_name: f"{name}({', '.join(inputs)}{_params_suffix(param_names)}) = "
        f"{sympy.sstr(f)}",
        backward.class_name: f"({', '.join(backward.args)}) -> "
        + ", ".join(f"grad·∂f/∂{n}" for n in inputs),
        jvp.class_name: f"({', '.join(jvp.args)}) -> "
        + " + ".join(f"∂f/∂{n}·{n}_t" for n in inputs),
        backward_jvp.class_name: f"the jvp of {backward.class_name}",
        jvp_jvp.class_name: f"the jvp of {jvp.class_name}",
    }
    functions = tuple(
        dataclasses.replace(spec, summary=summaries[spec.class_name]) for spec in functions
    )
    return OpModel(
        name=name,
        class_name=class_name,
        text=parsed.text,
        expr=f,
        inputs=inputs,
        params=params,
        gradient=gradient,
        reference=guard_branches(parsed.expr),
        functions=functions,
    )


def value_and_gradient_kernel(model: OpModel) -> Kernel:
    """The op's value and its gradient (without the incoming grad) in one kernel,
    sharing subexpressions: what `--save intermediates` computes in forward so
    that a first-order backward is one multiplication per input."""
    param_names = tuple(p.name for p in model.params)
    taken = set(model.inputs) | set(param_names)
    return _kernel(model.inputs + param_names, [model.expr, *model.gradient], taken)


@dataclass(frozen=True)
class _Formula:
    """A Function's outputs as sympy expressions of its tensor arguments."""

    class_name: str  # "WaveBackward"
    args: tuple[str, ...]  # ("grad", "x", "y")
    outputs: tuple[str, ...]  # ("grad_x", "grad_y")
    values: tuple[sympy.Expr, ...]  # (grad*df/dx, grad*df/dy)
    shape_of: tuple[str, ...]  # ("grad",)
    tangent_suffix: str  # "_t"

    def vjp_values(self, grads: tuple[str, ...]) -> list[sympy.Expr]:
        """For each argument a: sum over outputs o of grad_o * d(value_o)/da."""
        return [
            _sum(_symbol(g) * _derivative(v, _symbol(a)) for g, v in zip(grads, self.values))
            for a in self.args
        ]

    def jvp_values(self) -> list[sympy.Expr]:
        """For each output o: sum over arguments a of d(value_o)/da * a_tangent."""
        return [
            _sum(
                _derivative(v, _symbol(a)) * _symbol(t)
                for a, t in zip(self.args, self.tangent_names())
            )
            for v in self.values
        ]

    def grad_names(self) -> tuple[str, ...]:
        return _grad_names(self.outputs, self.args)

    def tangent_names(self) -> tuple[str, ...]:
        return tuple(a + self.tangent_suffix for a in self.args)

    def vjp_formula(self, class_name: str, shape_of: tuple[str, ...]) -> _Formula:
        """The Function computing this one's backward (the same tangent naming)."""
        grads = self.grad_names()
        return _Formula(
            class_name,
            grads + self.args,
            tuple(f"grad_{a}" for a in self.args),
            tuple(self.vjp_values(grads)),
            shape_of,
            self.tangent_suffix,
        )

    def jvp_formula(self, class_name: str, shape_of: tuple[str, ...]) -> _Formula:
        """The Function computing this one's jvp; its own tangents take the next suffix."""
        return _Formula(
            class_name,
            self.args + self.tangent_names(),
            tuple(o + self.tangent_suffix for o in self.outputs),
            tuple(self.jvp_values()),
            shape_of,
            _NEXT_SUFFIX[self.tangent_suffix],
        )

    def spec(
        self,
        params: tuple[str, ...],
        taken: set[str],
        backward_call: _Formula | None = None,
        jvp_call: _Formula | None = None,
    ) -> FunctionSpec:
        grads = self.grad_names()
        tangents = self.tangent_names()
        return FunctionSpec(
            class_name=self.class_name,
            summary="",
            tensor_args=self.args,
            outputs=self.outputs,
            output_shape_of=self.shape_of,
            tangent_suffix=self.tangent_suffix,
            forward=_kernel(self.args + params, list(self.values), taken),
            backward_call=backward_call.class_name if backward_call else None,
            # Plain kernels are differentiated again by autograd: guard where().
            backward=None
            if backward_call
            else _kernel(
                self.args + grads + params,
                [guard_branches(v) for v in self.vjp_values(grads)],
                taken,
            ),
            jvp_call=jvp_call.class_name if jvp_call else None,
            jvp=None
            if jvp_call
            else _kernel(
                self.args + tangents + params,
                [guard_branches(v) for v in self.jvp_values()],
                taken,
            ),
        )


_NEXT_SUFFIX = {"_t": "_u", "_u": "_v", "_v": "_w"}


def _grad_names(outputs: tuple[str, ...], args: tuple[str, ...]) -> tuple[str, ...]:
    """`grad` for a Function's single output, else `grad_<output>` for each."""
    if len(outputs) == 1 and "grad" not in args:
        return ("grad",)
    return tuple(f"grad_{o}" for o in outputs)


def _params_suffix(param_names: tuple[str, ...]) -> str:
    return "; " + ", ".join(param_names) if param_names else ""


def _sum(terms) -> sympy.Expr:
    return sympy.Add(*terms)


def _symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


@functools.lru_cache(maxsize=4096)  # the family asks for the same derivative up to 4 times
def _derivative(expr: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    # Like PyTorch, differentiate almost everywhere: the derivative of sign(x)
    # (and so the second derivative of abs(x)) is zero, not a Dirac delta.
    result = sympy.diff(expr, variable)
    result = result.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    # factor_terms regroups a*b*c - a*b*d as a*b*(c - d), the shape in which the
    # stable rewrites find sigmoid(-x) - sigmoid(x). It costs more than the
    # derivative itself, so only where a sigmoid can take part.
    if result.has(sigmoid):
        result = sympy.factor_terms(result)
    return stabilize(result)


def _kernel(
    arguments: tuple[str, ...], outputs: list[sympy.Expr], taken: set[str]
) -> Kernel:
    taken_names = taken | set(arguments)
    temporaries = sympy.numbered_symbols(
        "t", cls=sympy.Symbol, real=True, exclude=[_symbol(n) for n in taken_names]
    )
    outputs = [_evaluate_constants(o) for o in outputs]
    replacements, reduced = sympy.cse(outputs, symbols=temporaries, order="canonical")
    return Kernel(
        arguments=arguments,
        temporaries=tuple((str(symbol), value) for symbol, value in replacements),
        outputs=tuple(reduced),
    )


def _evaluate_constants(expr: sympy.Expr) -> sympy.Expr:
    """sqrt(2)/sqrt(pi) -> 0.797...: one literal, not a temporary of its own."""
    return expr.replace(
        lambda e: e.is_number and not e.is_Atom and e.is_real is True,
        lambda e: sympy.Float(e.evalf(20), 17),
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
    inputs: tuple[str, ...], params: tuple[Param, ...], functions: tuple[FunctionSpec, ...]
) -> None:
    user = inputs + tuple(p.name for p in params)
    generated = set(_RESERVED)
    for spec in functions:
        generated.add(spec.class_name)
        generated |= set(spec.tensor_args) - set(inputs)  # the inputs are the user's own
        generated |= set(spec.outputs) | set(spec.grad_names()) | set(spec.tangent_names())
        generated |= {f"d_{a}" for a in spec.tensor_args}  # plain backward's results
        generated |= {o + spec.tangent_suffix for o in spec.outputs}  # plain jvp's results
    for name in user:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or keyword.iskeyword(name):
            raise InputError(f"{name!r} is not a valid input or parameter name")
        if name in generated:
            raise InputError(
                f"name {name!r} is used by the generated code; rename that symbol"
            )
