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
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sympy

from . import contract, dag
from .errors import InputError
from .functions import exact_ones, guarded, held, hold, math_text, printed_fraction, sigmoid
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
    # Several outputs: the terms that vanish when an output's grad is None, one
    # kernel per output, added to `outputs` only where that grad is present:
    # (("grad_u", ("grad_u", "grad_u_t"), Kernel(...)), ...): guard, its group, terms.
    blocks: tuple[tuple[str, tuple[str, ...], Kernel], ...] = ()
    # The helper calls whose results the kernel reads (∂²f·a, ∂³f·a·b: contract.py),
    # computed first: (Product(2, (("x_t", "y_t"),), ("hess_t_x", "hess_t_y"), ...),)
    products: tuple[contract.Product, ...] = ()


@dataclass(frozen=True)
class ProductHelper:
    """A helper of the module that kernels call for ∂²f·a or ∂³f·a·b, one
    result per input (contract.py)."""

    name: str  # "_hessian_times"
    order: int  # 2
    vectors: tuple[tuple[str, ...], ...]  # (("a_x", "a_y"),): its vector arguments
    kernel: Kernel  # arguments: the vectors' components, then the parameters it reads
    # Where every component reads a table entry for every pair of inputs (a dense
    # table): each pair's label and product (("xy", a_x*b_y + a_y*b_x), ...; the
    # Hessian's "pairs" are single inputs), and each component's entries, by pair.
    pairs: tuple[tuple[str, sympy.Expr], ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    # False where every ∂ᵏf is a number or a formula of the parameters: the
    # helper takes no table (contract.Product.table None).
    reads_table: bool = True


@dataclass(frozen=True)
class Partial:
    """One entry of the partial-derivative tables."""

    name: str  # "f_xy"; "u_xy" for output u of several
    field: str  # "xy": read as `df.xy` in the kernels; "u.xy" (`df.u.xy`) for output u of several
    order: int  # 2
    formula: sympy.Expr  # -2*alpha*x*exp(-alpha*x**2)*sin(y), where() branches guarded
    output: int = 0  # 1: the position of the output it differentiates


@dataclass(frozen=True)
class PartialTables:
    """The nonzero entries of ∂f, ∂²f, ∂³f that depend on a tensor input, as one
    straight-line program: the temporaries of `stages[k - 1]` are first needed by
    an entry of order k, so a caller that needs order k stops after stage k."""

    arguments: tuple[str, ...]  # ("x", "y", "alpha")
    entries: tuple[Partial, ...]  # f_x, f_y, f_xx, f_xy, f_yy, ...: by order, then index
    stages: tuple[tuple[tuple[str, sympy.Expr], ...], ...]  # (("t0", exp(-alpha*x**2)),), ...
    outputs: tuple[sympy.Expr, ...]  # each entry's formula over the temporaries
    by_index: dict[tuple[int, ...], str]  # {(0, 1): "f_xy"}: input positions -> entry (output 0)
    by_output: tuple[dict[tuple[int, ...], str], ...] = ()  # by_index of each output

    def names(self, order: int) -> tuple[str, ...]:
        """The entries a caller needing `order` unpacks: all of orders 1..order."""
        return tuple(e.name for e in self.entries if e.order <= order)

    def held(self, names: tuple[str, ...]) -> int:
        """How many of the entries `names` are new tensors, not an input itself
        (f = x*y: f_x is y): what keeping them holds in memory."""
        return sum(
            1
            for e in self.entries
            if e.name in names and not (e.formula.is_Symbol and e.formula.name in self.arguments)
        )

    def is_entry(self, name: str) -> bool:
        return name in self._fields

    def arguments_of(self, name: str) -> frozenset[str]:
        """The arguments the entry `name` reads, through the program's temporaries."""
        return self._arguments_read[name]

    @functools.cached_property
    def _arguments_read(self) -> dict[str, frozenset[str]]:
        # Once per table: render asks for every new tensor it writes.
        values = {n: v for stage in self.stages for n, v in stage}
        arguments = set(self.arguments)
        return {
            e.name: frozenset(
                arguments
                & reachable(
                    [s.name for s in e.formula.free_symbols],
                    lambda n: [s.name for s in values[n].free_symbols] if n in values else [],
                )
            )
            for e in self.entries
        }

    def field_of(self, name: str) -> str:
        """The field of the entry named `name`: f_xy -> xy, u_xy -> u.xy."""
        return self._fields[name]

    @functools.cached_property
    def _fields(self) -> dict[str, str]:
        return {e.name: e.field for e in self.entries}

    def name_of(self, index: tuple[int, ...], output: int = 0) -> str | None:
        """The entry for the sorted input positions `index`, None where it is not
        one (zero, or a function of parameters alone)."""
        if self.by_output:
            return self.by_output[output].get(index)
        return self.by_index.get(index)


def reachable(names: Iterable[str], successors: Callable[[str], Iterable[str]]) -> set[str]:
    """`names` and every name reached from them through `successors` (the names
    a temporary's value reads, say)."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(successors(name))
    return seen


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
    # The jvp_call's arguments, named as jvp's locals (the saved tensors, the
    # tangents): ("x", "y", "x_t", "y_t"); ("x_t", "x") where an op of one input
    # and one output calls its Backward with the tangent as grad.
    jvp_call_args: tuple[str, ...] = ()
    # Grads backward may receive as None (set_materialize_grads(False)): those of
    # an op's several outputs, not materialised as zeros (_none_for_unused).
    optional_grads: tuple[str, ...] = ()  # ("grad_u", "grad_v")

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
    # Several outputs (expr, reference: their sympy.Tuple; gradient: every
    # output's, output by output). One output: ("out",), (expr,), (reference,).
    outputs: tuple[str, ...] = ("out",)  # ("u", "v")
    exprs: tuple[sympy.Expr, ...] = ()  # (r*cos(t), r*sin(t))
    references: tuple[sympy.Expr, ...] = ()  # the same as written, where() guarded
    # For each input, when the op must save it for backward: None, always; else
    # the positions of the inputs whose gradient reads it (f = x*y: x for y's).
    # Saved when one of those needs a gradient, else a zero stand-in is saved.
    saved_when: tuple[tuple[int, ...] | None, ...] = ()  # ((1,), (0,))
    # The table entries the first-order Backward keeps where autograd records a
    # graph through it (create_graph), for the backward after it to read rather
    # than recompute; () where it recomputes them (the selection stage decides).
    saved_partials: tuple[str, ...] = ()  # ("f_x", "f_xx")
    # The helpers the kernels call for ∂²f·a and ∂³f·a·b, where they call any.
    products: tuple[ProductHelper, ...] = ()

    @property
    def multi_output(self) -> bool:
        return len(self.outputs) > 1

    @property
    def none_grads(self) -> bool:
        """Whether a Function receives an unused output's grad as None."""
        return any(f.optional_grads for f in self.functions)


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
# (target, order, stable form, the formula as written, the output's value it is a
# derivative of) -> the form to emit
Chooser = Callable[[str, int, sympy.Expr, Callable[[], sympy.Expr], sympy.Expr], sympy.Expr]


def build_model(
    parsed: ParsedExpression,
    name: str,
    inputs: tuple[str, ...] | None = None,
    params: tuple[Param, ...] = (),
    outputs: tuple[str, ...] | None = None,
    chooser: Callable[[tuple[str, ...]], Chooser] | None = None,
    saver: Callable[[PartialTables, int], tuple[str, ...]] | None = None,
) -> OpModel:
    """Derive the op's family of Functions and the kernels of each. `outputs`
    names the outputs of a tuple expression (default out0, out1, ...);
    `chooser`, given the inputs, makes the selection stage's chooser of forms
    (None: the stable forms, unmeasured); `saver`, given the tables and the
    order the Backward's backward reads, the entries it saves under
    create_graph (None: it recomputes them)."""
    check_name(name)
    class_name = camel_case(name)
    inputs = _resolve_inputs(parsed, inputs, params)
    param_names = tuple(p.name for p in params)
    output_names = _resolve_outputs(parsed, outputs, inputs + param_names)
    exprs = tuple(stabilize(e) for e in parsed.outputs or (parsed.expr,))
    # Parameters combine in Python's floats, once per call: no need to hold them.
    as_written = tuple(
        e.replace(
            lambda n: isinstance(n, held) and {s.name for s in n.free_symbols} <= set(param_names),
            lambda n: n.args[0],
        )
        for e in parsed.written
    ) or None
    f = exprs[0] if len(exprs) == 1 else sympy.Tuple(*exprs)

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
    #
    # One input and one output: the jvp f'(x)·x_t is Backward's grad·f'(x) with
    # x_t as grad, and so are its derivatives, so the op's jvp calls Backward and
    # Jvp and JvpJvp are not emitted (three Functions, each derived once).
    _check_identifiers(inputs + param_names)  # before they name table entries
    choose = chooser(inputs) if chooser else None
    tables = _TableBuilder(exprs, inputs, param_names, output_names, as_written, choose)
    multi = len(exprs) > 1
    op = _Formula(
        class_name, Role.OP, inputs, output_names if multi else ("out",),
        tuple(tables.abstract), inputs, "_t", (None,) * len(inputs),
        none_for_unused=multi and _none_for_unused(parsed.outputs, inputs),
    )
    backward = op.vjp_formula(Role.BACKWARD, ("grad",))
    # Several outputs: the backward's results have the grads' shape (one output's
    # grad alone may be given).
    grads_shape = backward.args[: len(exprs)] if multi else ("grad",)
    backward = dataclasses.replace(backward, shape_of=grads_shape)
    backward_jvp = backward.jvp_formula(Role.BACKWARD_JVP, grads_shape)

    taken = set(inputs) | set(param_names) | set(tables.all_names()) | set(output_names)
    if len(inputs) == 1 and not multi:
        functions = (
            op.spec(
                param_names, taken, tables, backward_call=backward, jvp_call=backward,
                jvp_call_args=(op.tangent_names()[0], inputs[0]),
            ),
            backward.spec(param_names, taken, tables, jvp_call=backward_jvp),
            backward_jvp.spec(param_names, taken, tables),
        )
    else:
        jvp = op.jvp_formula(Role.JVP, inputs)
        jvp_jvp = jvp.jvp_formula(Role.JVP_JVP, inputs)
        functions = (
            op.spec(param_names, taken, tables, backward_call=backward, jvp_call=jvp),
            backward.spec(param_names, taken, tables, jvp_call=backward_jvp),
            jvp.spec(param_names, taken, tables, jvp_call=jvp_jvp),
            backward_jvp.spec(param_names, taken, tables),
            jvp_jvp.spec(param_names, taken, tables),
        )
    _check_argument_names(inputs, params, functions, tables.all_names())
    jvp_args = inputs + op.tangent_names()
    if multi:
        signature = f"{name}({', '.join(inputs)}{_params_suffix(param_names)})"
        backward_summary = ", ".join(
            " + ".join(f"{g}·∂{o}/∂{n}" for g, o in zip(op.grad_names(), output_names))
            for n in inputs
        )
        jvp_summary = ", ".join(
            " + ".join(f"∂{o}/∂{n}·{n}_t" for n in inputs) for o in output_names
        )
        summaries = {
            op.class_name: f"{signature} = "
            + ", ".join(f"{o}: {math_text(e)}" for o, e in zip(output_names, exprs)),
            backward.class_name: f"({', '.join(backward.args)}) -> {backward_summary}",
            op.family_name(Role.JVP): f"({', '.join(jvp_args)}) -> {jvp_summary}",
        }
    else:
        summaries = {
            op.class_name: f"{name}({', '.join(inputs)}{_params_suffix(param_names)}) = "
            f"{math_text(f)}",
            backward.class_name: f"({', '.join(backward.args)}) -> "
            + ", ".join(f"grad·∂f/∂{n}" for n in inputs)
            + (f"; also {class_name}'s jvp, with {inputs[0]}_t as grad" if len(inputs) == 1 else ""),
            op.family_name(Role.JVP): f"({', '.join(jvp_args)}) -> "
            + " + ".join(f"∂f/∂{n}·{n}_t" for n in inputs),
        }
    summaries |= {
        backward_jvp.class_name: f"the jvp of {backward.class_name}",
        op.family_name(Role.JVP_JVP): f"the jvp of {op.family_name(Role.JVP)}",
    }
    functions = tuple(
        dataclasses.replace(spec, summary=summaries[spec.class_name]) for spec in functions
    )
    partials = tables.tables(taken)
    gradient = tuple(
        tables.chosen((i,), o) for o in range(len(exprs)) for i in range(len(inputs))
    )
    saved_when = _saved_when(inputs, gradient, partials)
    backward_order = functions[1].backward.partials_order if functions[1].backward else 0
    saved_partials = saver(partials, backward_order) if saver else ()
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
        outputs=output_names if multi else ("out",),
        exprs=exprs,
        references=tuple(guard_branches(e) for e in (parsed.outputs or (parsed.expr,))),
        saved_when=saved_when,
        saved_partials=saved_partials,
        products=tables.product_helpers(taken),
    )


def _none_for_unused(outputs: tuple[sympy.Expr, ...], inputs: tuple[str, ...]) -> bool:
    """Whether an unused output's grad stays None and the kernels skip its
    terms. Autograd's zeros there are exact where every output is a polynomial
    of degree at most 2 in the inputs (a complex product, a rotation): each term
    a zero grad enters is zero times an affine derivative of the inputs, finite
    where they are, short of overflow. Any other output may have a derivative
    that is inf where the used outputs' are finite (sqrt(x) at 0), and 0·inf
    would make the gradient NaN."""
    symbols = [_symbol(n) for n in inputs]
    return not all(
        o.is_polynomial(*symbols) and sympy.Poly(o, *symbols).total_degree() <= 2 for o in outputs
    )


def _saved_when(
    inputs: tuple[str, ...], gradient: tuple[sympy.Expr, ...], partials: PartialTables
) -> tuple[tuple[int, ...] | None, ...]:
    """OpModel.saved_when. An input may be left unsaved (a zero stand-in of its
    shape in its place, as autograd's mul saves only the operand it needs) only
    where every partial derivative is a polynomial in it: then every kernel is
    finite at the stand-in, and the terms it enters are multiplied by the zero
    cotangents or tangents of the gradients nobody asked for."""
    formulas = list(gradient) + [entry.formula for entry in partials.entries]
    if any(s.name not in partials.arguments for f in formulas for s in f.free_symbols):
        # An entry over the DAG program's temporaries: its inputs are not in
        # sight, so none is taken to be polynomial.
        return (None,) * len(inputs)
    rules: list[tuple[int, ...] | None] = []
    for name in inputs:
        symbol = _symbol(name)
        if not all(f.is_polynomial(symbol) for f in formulas if symbol in f.free_symbols):
            rules.append(None)
            continue
        readers = tuple(
            index
            for index in range(len(inputs))
            if any(symbol in g.free_symbols for g in gradient[index :: len(inputs)])
        )
        # Read by every input's gradient: any backward at all reads it.
        rules.append(None if len(readers) == len(inputs) else readers)
    return tuple(rules)


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
    # For each argument, the op output whose grad it is or derives from (a
    # tangent of it): None when given, it makes that output's terms vanish.
    groups: tuple[int | None, ...]  # (0, 1, None, None) for (grad_u, grad_v, x, y)
    # An unused output's grad None, its terms skipped, in the op's family
    # (_none_for_unused); else autograd's zeros.
    none_for_unused: bool = False

    def vjp_values(self, grads: tuple[str, ...]) -> list[sympy.Expr]:
        """For each argument a: sum over outputs o of grad_o * d(value_o)/da."""
        return [
            _sum(_symbol(g) * _linear_diff(v, _symbol(a)) for g, v in zip(grads, self.values))
            for a in self.args
        ]

    def jvp_values(self) -> list[sympy.Expr]:
        """For each output o: sum over arguments a of d(value_o)/da * a_tangent."""
        return [
            _sum(
                _linear_diff(v, _symbol(a)) * _symbol(t)
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
        # The op's grads, when it has several outputs, may be None (_none_for_unused).
        several = self.role is Role.OP and self.none_for_unused
        return _Formula(
            self.family_name(role),
            role,
            grads + self.args,
            tuple(f"grad_{a}" for a in self.args),
            tuple(self.vjp_values(grads)),
            shape_of,
            self.tangent_suffix,
            (tuple(range(len(grads))) if several else (None,) * len(grads)) + self.groups,
            self.none_for_unused,
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
            self.groups + self.groups,  # a tangent belongs to its argument's group
            self.none_for_unused,
        )

    def optional_grads(self) -> tuple[str, ...]:
        """The grads backward may receive as None: one per output of an op with
        several, and of the Functions computing its outputs' tangents."""
        several = self.none_for_unused and self.role in (Role.OP, Role.JVP, Role.JVP_JVP)
        return self.grad_names() if several else ()

    def block_groups(self, extra: tuple[str, ...], extra_groups: tuple[int | None, ...]):
        """(guard, members) of each output whose grad may be None, for a kernel
        over the arguments and `extra` (tangents or grads) with their groups."""
        names = self.args + extra
        groups = self.groups + extra_groups
        found: dict[int, list[str]] = {}
        for name, group in zip(names, groups):
            if group is not None:
                found.setdefault(group, []).append(name)
        return tuple((members[0], tuple(members)) for _, members in sorted(found.items()))

    def spec(
        self,
        params: tuple[str, ...],
        taken: set[str],
        tables: _TableBuilder,
        backward_call: _Formula | None = None,
        jvp_call: _Formula | None = None,
        jvp_call_args: tuple[str, ...] | None = None,
    ) -> FunctionSpec:
        grads = self.grad_names()
        tangents = self.tangent_names()
        optional = self.optional_grads()
        grad_groups = tuple(range(len(grads))) if optional else (None,) * len(grads)
        # A grad of the op's several outputs, and all derived from it, is None
        # together: the kernels add each output's terms only where it is not.
        forward_blocks = self.block_groups((), ())
        backward_blocks = self.block_groups(grads, grad_groups)
        jvp_blocks = self.block_groups(tangents, self.groups)
        if self.role is Role.OP:  # f itself, not a contraction
            forward = _kernel(self.args + params, tables.values(), taken)
        else:
            forward = tables.contraction(
                self.args + params, list(self.values), taken, forward_blocks
            )
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
            else tables.contraction(
                self.args + grads + params, self.vjp_values(grads), taken, backward_blocks
            ),
            jvp_call=jvp_call.class_name if jvp_call else None,
            jvp_call_args=jvp_call_args or (jvp_call.args if jvp_call else ()),
            jvp=None
            if jvp_call
            else tables.contraction(
                self.args + tangents + params, self.jvp_values(), taken, jvp_blocks
            ),
            optional_grads=optional,
        )


class _TableBuilder:
    """The partial derivatives of f, computed once each, and the contractions
    that read them: an abstract f(x, y)'s Derivative atoms become table entries
    (f_x, f_xy, ...), or the entry's formula itself where that is a number or a
    function of parameters alone. An op with several outputs u, v has one table
    each (u_x, v_xy, ...), all computed by one program."""

    MAX_ORDER = 3  # JvpJvp.jvp and BackwardJvp.backward contract ∂³f
    # Above an entry of more sympy operations than this, the orders come from the
    # expression's DAG (dag.py): as trees they would swell under the product rule.
    # Selection searches no formula over its LARGEST_FORMULA, the same size.
    SWELL_OPERATIONS = 400

    def __init__(
        self,
        f: tuple[sympy.Expr, ...],
        inputs: tuple[str, ...],
        params: tuple[str, ...],
        outputs: tuple[str, ...] = ("f",),
        as_written: tuple[sympy.Expr, ...] | None = None,
        choose: Chooser | None = None,
    ) -> None:
        self.f = f
        self.inputs = inputs
        self.params = params
        self.choose = choose
        self.multi = len(f) > 1
        # Entries are named f_xy for one output, u_xy for output u of several.
        self.prefixes = outputs if self.multi else ("f",)
        self.symbols = [_symbol(n) for n in inputs]
        abstract_names = ("f",) if not self.multi else tuple(f"f{o}" for o in range(len(f)))
        self.abstract = [sympy.Function(n)(*self.symbols) for n in abstract_names]
        self.output_of = {a.func: o for o, a in enumerate(self.abstract)}
        self.formulas: dict[tuple[int, tuple[int, ...]], sympy.Expr] = {
            (o, ()): e for o, e in enumerate(f)
        }
        self.entry: dict[tuple[int, tuple[int, ...]], bool] = {}  # is_entry, once per key
        self.written: dict[tuple[int, tuple[int, ...]], sympy.Expr] = {
            (o, ()): e for o, e in enumerate(as_written or f)
        }
        self.chosen_forms: dict[tuple[int, tuple[int, ...]], sympy.Expr] = {}
        self.dag_orders: dict[int, bool] = {}  # from_dag, once per order
        self.dag: dag.DagDerivatives | None = None
        self.product_orders: set[int] = set()  # of the helpers some kernel calls
        self.alike: dict[int, bool] = {}  # like_first, once per output
        # f_xy for single-letter inputs; f_x1_x2 where a name is longer, or
        # where a field would be a keyword (inputs i, f: df.if); "__" where
        # "_" would give two entries one name (inputs a, b, a_b: f_a_b).
        self.separator = ""
        while not self.names_are_distinct():
            self.separator += "_"

    def names_are_distinct(self) -> bool:
        fields = [self.field(o, index) for o, index in self.keys()]
        if self.separator == "" and any(len(n) > 1 for n in self.inputs):
            return False
        parts = [part for field in fields for part in field.split(".")]
        return len(set(fields)) == len(fields) and not any(map(keyword.iskeyword, parts))

    def formula(self, index: tuple[int, ...], output: int = 0) -> sympy.Expr:
        """∂^k f / ∂x_i1...∂x_ik for the sorted input positions `index`: the
        derivative of the entry below, or, where that swelled, its formula over
        the DAG program's temporaries."""
        key = (output, index)
        if self.from_dag(len(index)):
            assert self.dag is not None
            return self.dag.entries.get(key, sympy.S.Zero)
        if key not in self.formulas:
            parent = self.formula(index[:-1], output)
            self.formulas[key] = _derivative(parent, self.symbols[index[-1]])
        return self.formulas[key]

    def from_dag(self, order: int) -> bool:
        """Whether the entries of `order` come from the DAG program: where an
        entry of the order below has more than SWELL_OPERATIONS operations (the
        first derivatives are always trees: the selection stage, the docstring
        and the generated test read them)."""
        if order < 2:
            return False
        if order not in self.dag_orders:
            swollen = self.from_dag(order - 1) or any(
                sympy.count_ops(self.formula(index, output)) > self.SWELL_OPERATIONS
                for output in range(len(self.f))
                for index in itertools.combinations_with_replacement(range(len(self.inputs)), order - 1)
            )
            if swollen and self.dag is None:
                # Placeholders, named in tables(); None: a node the DAG cannot take.
                names = (sympy.Dummy("dag", real=True) for _ in itertools.count())
                orders = tuple(range(order, self.MAX_ORDER + 1))
                self.dag = dag.derivatives(tuple(self.f), tuple(self.symbols), orders, names)
            self.dag_orders[order] = swollen and self.dag is not None
        return self.dag_orders[order]

    def as_written(self, index: tuple[int, ...], output: int = 0) -> sympy.Expr:
        """The same partial derivative of the expression as the user wrote it;
        the first ones as autograd computes them, in its order of operations."""
        key = (output, index)
        if key not in self.written and len(index) == 1:
            gradient = _autograd_order(self.written[(output, ())], tuple(self.symbols))
            if gradient is not None:
                for position, derivative in enumerate(gradient):
                    self.written[(output, (position,))] = derivative
        if key not in self.written:
            parent = self.as_written(index[:-1], output)
            self.written[key] = _plain_derivative(parent, self.symbols[index[-1]])
        return self.written[key]

    def chosen(self, index: tuple[int, ...], output: int = 0) -> sympy.Expr:
        """The form the selection stage chose for `formula(index, output)` (the
        stable form without a chooser, or where it is no function of a tensor)."""
        key = (output, index)
        if key not in self.chosen_forms:
            formula = self.formula(index, output)
            searched = self.depends_on_input(formula) and not self.from_dag(len(index))
            if self.choose is not None and searched:
                name = self.name(index, output) if index else self.prefixes[output]
                formula = self.choose(
                    name,
                    len(index),
                    formula,
                    lambda: self.as_written(index, output),
                    self.formula((), output),
                )
            self.chosen_forms[key] = formula
        return self.chosen_forms[key]

    def values(self) -> list[sympy.Expr]:
        """The op's outputs, in their chosen forms."""
        return [self.chosen((), o) for o in range(len(self.f))]

    def depends_on_input(self, formula: sympy.Expr) -> bool:
        # The DAG program's temporaries (Dummy) hold functions of an input.
        return any(s.name in self.inputs or isinstance(s, sympy.Dummy) for s in formula.free_symbols)

    def name(self, index: tuple[int, ...], output: int = 0) -> str:
        return f"{self.prefixes[output]}_" + self.separator.join(self.inputs[i] for i in index)

    def field(self, output: int, index: tuple[int, ...]) -> str:
        """How a kernel reads the entry from the helper's result: xy (df.xy); for
        several outputs, output u's table, then its field: u.xy (df.u.xy)."""
        prefix = self.prefixes[output]
        field = self.name(index, output)[len(prefix) + 1 :]
        return f"{prefix}.{field}" if self.multi else field

    def indices(self) -> list[tuple[int, ...]]:
        positions = range(len(self.inputs))
        return [
            index
            for order in range(1, self.MAX_ORDER + 1)
            for index in itertools.combinations_with_replacement(positions, order)
        ]

    def keys(self) -> list[tuple[int, tuple[int, ...]]]:
        """(output, index) of every possible entry: by order, then output, then index."""
        return sorted(
            ((o, index) for o in range(len(self.f)) for index in self.indices()),
            key=lambda key: (len(key[1]), key[0]),
        )

    def all_names(self) -> list[str]:
        return [self.name(index, o) for o, index in self.keys()]

    def is_entry(self, index: tuple[int, ...], output: int = 0) -> bool:
        """Whether the table helper computes this partial: it depends on a tensor."""
        key = (output, index)
        if key not in self.entry:
            self.entry[key] = self.depends_on_input(self.formula(index, output))
        return self.entry[key]

    def index(self, derivative: sympy.Derivative) -> tuple[int, ...]:
        """Derivative(f(x, y), x, y) -> (0, 1): the sorted input positions."""
        counts = dict(derivative.variable_count)
        return tuple(i for i, s in enumerate(self.symbols) for _ in range(counts.get(s, 0)))

    def atom(self, derivative: sympy.Derivative) -> sympy.Expr:
        """The table entry's name, or its formula where that is not an entry."""
        index, output = self.index(derivative), self.output_of[derivative.expr.func]
        if self.is_entry(index, output):
            return _symbol(self.name(index, output))
        return self.formula(index, output)

    def contraction(
        self,
        arguments: tuple[str, ...],
        outputs: list[sympy.Expr],
        taken: set[str],
        blocks: tuple[tuple[str, tuple[str, ...]], ...] = (),
    ) -> Kernel:
        """A kernel over the table entries: outputs with Derivative atoms replaced.
        With `blocks` (guard, members), each group's terms (linear in its members)
        become a kernel of their own and the main kernel keeps the rest."""
        if not blocks:
            products: tuple[contract.Product, ...] = ()
            if not self.multi:  # several outputs: each output's terms apart, in blocks
                outputs, products = self.factored(outputs, arguments, taken)
            return self.kernel_of(arguments, outputs, taken, products)
        members = {_symbol(m) for _, group in blocks for m in group}
        # S.Zero, not 0: xreplace returns the replacement itself for a bare symbol.
        base = self.kernel_of(arguments, [e.xreplace({m: sympy.S.Zero for m in members}) for e in outputs], taken)
        used = set(taken) | {n for n, _ in base.temporaries}
        split = []
        scale = sympy.Dummy("scale")
        for guard, group in blocks:
            scaled = {_symbol(m): scale * _symbol(m) for m in group}
            others = {m: sympy.S.Zero for m in members - set(scaled)}
            # The coefficient of `scale`: the terms of this group (they are linear in it).
            terms = [_linear_diff(e.xreplace(others).xreplace(scaled), scale) for e in outputs]
            # One output's terms take the helpers over its table, where that
            # table has the first output's entries (polar's x and y; spherical's
            # x and y, not z): the helpers' sums are the first output's.
            read = {self.output_of[d.expr.func] for t in terms for d in t.atoms(sympy.Derivative)}
            output = read.pop() if len(read) == 1 else None
            products = ()
            if output is not None and self.like_first(output):
                terms, products = self.factored(terms, arguments, used, output)
            kernel = self.kernel_of(arguments, terms, used, products)
            if all(o == 0 for o in kernel.outputs):
                continue
            used |= {n for n, _ in kernel.temporaries}
            split.append((guard, group, kernel))
        order = max(k.partials_order for k in [base, *(k for _, _, k in split)])
        split = [(g, m, dataclasses.replace(k, partials_order=order)) for g, m, k in split]
        return dataclasses.replace(base, partials_order=order, blocks=tuple(split))

    def factored(
        self, terms: list[sympy.Expr], arguments: tuple[str, ...], taken: set[str], output: int = 0
    ) -> tuple[list[sympy.Expr], tuple[contract.Product, ...]]:
        """`terms` with their products of ∂²f and ∂³f by the kernel's vectors
        named as the helpers' results (contract.factor), over the entries of
        `output`'s table; the helpers they call recorded."""
        terms, products = contract.factor(
            terms, arguments, self.inputs, self.index,
            lambda index: self.name(index, output) if self.is_entry(index, output) else None,
            lambda index: self.formula(index, output) != 0,
            taken,
        )
        if self.multi:
            products = tuple(
                dataclasses.replace(p, table=f"df.{self.prefixes[output]}") if p.table else p for p in products
            )
        self.product_orders |= {p.order for p in products}
        return terms, products

    def kernel_of(
        self,
        arguments: tuple[str, ...],
        outputs: list[sympy.Expr],
        taken: set[str],
        products: tuple[contract.Product, ...] = (),
    ) -> Kernel:
        """`outputs` over the table entries (each Derivative atom its entry's
        name, or its formula), reading the entries up to the highest order they
        and `products` need; the products' results are names taken (they keep
        one name in every output's kernel: render's loop over the outputs reads
        them by it)."""
        order = max((p.order for p in products if p.table), default=0)
        lowered = []
        for output in outputs:
            atoms = {}  # each Derivative atom -> its entry's name, or its formula
            for derivative in output.atoms(sympy.Derivative):
                if self.is_entry(self.index(derivative), self.output_of[derivative.expr.func]):
                    order = max(order, derivative.derivative_count)
                atoms[derivative] = self.atom(derivative)
            # xreplace rebuilds each changed node as replace() would, without
            # testing every node of the tree against a predicate.
            lowered.append(_by_entry(output.xreplace(atoms), atoms.values()))
        results = {r for p in products for r in p.results}
        kernel = _kernel(arguments, lowered, taken | results)
        return dataclasses.replace(kernel, partials_order=order, products=products)

    def like_first(self, output: int) -> bool:
        """Whether the output's ∂²f and ∂³f have their entries and their zeros
        where the first output's have, and its numbers elsewhere: the helpers'
        sums (product_helpers: the first output's), over this output's table,
        are then this output's."""
        if output not in self.alike:
            self.alike[output] = all(
                self.pattern(index, output) == self.pattern(index, 0)
                for index in self.indices()
                if len(index) > 1
            )
        return self.alike[output]

    def pattern(self, index: tuple[int, ...], output: int) -> sympy.Expr | None:
        """None for a table entry, else the partial derivative's value (a number,
        or a formula of the parameters)."""
        return None if self.is_entry(index, output) else self.formula(index, output)

    def product_helpers(self, taken: set[str]) -> tuple[ProductHelper, ...]:
        """The helpers for the products the kernels call: component i of ∂²f·a
        is Σⱼ f_ij·a_j, of ∂³f·a·b Σⱼₖ f_ijk·a_j·b_k, summed over j <= k with
        a_j·b_k + a_k·b_j together (the table holds f_ijk once). Several
        outputs: the first output's sums, over the table a kernel passes (of an
        output like the first: contraction)."""
        helpers = []
        n = len(self.inputs)
        for order in sorted(self.product_orders):
            prefixes = ["a_", "b_"][: order - 1]
            # Not a parameter's, an input's or an entry's name (output a's a_r).
            reserved = {*self.params, *self.inputs, *self.all_names()}
            while any(p + i in reserved for p in prefixes for i in self.inputs):
                prefixes = [p + "_" for p in prefixes]
            vectors = tuple(tuple(p + i for i in self.inputs) for p in prefixes)
            outputs = []
            rests = list(itertools.combinations_with_replacement(range(n), order - 1))
            spreads = [
                _sum(
                    sympy.Mul(*(_symbol(v[j]) for v, j in zip(vectors, order_of)))
                    for order_of in sorted(set(itertools.permutations(rest)))
                )
                for rest in rests
            ]
            rows: list[tuple[str, ...]] = []
            for i in range(n):
                terms = []
                row = []
                for rest, spread in zip(rests, spreads):
                    index = tuple(sorted((i, *rest)))
                    if self.formula(index) == 0:
                        continue
                    entry = _symbol(self.name(index)) if self.is_entry(index) else self.formula(index)
                    terms.append(entry * spread)
                    if self.is_entry(index):
                        row.append(self.name(index))
                outputs.append(_sum(terms))
                rows.append(tuple(row))
            dense = not self.multi and all(len(row) == len(rests) for row in rows)
            labels = [self.separator.join(self.inputs[j] for j in rest) for rest in rests]
            read = set().union(*(o.free_symbols for o in outputs))
            params = tuple(p for p in self.params if _symbol(p) in read)
            arguments = tuple(c for v in vectors for c in v) + params
            kernel = _kernel(arguments, outputs, taken | set(self.params))
            helpers.append(
                ProductHelper(
                    contract.HELPERS[order], order, vectors, kernel,
                    pairs=tuple(zip(labels, spreads)) if dense else (),
                    rows=tuple(rows) if dense else (),
                    reads_table=any(rows),
                )
            )
        return tuple(helpers)

    def tables(self, taken: set[str]) -> PartialTables:
        """The entries as one program, common subexpressions shared across orders
        and outputs; where() branches guarded, since autograd differentiates these
        formulas."""
        entries = []
        by_output: list[dict[tuple[int, ...], str]] = [{} for _ in self.f]
        for output, index in self.keys():
            if self.formula(index, output) != 0 and self.is_entry(index, output):
                formula = self.chosen(index, output)
                name = self.name(index, output)
                field = self.field(output, index)
                if not self.from_dag(len(index)):
                    formula = guard_branches(formula)
                entries.append(Partial(name, field, len(index), formula, output))
                by_output[output][index] = name
        arguments = self.inputs + self.params
        from_trees = [e for e in entries if not self.from_dag(e.order)]
        kernel = _kernel(arguments, [e.formula for e in from_trees], taken)
        temporaries = list(kernel.temporaries)
        formulas = dict(zip((e.name for e in from_trees), kernel.outputs))
        if len(from_trees) < len(entries):
            # The DAG program after the shared subexpressions, its temporaries
            # numbered on from theirs.
            assert self.dag is not None
            used = taken | set(arguments) | {n for n, _ in temporaries}
            numbered = sympy.numbered_symbols("t", cls=sympy.Symbol, real=True)
            fresh = (s for s in numbered if s.name not in used)
            # A statement computing what a temporary above computes is that one.
            earlier = {value: _symbol(name) for name, value in temporaries}
            renamed: dict[sympy.Symbol, sympy.Symbol] = {}
            for placeholder, value in self.dag.statements:
                value = _evaluate_constants(value.xreplace(renamed))
                if value not in earlier:
                    earlier[value] = next(fresh)
                    temporaries.append((earlier[value].name, value))
                renamed[placeholder] = earlier[value]
            entries = [
                e
                if e.name in formulas
                else dataclasses.replace(e, formula=_evaluate_constants(e.formula.xreplace(renamed)))
                for e in entries
            ]
            formulas |= {e.name: e.formula for e in entries if e.name not in formulas}
        outputs = tuple(formulas[e.name] for e in entries)
        stage_of: dict[str, int] = {}  # temporary -> the lowest order of an entry that needs it
        values = dict(temporaries)

        def unstaged_reads(name: str) -> list[str]:  # a staged temporary's reads are staged
            if name not in values or name in stage_of:
                return []
            return [s.name for s in values[name].free_symbols]

        for entry, output in sorted(zip(entries, outputs), key=lambda p: p[0].order):
            for name in reachable([s.name for s in output.free_symbols], unstaged_reads):
                if name in values:
                    stage_of.setdefault(name, entry.order)
        stages = tuple(
            tuple((n, v) for n, v in temporaries if stage_of.get(n) == order)
            for order in range(1, self.MAX_ORDER + 1)
        )
        return PartialTables(
            arguments, tuple(entries), stages, outputs, by_output[0],
            tuple(by_output) if self.multi else (),
        )


_NEXT_SUFFIX = {"_t": "_u", "_u": "_v", "_v": "_w"}


def _grad_names(outputs: tuple[str, ...], args: tuple[str, ...]) -> tuple[str, ...]:
    """`grad` for a Function's single output, else `grad_<output>` for each;
    `gg_<x>` for an output that is itself a gradient, `grad_<x>` (its grad)."""
    if len(outputs) == 1 and "grad" not in args:
        return ("grad",)
    return tuple("gg_" + o.removeprefix("grad_") if o.startswith("grad_") else f"grad_{o}" for o in outputs)


def _params_suffix(param_names: tuple[str, ...]) -> str:
    return "; " + ", ".join(param_names) if param_names else ""


def _sum(terms) -> sympy.Expr:
    return sympy.Add(*terms)


def _symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


@functools.lru_cache(maxsize=65536)  # the family repeats (value, variable) pairs across Functions
def _linear_diff(expr: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    """sympy.diff(expr, variable), node for node the same result, for the sums
    of products that the kernels are before lowering: grads and tangents times
    the abstract f's Derivative atoms. Add and Mul are differentiated here as
    sympy's Add._eval_derivative and Mul._eval_derivative_n_times do (a sum of
    the derivatives; for a product, the sum over its factors of the product
    with that factor differentiated), so the terms come out in the same shape;
    an atom of the abstract f gives the next atom (_atom_derivative), any other
    node goes to sympy.diff. sympy.diff itself builds an unevaluated Derivative
    at every node and walks the result to make its Derivatives canonical: most
    of the cost of deriving a family."""
    if variable not in expr.free_symbols:
        return sympy.S.Zero
    if expr.is_Symbol:  # the variable itself, being free in expr
        return sympy.S.One
    if expr.is_Add:
        return sympy.Add(*[_linear_diff(term, variable) for term in expr.args])
    if expr.is_Mul:
        factors = expr.args
        terms = []
        for k, factor in enumerate(factors):
            derivative = _linear_diff(factor, variable)
            if derivative != 0:
                terms.append(sympy.Mul(*factors[:k], derivative, *factors[k + 1 :]))
        return sympy.Add(*terms)
    return _atom_derivative(expr, variable)


def _atom_derivative(atom: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    """f(x, y) by x -> Derivative(f(x, y), x); Derivative(f(x, y), x) by y ->
    Derivative(f(x, y), x, y): the canonical Derivative sympy.diff returns,
    built directly. f's arguments are distinct symbols (the op's inputs)."""
    function = atom.expr if isinstance(atom, sympy.Derivative) else atom
    plain = (
        isinstance(function, sympy.core.function.AppliedUndef)
        and all(a.is_Symbol for a in function.args)
        and len(set(function.args)) == len(function.args)
        and variable in function.args
    )
    if not plain:
        return sympy.diff(atom, variable)
    if atom is function:
        return sympy.Derivative(function, variable)
    return sympy.Derivative(function, *atom.variable_count, (variable, 1)).canonical


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


def _autograd_order(
    expr: sympy.Expr, variables: tuple[sympy.Symbol, ...]
) -> tuple[sympy.Expr, ...] | None:
    """∂expr/∂v for each of `variables`, in the order of operations autograd
    runs for `expr` as printed: reverse mode, each node's adjoint times its
    local derivative (PyTorch's rules: a/b gives grad/b and -grad*((a/b)/b),
    exp(u) grad*exp(u), ...), every intermediate held as its own operation.
    One expression (a/b**2) overflows where these steps do not. None where
    `expr` has a node not modelled here (where(), several outputs)."""
    order: list[sympy.Expr] = []  # each node after all its arguments
    seen: set[sympy.Expr] = set()

    def visit(node: sympy.Expr) -> bool:
        if node in seen:
            return True
        if isinstance(node, (sympy.Piecewise, guarded)) or node.is_Relational:
            return False
        if not node.is_Atom and not all(visit(a) for a in node.args):
            return False
        seen.add(node)
        order.append(node)
        return True

    if not visit(expr):
        return None
    adjoints: dict[sympy.Expr, list[sympy.Expr]] = {expr: [sympy.S.One]}
    for node in reversed(order):
        terms = adjoints.get(node)
        if not terms or node.is_Atom:
            continue
        adjoint = hold(sympy.Add(*terms))
        try:
            local = _local_adjoints(node, adjoint)
        except sympy.core.function.ArgumentIndexError:
            return None  # a function sympy cannot differentiate by this argument
        for argument, contribution in local:
            if not argument.is_number:
                adjoints.setdefault(argument, []).append(hold(contribution))
    return tuple(sympy.Add(*adjoints.get(v, [])) for v in variables)


def _local_adjoints(node: sympy.Expr, adjoint: sympy.Expr) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """(argument, adjoint × ∂node/∂argument) for each argument of `node`."""
    if node.is_Add or isinstance(node, held):  # held(e) is e
        return [(a, adjoint) for a in node.args]
    if node.is_Mul:
        # As the printer writes it: the numerator's product, divided by the
        # denominator's product.
        numerator, below_the_line = printed_fraction(node)
        if not below_the_line:
            return _product_adjoints(list(numerator), adjoint)
        powers = {base**k: (base, k) for base, k in below_the_line}  # b**2 -> (b, 2)
        denominator = list(powers)
        below = hold(sympy.Mul(*denominator))
        pairs = _product_adjoints(denominator, -adjoint * (held(node) / below))
        # A power b**k of the denominator is not a node of the formula (it holds
        # b**-k): its adjoint goes on to b, by the power rule.
        pairs = [
            (base, a * k * base ** (k - 1)) if k != 1 else (base, a)
            for power, a in pairs
            for base, k in [powers[power]]
        ]
        if not numerator:  # 1/(x*y): the numerator is 1, a number
            return pairs
        return _product_adjoints(numerator, adjoint / below) + pairs
    if node.is_Pow:
        base, exponent = node.args
        if exponent == -1:  # 1/b: -grad*result*result
            return [(base, -adjoint * held(node) * held(node))]
        if exponent == sympy.S.Half:  # sqrt(b): grad/(2*result)
            return [(base, adjoint / (2 * held(node)))]
        pairs = [(base, adjoint * exponent * base ** (exponent - 1))]
        if not exponent.is_number:
            pairs.append((exponent, adjoint * held(node) * sympy.log(base)))
        return pairs
    if isinstance(node, sympy.exp):
        return [(node.args[0], adjoint * held(node))]
    # polygamma(0, x): the order is a number, with no derivative.
    return [(a, adjoint * node.fdiff(k + 1)) for k, a in enumerate(node.args) if not a.is_number]


def _product_adjoints(factors: list[sympy.Expr], adjoint: sympy.Expr) -> list[tuple[sympy.Expr, sympy.Expr]]:
    """The adjoints of f1*f2*...*fn computed left to right, ((f1*f2)*f3)...:
    the last factor's is the adjoint times the product before it."""
    pairs = []
    for k in range(len(factors) - 1, 0, -1):
        before = hold(sympy.Mul(*factors[:k]))
        pairs.append((factors[k], adjoint * before))
        adjoint = hold(adjoint * factors[k])
    pairs.append((factors[0], adjoint))
    return pairs


def _by_entry(output: sympy.Expr, atoms: Iterable[sympy.Expr]) -> sympy.Expr:
    """`output` with the terms of each table entry gathered, where that saves
    operations: f_xx*grad*x_t_u + f_xx*grad_u*x_t reads f_xx once, as a
    contraction is written by hand, f_xx*(grad*x_t_u + grad_u*x_t)."""
    entries = [a for a in atoms if a.is_Symbol]
    if not entries:
        return output
    gathered = sympy.collect(sympy.expand(output), entries)
    return gathered if sympy.count_ops(gathered) < sympy.count_ops(output) else output


def _kernel(
    arguments: tuple[str, ...], outputs: list[sympy.Expr], taken: set[str]
) -> Kernel:
    taken_names = taken | set(arguments)
    temporaries = sympy.numbered_symbols(
        "t", cls=sympy.Symbol, real=True, exclude=[_symbol(n) for n in taken_names]
    )
    outputs = [_evaluate_constants(o) for o in outputs]
    replacements, reduced = sympy.cse(outputs, symbols=temporaries, order="canonical")
    # A temporary is computed on its own: held() around its value says nothing,
    # and one that holds another (t1 = held(t0)) is that other, renamed; so is
    # one that then computes what an earlier one does (held(t0)**2 and t0**2).
    renamed: dict[sympy.Symbol, sympy.Symbol] = {}
    kept = []
    first_of: dict[sympy.Expr, sympy.Symbol] = {}
    for symbol, value in replacements:
        value = _outer_hold_dropped(value.xreplace(renamed))
        if value.is_Symbol or value in first_of:
            renamed[symbol] = first_of.get(value, value)
            continue
        first_of[value] = symbol
        kept.append((symbol, value))
    if renamed:  # number the temporaries left without gaps
        fresh = sympy.numbered_symbols(
            "t", cls=sympy.Symbol, real=True, exclude=[_symbol(n) for n in taken_names]
        )
        numbering = {old: new for (old, _), new in zip(kept, fresh)}
        # One simultaneous replacement: the new names reuse the old ones.
        final = numbering | {old: numbering[new] for old, new in renamed.items()}
        kept = [(numbering[s], v.xreplace(final)) for s, v in kept]
        reduced = [o.xreplace(final) for o in reduced]
    return Kernel(
        arguments=arguments,
        temporaries=tuple((str(symbol), value) for symbol, value in kept),
        outputs=tuple(_outer_hold_dropped(o) for o in reduced),
    )


def _outer_hold_dropped(expr: sympy.Expr) -> sympy.Expr:
    return expr.args[0] if isinstance(expr, held) else expr


def _evaluate_constants(expr: sympy.Expr) -> sympy.Expr:
    """sqrt(2)/sqrt(pi) -> 0.797...: one literal, not a temporary of its own
    (where evalf gives a finite number; else the constant as it is); float
    ones exact (no factor 1.0 left)."""

    def literal(constant: sympy.Expr) -> sympy.Expr:
        value = constant.evalf(20)
        return sympy.Float(value, 17) if value.is_Number and value.is_finite else constant

    return exact_ones(expr.replace(lambda e: e.is_number and not e.is_Atom and e.is_real is True, literal))


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


def _resolve_outputs(
    parsed: ParsedExpression, outputs: tuple[str, ...] | None, user_names: tuple[str, ...]
) -> tuple[str, ...]:
    """The names of a tuple expression's outputs: given, or out0, out1, ..."""
    count = len(parsed.outputs)
    if outputs is None:
        return tuple(f"out{i}" for i in range(count))
    outputs = tuple(outputs)
    if count == 0:
        raise InputError("--outputs names the outputs of a tuple expression such as 'x*y, x+y'")
    if len(outputs) != count:
        raise InputError(
            f"--outputs names {len(outputs)} output{'s' if len(outputs) != 1 else ''} "
            f"({','.join(outputs)}); the expression has {count}"
        )
    for output in outputs:
        if not NAME_PATTERN.match(output) or keyword.iskeyword(output):
            raise InputError(
                f"--outputs expects snake_case identifiers such as 'u,v', got {output!r}"
            )
    doubled = sorted({n for n in outputs if outputs.count(n) > 1})
    if doubled:
        raise InputError(f"--outputs names {doubled[0]!r} twice")
    clash = sorted(set(outputs) & set(user_names))
    if clash:
        raise InputError(f"output {clash[0]!r} has the name of an input or parameter")
    reserved = sorted(set(outputs) & _RESERVED)
    if reserved:
        raise InputError(f"output name {reserved[0]!r} is used by the generated code")
    return outputs


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
    arguments = {a for spec in functions for a in spec.tensor_args + spec.grad_names()}
    arguments -= set(user)  # a user name taken by an entry is reported below
    for entry in sorted(set(partials) & arguments):  # only possible with named outputs
        raise InputError(
            f"table entry {entry!r} would have the name of an argument; rename that output"
        )
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
