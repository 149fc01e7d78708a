"""Stage 3a': buffer-reusing source for kernels that run inside `Function.forward`.

`Function.forward` runs without autograd recording, so its kernel may write into
buffers it allocated itself. Each CSE temporary stays one statement, written as
a chain: the first operation allocates (or takes over the buffer of a temporary
that is dead after this statement), the rest work in place:

    t2 = x.square().mul_(0.044715).add_(1.0).mul_(t1)

Rules that keep this sound:
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

from dataclasses import dataclass

import sympy

from .derive import Kernel
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
                return _Code(f"{_operand(argument.text)}.{method}_()", True, argument.inputs)
            return _Code(f"{TORCH_NAMES[type(expr)]}({argument.text})", True, argument.inputs)
        # Everything else (where, clamp, softplus, atan2, ...) allocates its result.
        return _Code(_operand(self.fallback(expr)), True, self.depends_on(expr))

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
        return _Code(f"{_operand(value.text)}.{method}{suffix}({argument})", True, value.inputs)

    def spine(self, terms: list[sympy.Expr]) -> sympy.Expr:
        """The term whose buffer the others accumulate into: one depending on the
        most inputs, preferably a buffer to take over, else one that allocates."""

        def rank(term: sympy.Expr) -> tuple[int, int]:
            _, factors = self.split_product(term)
            if term.is_Symbol:
                preference = 2 if term.name in self.reusable else 0
            elif len(factors) == 1 and factors[0].is_Symbol:
                preference = 0  # c*x: absorbed by another term as add_(x, alpha=c)
            else:
                preference = 1
            return (len(self.depends_on(term)), preference)

        return max(terms, key=rank)  # max keeps the first of equals: deterministic

    def combine(
        self, first: sympy.Expr, rest: list[sympy.Expr], step
    ) -> _Code:
        """Start from `first` and apply `step(code, term)` for each term, those
        that widen the result (not in place) first."""
        code = self.lower(first)
        widening = [t for t in rest if not self.depends_on(t) <= code.inputs]
        for term in widening + [t for t in rest if t not in widening]:
            code = step(code, term)
        return code

    def lower_add(self, expr: sympy.Expr) -> _Code:
        constants = [t for t in expr.args if self.is_scalar(t)]
        terms = [t for t in expr.args if not self.is_scalar(t)]
        first = self.spine(terms)
        rest = list(terms)
        rest.remove(first)
        code = self.combine(first, rest, self.add_term)
        if constants:
            constant = sympy.Add(*constants)
            negative = constant.could_extract_minus_sign()
            number = self.scalar(-constant if negative else constant)
            if code.owned:
                text = f"{_operand(code.text)}.{'sub_' if negative else 'add_'}({number})"
            else:
                text = _binary(code.text, "-" if negative else "+", number)
            code = _Code(text, True, code.inputs)
        return code

    def add_term(self, code: _Code, term: sympy.Expr) -> _Code:
        inputs = code.inputs | self.depends_on(term)
        coefficient, factors = self.split_product(term)
        in_place = code.owned and inputs == code.inputs
        if in_place and len(factors) == 2 and coefficient not in (1, -1):
            # acc + c*a*b: the constant rides on add_ (addcmul_ would save a pass
            # but has no vmap batching rule)
            product = self.lower(sympy.Mul(*factors)).text
            alpha = self.scalar(coefficient)
            return _Code(f"{_operand(code.text)}.add_({product}, alpha={alpha})", True, inputs)
        if len(factors) == 1:
            operand = self.lower(factors[0]).text
            if coefficient == -1:
                if in_place:
                    return _Code(f"{_operand(code.text)}.sub_({operand})", True, inputs)
                return _Code(_binary(code.text, "-", operand), True, inputs)
            if in_place and coefficient != 1:
                alpha = self.scalar(coefficient)
                return _Code(f"{_operand(code.text)}.add_({operand}, alpha={alpha})", True, inputs)
        if coefficient.is_number and coefficient.is_negative:
            operand = self.lower(-term).text
            if in_place:
                return _Code(f"{_operand(code.text)}.sub_({operand})", True, inputs)
            return _Code(_binary(code.text, "-", operand), True, inputs)
        operand = self.lower(term).text
        if in_place:
            return _Code(f"{_operand(code.text)}.add_({operand})", True, inputs)
        return _Code(_binary(code.text, "+", operand), True, inputs)

    def split_product(self, term: sympy.Expr) -> tuple[sympy.Expr, list[sympy.Expr]]:
        """c*a*b -> (c, [a, b]) with c a number or a product of parameters."""
        factors = list(term.args) if term.is_Mul else [term]
        coefficient = sympy.Mul(*[f for f in factors if self.is_scalar(f)])
        if coefficient.is_Float and abs(float(coefficient)) == 1.0:
            coefficient = sympy.Integer(int(coefficient))  # 1.0*x: nothing to multiply
        return coefficient, [f for f in factors if not self.is_scalar(f)]

    def lower_mul(self, expr: sympy.Expr) -> _Code:
        coefficient, factors = self.split_product(expr)
        multipliers = [f for f in factors if not _is_divisor(f)]
        first = self.spine(multipliers or factors)
        rest = list(factors)
        rest.remove(first)
        code = self.combine(first, rest, self.mul_factor)
        if coefficient == -1:
            return _Code(f"{_operand(code.text)}.neg_()" if code.owned else f"-{_operand(code.text)}", True, code.inputs)
        if coefficient != 1:
            number = self.scalar(coefficient)
            if code.owned:
                return _Code(f"{_operand(code.text)}.mul_({number})", True, code.inputs)
            return _Code(_binary(number, "*", code.text), True, code.inputs)
        return code

    def mul_factor(self, code: _Code, factor: sympy.Expr) -> _Code:
        inputs = code.inputs | self.depends_on(factor)
        in_place = code.owned and inputs == code.inputs
        if _is_divisor(factor):
            operand = self.lower(factor.args[0]).text
            if in_place:
                return _Code(f"{_operand(code.text)}.div_({operand})", True, inputs)
            return _Code(_binary(code.text, "/", operand), True, inputs)
        operand = self.lower(factor).text
        if in_place:
            return _Code(f"{_operand(code.text)}.mul_({operand})", True, inputs)
        return _Code(_binary(code.text, "*", operand), True, inputs)


def _is_divisor(factor: sympy.Expr) -> bool:
    return factor.is_Pow and factor.args[1] == -1


def _binary(left: str, operator: str, right: str) -> str:
    """`left op right`, parenthesizing an operand only where Python needs it or
    where dropping the parentheses would change the order of evaluation."""
    if operator in "*/" and _top_level_operators(left) & set("+-"):
        left = f"({left})"
    wrap_right = {"+": "+-", "-": "+-", "*": "+-/", "/": "+-*/"}[operator]
    if _top_level_operators(right) & set(wrap_right):
        right = f"({right})"
    return f"{left} {operator} {right}"


def _top_level_operators(text: str) -> set[str]:
    found = set()
    depth = 0
    for position, char in enumerate(text):
        depth += char in "(["
        depth -= char in ")]"
        if depth == 0 and char in "+-*/" and position > 0 and text[position - 1] in " ":
            found.add(char)
        elif depth == 0 and char == "-" and position == 0:
            found.add("u")  # unary minus binds tighter than * but not than **
    return found


def _operand(text: str) -> str:
    """`text` as an operand: parenthesized unless it is a name, a number or a
    call chain (black drops parentheses it does not need)."""
    depth = 0
    for char in text:
        depth += char in "(["
        depth -= char in ")]"
        if depth == 0 and char in " +-*/%<>=&|~":
            return f"({text})"
    return text


def _count_symbols(expr: sympy.Expr) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in sympy.preorder_traversal(expr):
        if node.is_Symbol:
            counts[node.name] = counts.get(node.name, 0) + 1
    return counts
