"""Stage 2: sympy expression -> OpModel (derivatives and the kernels that compute them).

Only this module knows calculus. An elementwise op's derivatives of every order
are contractions of its partial-derivative tables with the incoming grads and
tangents: the backward of f is grad·∂f, its double backward grad·∂²f·gg + ∂f·gg,
and so on. So derive computes the tables ∂f, ∂²f, ∂³f once, as one straight-line
program whose results are named after the math (f_x, f_xy, ...), and writes each
Function method as a small contraction over those names. The contractions come
from differentiating an abstract f(x, y) (sympy's Derivative atoms), the table
entries from differentiating the expression. Common subexpressions are shared
through `sympy.cse`. No `simplify()`: its running time is unbounded.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import keyword
import re
from collections.abc import Callable
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
    """Outputs of one Function method as straight-line code over named arguments
    and, for a contraction, the partial derivatives up to `partials_order`."""

    arguments: tuple[str, ...]  # ("grad", "x", "y", "alpha")
    temporaries: tuple[tuple[str, sympy.Expr], ...]  # (("t0", grad*f_x), ...)
    outputs: tuple[sympy.Expr, ...]  # (t0*f_xx + ..., ...), in terms of t* and f_*
    partials_order: int = 0  # 2: the kernel reads the table entries of orders 1 and 2


@dataclass(frozen=True)
class Partial:
    """One entry of the partial-derivative tables."""

    name: str  # "f_xy"
    field: str  # "xy": its name in the helper's result, `df.xy` in the kernels
    order: int  # 2
    formula: sympy.Expr  # -2*alpha*x*exp(-alpha*x**2)*sin(y), where() branches guarded


@dataclass(frozen=True)
class PartialTables:
    """The nonzero entries of ∂f, ∂²f, ∂³f that depend on a tensor input, as one
    straight-line program: the temporaries of `stages[k - 1]` are first needed by
    an entry of order k, so a caller that needs order k stops after stage k."""

    arguments: tuple[str, ...]  # ("x", "y", "alpha")
    entries: tuple[Partial, ...]  # f_x, f_y, f_xx, f_xy, f_yy, ...: by order, then index
    stages: tuple[tuple[tuple[str, sympy.Expr], ...], ...]  # (("t0", exp(-alpha*x**2)),), ...
    outputs: tuple[sympy.Expr, ...]  # each entry's formula over the temporaries
    by_index: dict[tuple[int, ...], str]  # {(0, 1): "f_xy"}: input positions -> entry

    def names(self, order: int) -> tuple[str, ...]:
        """The entries a caller needing `order` unpacks: all of orders 1..order."""
        return tuple(e.name for e in self.entries if e.order <= order)

    def name_of(self, index: tuple[int, ...]) -> str | None:
        """The entry for the sorted input positions `index`, None where it is not
        one (zero, or a function of parameters alone)."""
        return self.by_index.get(index)


class Role(enum.Enum):
    """What a Function of the family computes; its value names the class suffix."""

    OP = ""  # f
    BACKWARD = "Backward"  # grad·∂f
    JVP = "Jvp"  # ∂f·x_t
    BACKWARD_JVP = "BackwardJvp"  # the jvp of Backward
    JVP_JVP = "JvpJvp"  # the jvp of Jvp


@dataclass(frozen=True)
class FunctionSpec:
    """One torch.autograd.Function of the emitted family.

    Its backward (and jvp) is either a call of another Function of the family,
    which keeps the result differentiable by exact formulas, or a plain kernel of
    differentiable torch ops at the last level.
    """

    class_name: str  # "WaveBackward"
    role: Role  # Role.BACKWARD
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
    partials: PartialTables  # ∂f, ∂²f, ∂³f that every kernel but the op's forward contracts


NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*\Z")
# Names the generated module uses for itself; an input or param may not take them.
_RESERVED = frozenset(
    {"torch", "math", "ctx", "grad", "inputs", "output", "function", "float", "abs"}
    | {"dtype", "need", "df", "order"}  # opmath, needs_input_grad, the table helper
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


# Chooses the form of one formula (select.FormSelector): called with the
# formula's name ("f", "f_xy"), its order, its stable form, and a thunk giving
# the same formula differentiated from the expression as written.
Chooser = Callable[[str, int, sympy.Expr, Callable[[], sympy.Expr]], sympy.Expr]


def build_model(
    parsed: ParsedExpression,
    name: str,
    inputs: tuple[str, ...] | None = None,
    params: tuple[Param, ...] = (),
    chooser: Callable[[tuple[str, ...]], Chooser] | None = None,
) -> OpModel:
    """Derive the op's family of Functions and the kernels of each; `chooser`,
    given the inputs, makes the selection stage's chooser of forms (None: the
    stable forms, unmeasured)."""
    check_name(name)
    class_name = camel_case(name)
    inputs = _resolve_inputs(parsed, inputs, params)
    param_names = tuple(p.name for p in params)
    f = stabilize(parsed.expr)

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
    _check_identifiers(inputs + param_names)  # before they name table entries
    choose = chooser(inputs) if chooser else None
    tables = _TableBuilder(f, parsed.expr, inputs, param_names, choose)
    op = _Formula(class_name, Role.OP, inputs, ("out",), (tables.abstract,), inputs, "_t")
    backward = op.vjp_formula(Role.BACKWARD, ("grad",))
    jvp = op.jvp_formula(Role.JVP, inputs)
    backward_jvp = backward.jvp_formula(Role.BACKWARD_JVP, ("grad",))
    jvp_jvp = jvp.jvp_formula(Role.JVP_JVP, inputs)

    taken = set(inputs) | set(param_names) | set(tables.all_names())
    functions = (
        op.spec(param_names, taken, tables, backward_call=backward, jvp_call=jvp),
        backward.spec(param_names, taken, tables, jvp_call=backward_jvp),
        jvp.spec(param_names, taken, tables, jvp_call=jvp_jvp),
        backward_jvp.spec(param_names, taken, tables),
        jvp_jvp.spec(param_names, taken, tables),
    )
    _check_argument_names(inputs, params, functions, tables.all_names())
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
    partials = tables.tables(taken)
    gradient = tuple(tables.chosen((i,)) for i in range(len(inputs)))
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
        partials=partials,
    )


@dataclass(frozen=True)
class _Formula:
    """A Function's outputs as sympy expressions of its tensor arguments."""

    class_name: str  # "WaveBackward"
    role: Role  # Role.BACKWARD
    args: tuple[str, ...]  # ("grad", "x", "y")
    outputs: tuple[str, ...]  # ("grad_x", "grad_y")
    values: tuple[sympy.Expr, ...]  # (grad*Derivative(f(x, y), x), ...): f abstract
    shape_of: tuple[str, ...]  # ("grad",)
    tangent_suffix: str  # "_t"

    def vjp_values(self, grads: tuple[str, ...]) -> list[sympy.Expr]:
        """For each argument a: sum over outputs o of grad_o * d(value_o)/da."""
        return [
            _sum(_symbol(g) * sympy.diff(v, _symbol(a)) for g, v in zip(grads, self.values))
            for a in self.args
        ]

    def jvp_values(self) -> list[sympy.Expr]:
        """For each output o: sum over arguments a of d(value_o)/da * a_tangent."""
        return [
            _sum(
                sympy.diff(v, _symbol(a)) * _symbol(t)
                for a, t in zip(self.args, self.tangent_names())
            )
            for v in self.values
        ]

    def grad_names(self) -> tuple[str, ...]:
        return _grad_names(self.outputs, self.args)

    def tangent_names(self) -> tuple[str, ...]:
        return tuple(a + self.tangent_suffix for a in self.args)

    def family_name(self, role: Role) -> str:
        """`WaveBackward` for Role.BACKWARD: the op's class name and the role's suffix."""
        return self.class_name.removesuffix(self.role.value) + role.value

    def vjp_formula(self, role: Role, shape_of: tuple[str, ...]) -> _Formula:
        """The Function computing this one's backward (the same tangent naming)."""
        grads = self.grad_names()
        return _Formula(
            self.family_name(role),
            role,
            grads + self.args,
            tuple(f"grad_{a}" for a in self.args),
            tuple(self.vjp_values(grads)),
            shape_of,
            self.tangent_suffix,
        )

    def jvp_formula(self, role: Role, shape_of: tuple[str, ...]) -> _Formula:
        """The Function computing this one's jvp; its own tangents take the next suffix."""
        return _Formula(
            self.family_name(role),
            role,
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
        tables: _TableBuilder,
        backward_call: _Formula | None = None,
        jvp_call: _Formula | None = None,
    ) -> FunctionSpec:
        grads = self.grad_names()
        tangents = self.tangent_names()
        if self.role is Role.OP:  # f itself, not a contraction
            forward = _kernel(self.args + params, [tables.chosen(())], taken)
        else:
            forward = tables.contraction(self.args + params, list(self.values), taken)
        return FunctionSpec(
            class_name=self.class_name,
            role=self.role,
            summary="",
            tensor_args=self.args,
            outputs=self.outputs,
            output_shape_of=self.shape_of,
            tangent_suffix=self.tangent_suffix,
            forward=forward,
            backward_call=backward_call.class_name if backward_call else None,
            backward=None
            if backward_call
            else tables.contraction(self.args + grads + params, self.vjp_values(grads), taken),
            jvp_call=jvp_call.class_name if jvp_call else None,
            jvp=None
            if jvp_call
            else tables.contraction(self.args + tangents + params, self.jvp_values(), taken),
        )


class _TableBuilder:
    """The partial derivatives of f, computed once each, and the contractions
    that read them: an abstract f(x, y)'s Derivative atoms become table entries
    (f_x, f_xy, ...), or the entry's formula itself where that is a number or a
    function of parameters alone."""

    MAX_ORDER = 3  # JvpJvp.jvp and BackwardJvp.backward contract ∂³f

    def __init__(
        self,
        f: sympy.Expr,
        as_written: sympy.Expr,
        inputs: tuple[str, ...],
        params: tuple[str, ...],
        choose: Chooser | None = None,
    ) -> None:
        self.f = f
        self.inputs = inputs
        self.params = params
        self.choose = choose
        self.symbols = [_symbol(n) for n in inputs]
        self.abstract = sympy.Function("f")(*self.symbols)
        self.formulas: dict[tuple[int, ...], sympy.Expr] = {(): f}
        self.written: dict[tuple[int, ...], sympy.Expr] = {(): as_written}
        self.chosen_forms: dict[tuple[int, ...], sympy.Expr] = {}
        self.entry: dict[tuple[int, ...], bool] = {}  # is_entry, computed once per index
        # f_xy for single-letter inputs; f_x1_x2 where a name is longer, or
        # where a field would be a keyword (inputs i, f: df.if); "__" where
        # "_" would give two entries one name (inputs a, b, a_b: f_a_b).
        self.separator = ""
        while not self.names_are_distinct():
            self.separator += "_"

    def names_are_distinct(self) -> bool:
        fields = [self.name(index)[2:] for index in self.indices()]
        if self.separator == "" and any(len(n) > 1 for n in self.inputs):
            return False
        return len(set(fields)) == len(fields) and not any(map(keyword.iskeyword, fields))

    def formula(self, index: tuple[int, ...]) -> sympy.Expr:
        """∂^k f / ∂x_i1...∂x_ik for the sorted input positions `index`."""
        if index not in self.formulas:
            parent = self.formula(index[:-1])
            self.formulas[index] = _derivative(parent, self.symbols[index[-1]])
        return self.formulas[index]

    def as_written(self, index: tuple[int, ...]) -> sympy.Expr:
        """The same partial derivative of the expression as the user wrote it."""
        if index not in self.written:
            parent = self.as_written(index[:-1])
            self.written[index] = _plain_derivative(parent, self.symbols[index[-1]])
        return self.written[index]

    def chosen(self, index: tuple[int, ...]) -> sympy.Expr:
        """The form the selection stage chose for `formula(index)` (the stable
        form without a chooser, or where the formula is no tensor function)."""
        if index not in self.chosen_forms:
            formula = self.formula(index)
            if self.choose is not None and self.depends_on_input(formula):
                name = self.name(index) if index else "f"
                formula = self.choose(name, len(index), formula, lambda: self.as_written(index))
            self.chosen_forms[index] = formula
        return self.chosen_forms[index]

    def depends_on_input(self, formula: sympy.Expr) -> bool:
        return any(s.name in self.inputs for s in formula.free_symbols)

    def name(self, index: tuple[int, ...]) -> str:
        return "f_" + self.separator.join(self.inputs[i] for i in index)

    def indices(self) -> list[tuple[int, ...]]:
        positions = range(len(self.inputs))
        return [
            index
            for order in range(1, self.MAX_ORDER + 1)
            for index in itertools.combinations_with_replacement(positions, order)
        ]

    def all_names(self) -> list[str]:
        return [self.name(index) for index in self.indices()]

    def is_entry(self, index: tuple[int, ...]) -> bool:
        """Whether the table helper computes this partial: it depends on a tensor."""
        if index not in self.entry:
            self.entry[index] = self.depends_on_input(self.formula(index))
        return self.entry[index]

    def index(self, derivative: sympy.Derivative) -> tuple[int, ...]:
        """Derivative(f(x, y), x, y) -> (0, 1): the sorted input positions."""
        counts = dict(derivative.variable_count)
        return tuple(i for i, s in enumerate(self.symbols) for _ in range(counts.get(s, 0)))

    def atom(self, derivative: sympy.Derivative) -> sympy.Expr:
        """The table entry's name, or its formula where that is not an entry."""
        index = self.index(derivative)
        return _symbol(self.name(index)) if self.is_entry(index) else self.formula(index)

    def contraction(
        self, arguments: tuple[str, ...], outputs: list[sympy.Expr], taken: set[str]
    ) -> Kernel:
        """A kernel over the table entries: outputs with Derivative atoms replaced."""
        order = 0
        lowered = []
        for output in outputs:
            for derivative in output.atoms(sympy.Derivative):
                if self.is_entry(self.index(derivative)):
                    order = max(order, derivative.derivative_count)
            lowered.append(output.replace(lambda e: isinstance(e, sympy.Derivative), self.atom))
        kernel = _kernel(arguments, lowered, taken)
        return dataclasses.replace(kernel, partials_order=order)

    def tables(self, taken: set[str]) -> PartialTables:
        """The entries as one program, common subexpressions shared across orders;
        where() branches guarded, since autograd differentiates these formulas."""
        entries = []
        by_index: dict[tuple[int, ...], str] = {}
        for index in self.indices():
            if self.formula(index) != 0 and self.is_entry(index):
                formula = self.chosen(index)
                name = self.name(index)
                entries.append(Partial(name, name[2:], len(index), guard_branches(formula)))
                by_index[index] = self.name(index)
        arguments = self.inputs + self.params
        kernel = _kernel(arguments, [e.formula for e in entries], taken)
        stage_of: dict[str, int] = {}  # temporary -> the lowest order of an entry that needs it
        values = dict(kernel.temporaries)
        for entry, output in sorted(zip(entries, kernel.outputs), key=lambda p: p[0].order):
            pending = [s.name for s in output.free_symbols]
            while pending:
                name = pending.pop()
                if name in values and name not in stage_of:  # each temporary once
                    stage_of[name] = entry.order
                    pending.extend(s.name for s in values[name].free_symbols)
        stages = tuple(
            tuple((n, v) for n, v in kernel.temporaries if stage_of.get(n) == order)
            for order in range(1, self.MAX_ORDER + 1)
        )
        return PartialTables(arguments, tuple(entries), stages, kernel.outputs, by_index)


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


@functools.lru_cache(maxsize=4096)
def _plain_derivative(expr: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    """The derivative with no rewriting: what autograd of the formula computes."""
    return sympy.diff(expr, variable).replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)


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


def _check_identifiers(names: tuple[str, ...]) -> None:
    for name in names:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or keyword.iskeyword(name):
            raise InputError(f"{name!r} is not a valid input or parameter name")


def _check_argument_names(
    inputs: tuple[str, ...],
    params: tuple[Param, ...],
    functions: tuple[FunctionSpec, ...],
    partials: list[str],
) -> None:
    user = inputs + tuple(p.name for p in params)
    generated = set(_RESERVED) | set(partials)
    for spec in functions:
        generated.add(spec.class_name)
        generated |= set(spec.tensor_args) - set(inputs)  # the inputs are the user's own
        generated |= set(spec.outputs) | set(spec.grad_names()) | set(spec.tangent_names())
        generated |= {f"d_{a}" for a in spec.tensor_args}  # plain backward's results
        generated |= {o + spec.tangent_suffix for o in spec.outputs}  # plain jvp's results
    for name in user:
        if name in generated:
            raise InputError(
                f"name {name!r} is used by the generated code; rename that symbol"
            )
