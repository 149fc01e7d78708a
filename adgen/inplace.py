"""Stage 3a': buffer-reusing source for kernels that run inside `Function.forward`.

`Function.forward` runs without autograd recording, so its kernel may write into
buffers it allocated itself. Each CSE temporary stays one statement, written as
a chain: the first operation allocates (or takes over the buffer of a temporary
that is dead after this statement), the rest work in place:

    t2 = x.square().mul_(0.044715).add_(1.0).mul_(t1)

The chain does the floating-point operations of the formula as
`printer.torch_code` writes it (and as measure.py measures it), in the same
order, rounding for rounding: a sum folds its terms left to right over
`as_ordered_terms()`, subtracting a term printed with a minus sign; a product
folds its factors over `as_ordered_factors()` (a number coefficient is a factor
like any other: `0.5*x*y` is `(0.5*x)*y`) and, with factors of negative power,
divides the numerator's product by the denominator's; leading Python floats
(numbers, parameters) combine in Python first, as in the printed text; and
`c / t` is `t.reciprocal() * c`, as torch computes it. Only exact identities are
used to reach a buffer: the two operands of one + or * may swap, `a - b` is
`a + (-b)`, a product's minus sign may go on any factor, and multiplying by
1.0 is dropped. Where the order leaves no buffer to write into, the operation
allocates, and the operations after it write into its result.

Rules that keep the buffer reuse sound:
- an argument of the kernel (an input) is never written to;
- a temporary is taken over only at its last use, and only where it occurs
  once in the statement (Python evaluates a chain left to right);
- `a op= b` only when the inputs b depends on are a subset of those a depends
  on. Shape, dtype and (under vmap) batching follow the inputs, so `a` already
  has the broadcast shape, the promoted dtype, and is batched whenever `b` is:
  vmap rejects an in-place op on an unbatched target with a batched operand.

Kernels inside `backward`/`jvp` must stay differentiable and keep using
`printer.torch_code` (out of place).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import sympy
from sympy.core.mul import _keep_coeff

from .derive import Kernel
from .functions import held
from .printer import torch_code
from .registry import IN_PLACE_METHODS, TORCH_NAMES

# Powers with a method of their own (cheaper and exact, like the printer's).
_POWER_METHODS: dict[sympy.Expr, str] = {
    sympy.Integer(-1): "reciprocal",
    sympy.S.Half: "sqrt",
    -sympy.S.Half: "rsqrt",
}


@dataclass(frozen=True)
class InPlaceKernel:
    """A kernel as buffer-reusing statements."""

    statements: tuple[str, ...]  # ("t0 = x.square().mul_(0.5)",)
    outputs: tuple[str | None, ...]  # ("grad.mul(t0)",); None where the output is zero


@dataclass(frozen=True)
class _Code:
    """Source of one value and what the next operation may do with it."""

    text: str  # "x.square().mul_(0.5)"
    owned: bool  # a buffer this statement allocated or took over: may be written to
    inputs: frozenset[str]  # {"x"}: kernel arguments the value depends on
    scalar: bool = False  # a Python float (numbers and parameters): combines in Python


def print_in_place(kernel: Kernel, params: frozenset[str]) -> InPlaceKernel:
    """`kernel` as statements that reuse buffers (see the module docstring).

    `params` names the arguments that are Python floats; temporaries of those
    alone are floats too and print with `math`, as in `printer.torch_code`.
    """
    return _Lowering(kernel, params).run()


class _Lowering:
    def __init__(self, kernel: Kernel, params: frozenset[str]) -> None:
        self.kernel = kernel
        self.scalars = set(params)
        self.inputs = {a: frozenset({a}) for a in kernel.arguments if a not in params}
        self.owned_temporaries: set[str] = set()
        self.reusable: set[str] = set()  # temporaries this statement may write to

    def run(self) -> InPlaceKernel:
        values = [value for _, value in self.kernel.temporaries] + list(self.kernel.outputs)
        last_use: dict[str, float] = {}
        for index, value in enumerate(values):
            for symbol in value.free_symbols:
                last_use[symbol.name] = index
        for output in self.kernel.outputs:
            if output.is_Symbol:  # returned as it is: alive to the end
                last_use[output.name] = float("inf")

        statements = []
        for index, (name, value) in enumerate(self.kernel.temporaries):
            if self.is_scalar(value):
                statements.append(f"{name} = {torch_code(value, frozenset(self.scalars))}")
                self.scalars.add(name)
                continue
            code = self.statement(value, index, last_use)
            statements.append(f"{name} = {code.text}")
            self.inputs[name] = code.inputs
            if code.owned:
                self.owned_temporaries.add(name)
        outputs = []
        start = len(self.kernel.temporaries)
        for index, value in enumerate(self.kernel.outputs, start):
            if value == 0:
                outputs.append(None)
            elif self.is_scalar(value):
                outputs.append(torch_code(value, frozenset(self.scalars)))
            else:
                outputs.append(self.statement(value, index, last_use).text)
        return InPlaceKernel(statements=tuple(statements), outputs=tuple(outputs))

    def statement(self, value: sympy.Expr, index: int, last_use: dict[str, float]) -> _Code:
        occurrences = _count_symbols(value)
        self.reusable = {
            name
            for name, count in occurrences.items()
            if count == 1 and name in self.owned_temporaries and last_use[name] == index
        }
        code = self.lower(value)
        # 1.0*t0 is t0, a name still in use: a new name needs a buffer of its own.
        # (A bare name is returned as it is; it stays alive to the end.)
        if not code.owned and not value.is_Symbol:
            code = _Code(f"{code.text}.clone()", True, code.inputs)
        return code

    # -- one expression -------------------------------------------------------

    def is_scalar(self, expr: sympy.Expr) -> bool:
        return all(s.name in self.scalars for s in expr.free_symbols)

    def depends_on(self, expr: sympy.Expr) -> frozenset[str]:
        result: frozenset[str] = frozenset()
        for symbol in expr.free_symbols:
            result |= self.inputs.get(symbol.name, frozenset())
        return result

    def scalar(self, expr: sympy.Expr) -> str:
        return torch_code(expr, frozenset(self.scalars))

    def lower(self, expr: sympy.Expr) -> _Code:
        """Source for a tensor-valued `expr`."""
        if isinstance(expr, held):  # its own operations, in their order
            return self.lower(expr.args[0])
        if expr.is_Symbol:
            return _Code(expr.name, expr.name in self.reusable, self.inputs[expr.name])
        if expr.is_Add:
            return self.lower_add(expr)
        if expr.is_Mul:
            return self.lower_mul(expr)
        if expr.is_Pow and self.is_scalar(expr.args[1]):
            return self.lower_power(*expr.args)
        method = IN_PLACE_METHODS.get(type(expr))
        if method is not None and not self.is_scalar(expr.args[0]):
            argument = self.lower(expr.args[0])
            if argument.owned:
                return _Code(f"{_receiver(argument.text)}.{method}_()", True, argument.inputs)
            return _Code(f"{TORCH_NAMES[type(expr)]}({argument.text})", True, argument.inputs)
        # Everything else (where, clamp, softplus, atan2, ...) allocates its result.
        return _Code(_receiver(self.fallback(expr)), True, self.depends_on(expr))

    def fallback(self, expr: sympy.Expr) -> str:
        if isinstance(expr, sympy.Function) and len(expr.args) == 1 and type(expr) in TORCH_NAMES:
            # softplus and the like: no in-place twin, but the argument may chain.
            return f"{TORCH_NAMES[type(expr)]}({self.lower(expr.args[0]).text})"
        return torch_code(expr, frozenset(self.scalars))

    def lower_power(self, base: sympy.Expr, exponent: sympy.Expr) -> _Code:
        value = self.lower(base)
        method = _POWER_METHODS.get(exponent)
        if exponent == 2 and not value.owned:
            method = "square"  # square_ has no vmap batching rule: pow_(2) below
        if method is None:
            argument = str(int(exponent)) if exponent.is_Integer else self.scalar(exponent)
            method, argument = "pow", argument
        else:
            argument = ""
        suffix = "_" if value.owned else ""
        return _Code(f"{_receiver(value.text)}.{method}{suffix}({argument})", True, value.inputs)

    # -- sums and products, in the printer's order --------------------------------

    def value(self, expr: sympy.Expr) -> _Code:
        """An operand: a Python float's source, or a tensor's chain."""
        if self.is_scalar(expr):
            return _Code(self.scalar(expr), False, frozenset(), scalar=True)
        return self.lower(expr)

    def lower_add(self, expr: sympy.Expr) -> _Code:
        """Terms folded left to right, as the printer writes them; a term printed
        with a minus sign is subtracted."""
        terms = list(expr.as_ordered_terms())
        if _negative(terms[0]) and not _negative(terms[1]):
            terms[:2] = terms[1::-1]  # (-a) + b is b - a: no negation to compute
        code = self.value(terms[0])
        for term in terms[1:]:
            if _negative(term):
                code = self.subtract(code, term)
            else:
                code = self.apply(code, "+", self.value(term))
        return code

    def subtract(self, code: _Code, term: sympy.Expr) -> _Code:
        """`code - (-term)` for a `term` printed with a minus sign."""
        magnitude = self.value(-term)
        writable = code.owned and magnitude.inputs <= code.inputs
        if magnitude.owned and not writable:
            # a - b == (-b) + a: the term, sign and all, takes a in its buffer.
            signed = self.lower(term)
            if code.inputs <= signed.inputs:
                return self.apply(signed, "+", code)
        return self.apply(code, "-", magnitude)

    def lower_mul(self, expr: sympy.Expr) -> _Code:
        """Numerator factors folded left to right, divided by the product of the
        denominator's; the sign rides on the first Python float, if any."""
        numerator, denominator, negative = self.fraction(expr)
        codes = [self.value(f) for f in numerator]
        if negative:  # x*(-1) == -x wherever the minus goes
            first = next((i for i, c in enumerate(codes) if c.scalar), None)
            if first is not None:
                codes[first] = self.value(-numerator[first])
                negative = False
        code = self.fold(codes)
        if denominator:
            divisor = self.fold([self.value(f) for f in denominator])
            if code.scalar:
                # torch computes `c / t` as `t.reciprocal() * c` (Tensor.__rdiv__)
                suffix = "_" if divisor.owned else ""
                inverse = f"{_receiver(divisor.text)}.reciprocal{suffix}()"
                code = self.apply(_Code(inverse, True, divisor.inputs), "*", code)
            else:
                code = self.apply(code, "/", divisor)
        return self.negate(code) if negative else code

    def fraction(self, expr: sympy.Expr) -> tuple[list[sympy.Expr], list[sympy.Expr], bool]:
        """How the printer reads a product: (numerator factors, denominator
        factors, whether a minus sign goes in front), each list in its order."""
        coefficient, rest = expr.as_independent(*expr.free_symbols, as_Add=False)
        if coefficient.is_number and not coefficient.is_Rational and rest != 1:
            # The printer writes irrational constants (pi/2) as one literal.
            if rest.is_Mul:
                numerator, denominator, _ = self.fraction(rest)
            elif rest.is_Pow and rest.exp == -1:  # printed as `1.0 / base`
                numerator, denominator = [sympy.S.One], [rest.base]
            else:
                numerator, denominator = [rest], []
            return [abs(coefficient), *numerator], denominator, bool(coefficient.is_negative)
        leading, others = expr.as_coeff_Mul()
        negative = bool(leading.is_negative)
        magnitude = _keep_coeff(-leading, others) if negative else expr
        numerator, denominator = [], []
        for factor in magnitude.as_ordered_factors():
            if factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative:
                exponent = -factor.exp
                denominator.append(
                    factor.base
                    if exponent == 1
                    else sympy.Pow(factor.base, exponent, evaluate=False)
                )
            else:
                numerator.append(factor)
        return numerator or [sympy.S.One], denominator, negative

    def fold(self, codes: list[_Code]) -> _Code:
        code = codes[0]
        for operand in codes[1:]:
            code = self.apply(code, "*", operand)
        return code

    def apply(self, left: _Code, operator: str, right: _Code) -> _Code:
        """`left operator right`: one operation, written into a buffer that may
        take it (the operands of + and * may swap), else allocating."""
        if operator == "*":
            for one, other in ((left, right), (right, left)):
                if one.scalar and one.text in ("1.0", "-1.0"):
                    return other if one.text == "1.0" else self.negate(other)
        if left.scalar and right.scalar:  # Python arithmetic, as in the printed text
            return _Code(_binary(left.text, operator, right.text), False, frozenset(), scalar=True)
        inputs = left.inputs | right.inputs
        method = _METHODS[operator]
        if left.owned and right.inputs <= left.inputs:
            return _Code(f"{_receiver(left.text)}.{method}_({right.text})", True, inputs)
        if operator in "+*" and right.owned and left.inputs <= right.inputs:
            return _Code(f"{_receiver(right.text)}.{method}_({left.text})", True, inputs)
        return _Code(_binary(left.text, operator, right.text), True, inputs)

    def negate(self, code: _Code) -> _Code:
        if code.scalar:
            return _Code(f"-{_receiver(code.text)}", False, frozenset(), scalar=True)
        if code.owned:
            return _Code(f"{_receiver(code.text)}.neg_()", True, code.inputs)
        return _Code(f"-{_receiver(code.text)}", True, code.inputs)


_METHODS = {"+": "add", "-": "sub", "*": "mul", "/": "div"}


def _negative(term: sympy.Expr) -> bool:
    """Whether the printer writes `term` with a leading minus sign."""
    return bool(term.as_coeff_Mul()[0].is_negative)


def _binary(left: str, operator: str, right: str) -> str:
    """`left operator right` as Python source that does that one operation last:
    an operand is parenthesized where Python would otherwise group differently
    (or, for a negated right operand, where it would read badly)."""
    level = _PRECEDENCE[operator]
    if _precedence(left) < level:
        left = f"({left})"
    if _precedence(right) <= level or _precedence(right) == _UNARY:
        right = f"({right})"
    return f"{left} {operator} {right}"


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_UNARY = 3
_ATOM = 5


def _precedence(text: str) -> int:
    """How tightly the top-level operation of the source `text` binds (a name,
    call, attribute or number: an atom). `text` is source this module printed."""
    if _parenthesized(text):
        return _ATOM
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.BinOp):
        return {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.Pow: 4}.get(type(node.op), 0)
    if isinstance(node, ast.UnaryOp):
        return _UNARY
    if isinstance(node, (ast.Name, ast.Call, ast.Attribute, ast.Constant, ast.Subscript)):
        return _ATOM
    return 0  # comparisons, conditionals


def _parenthesized(text: str) -> bool:
    """Whether `text` is one parenthesized group: `(a + b)`, not `(a) + (b)`."""
    depth = 0
    for position, char in enumerate(text):
        depth += char in "(["
        depth -= char in ")]"
        if depth == 0:
            return position == len(text) - 1 and text[0] == "("
    return False


def _receiver(text: str) -> str:
    """`text` as the object of a method call: parenthesized unless an atom."""
    return text if _precedence(text) == _ATOM else f"({text})"


def _count_symbols(expr: sympy.Expr) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in sympy.preorder_traversal(expr):
        if node.is_Symbol:
            counts[node.name] = counts.get(node.name, 0) + 1
    return counts
