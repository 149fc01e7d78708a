"""Stage 3a: sympy expression -> torch source text.

Only this module writes torch source. It builds on sympy's TorchPrinter and
fixes what a code generator for autograd needs: numeric constants print as
Python floats (so they follow the tensor's dtype and device), integer powers stay
integers, and every function maps through the registry's one table.
"""

from __future__ import annotations

import math
import sys

import sympy
from sympy.printing.precedence import precedence

from . import functions
from .errors import InputError
from .registry import MATH_NAMES, TENSORS_ONLY, TORCH_NAMES


def _import_torch_printer() -> type:
    # sympy.printing.pytorch imports torch at import time, only to read its
    # version. The generator must not load torch (it costs a second and is not
    # needed), so hide it for the duration of that import.
    if "torch" in sys.modules:
        from sympy.printing.pytorch import TorchPrinter
    else:
        sys.modules["torch"] = None  # type: ignore[assignment]
        try:
            from sympy.printing.pytorch import TorchPrinter
        finally:
            del sys.modules["torch"]
    return TorchPrinter


TorchPrinter = _import_torch_printer()

class AdgenTorchPrinter(TorchPrinter):
    """TorchPrinter with Python-float constants and adgen's function table.

    `scalars` names the symbols that are Python floats at run time (the op's
    parameters): functions of those alone print with `math`, since torch
    functions take tensors only.
    """

    mapping = TORCH_NAMES  # sympy class -> torch function, from the registry

    def __init__(self, scalars: frozenset[str] = frozenset()) -> None:
        super().__init__({"fully_qualified_modules": True})
        self.scalars = scalars

    def _of_scalars_only(self, expr: sympy.Expr) -> bool:
        return {s.name for s in expr.free_symbols} <= self.scalars

    def _print_Function(self, expr: sympy.Function) -> str:
        if self._of_scalars_only(expr):
            if type(expr) in MATH_NAMES:
                args = ", ".join(self._print(arg) for arg in expr.args)
                return f"{MATH_NAMES[type(expr)]}({args})"
            # No math twin (sigmoid of a parameter, say): compute it in float64.
            args = ", ".join(
                f"torch.tensor({self._print(arg)}, dtype=torch.float64)" for arg in expr.args
            )
            return f"{self._torch_name(expr)}({args})"
        if isinstance(expr, TENSORS_ONLY) and any(
            self._of_scalars_only(arg) for arg in expr.args
        ):
            return self._print_two_tensor_function(expr)
        args = ", ".join(self._print(arg) for arg in expr.args)
        return f"{self._torch_name(expr)}({args})"

    def _torch_name(self, expr: sympy.Function) -> str:
        name = self.mapping.get(type(expr))
        if name is None:
            raise InputError(f"no torch function for {type(expr).__name__}() in {expr}")
        return name

    def _print_two_tensor_function(self, expr: sympy.Function) -> str:
        """torch.logaddexp, hypot and atan2 take two tensors: with a constant or a
        parameter on one side, write the same value in ops that take numbers."""
        a, b = expr.args
        if isinstance(expr, functions.logaddexp):
            tensor, number = (a, b) if self._of_scalars_only(b) else (b, a)
            return self._print(number + functions.softplus(tensor - number))
        if isinstance(expr, functions.hypot):
            return self._print(sympy.sqrt(a**2 + b**2, evaluate=False))
        y, x = (self._print(a), self._print(b))
        like = b if self._of_scalars_only(a) else a
        wrap = f"torch.full_like({self._print(like)}, {{}})"
        y = wrap.format(y) if self._of_scalars_only(a) else y
        x = wrap.format(x) if self._of_scalars_only(b) else x
        return f"torch.atan2({y}, {x})"

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        """where(cond, a, b) chains; the last branch's condition is always true."""
        *branches, (otherwise, condition) = expr.args
        if condition != sympy.true:
            raise InputError(f"piecewise expression without a default branch: {expr}")
        code = self._print(otherwise)
        for value, cond in reversed(branches):
            code = f"torch.where({self._print(cond)}, {self._print(value)}, {code})"
        return code

    def _print_held(self, expr: functions.held) -> str:
        """Its own operation: parenthesized, so that `b / (a / b)` keeps its order."""
        (value,) = expr.args
        code = self._print(value)
        return code if value.is_Atom or isinstance(value, sympy.Function) else f"({code})"

    def _print_guarded(self, expr: functions.guarded) -> str:
        value, safe, condition = expr.args
        return f"torch.where({self._print(condition)}, {self._print(value)}, {self._print(safe)})"

    def _print_Relational(self, expr: sympy.core.relational.Relational) -> str:
        left = self.parenthesize(expr.lhs, precedence(expr))
        right = self.parenthesize(expr.rhs, precedence(expr))
        return f"{left} {expr.rel_op} {right}"

    def _print_And(self, expr: sympy.And) -> str:
        return " & ".join(f"({self._print(arg)})" for arg in expr.args)

    def _print_Or(self, expr: sympy.Or) -> str:
        return " | ".join(f"({self._print(arg)})" for arg in expr.args)

    def _print_Heaviside(self, expr: sympy.Heaviside) -> str:
        x = expr.args[0]
        at_zero = expr.args[1] if len(expr.args) > 1 else sympy.S.Half
        if at_zero == 0:
            return f"torch.sign(torch.relu({self._print(x)}))"
        if at_zero == 1:
            return f"(1.0 - torch.sign(torch.relu({self._print(-x)})))"
        if at_zero == sympy.S.Half:
            return f"(0.5 * torch.sign({self._print(x)}) + 0.5)"
        raise InputError(f"unsupported value at zero in {expr}")

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._print_extremum(expr, "maximum", "min")

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._print_extremum(expr, "minimum", "max")

    def _print_extremum(self, expr: sympy.Expr, function: str, clamp_bound: str) -> str:
        # Max(0, x) -> torch.clamp(x, min=0.0): torch.max(0, x) would fail.
        numbers = [a for a in expr.args if self._of_scalars_only(a)]
        tensors = [a for a in expr.args if not self._of_scalars_only(a)]
        code = self._print(tensors[0])
        for other in tensors[1:]:
            code = f"torch.{function}({code}, {self._print(other)})"
        for number in numbers:
            code = f"torch.clamp({code}, {clamp_bound}={self._print(number)})"
        return code

    _print_Application = _print_Function

    def _print_polygamma(self, expr: sympy.Function) -> str:
        order, arg = expr.args
        if order == 0:
            return f"torch.special.digamma({self._print(arg)})"
        return f"torch.special.polygamma({int(order)}, {self._print(arg)})"

    def _print_constant(self, expr: sympy.Expr) -> str:
        value = expr.evalf(20)
        if not value.is_real:
            raise InputError(f"constant {expr} is not a real number")
        number = float(value)
        if not math.isfinite(number):
            raise InputError(f"constant {expr} does not fit a float")
        return repr(number)

    # Every numeric constant prints as a Python float literal: torch.sqrt(2) or
    # torch.tensor(...) would fail or pin the dtype and device.
    _print_Integer = _print_constant
    _print_Rational = _print_constant
    _print_Float = _print_constant
    _print_NumberSymbol = _print_constant
    _print_Exp1 = _print_constant
    _print_Pi = _print_constant
    _print_Zero = _print_constant
    _print_One = _print_constant
    _print_NegativeOne = _print_constant
    _print_Half = _print_constant
    _print_ImaginaryUnit = _print_constant  # raises: ops are real

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Atom:
            return self._print_constant(expr)  # sqrt(2), log(3)/2 ...
        return super()._print(expr, **kwargs)

    def parenthesize(self, item, level, strict=False) -> str:
        # A positive float literal never needs parentheses; sympy would wrap
        # rationals such as 1/2 because of how it prints them.
        if isinstance(item, sympy.Expr) and item.is_number and item.is_positive:
            return self._print(item)
        return super().parenthesize(item, level, strict)

    def _print_Mul(self, expr: sympy.Mul) -> str:
        # Fold irrational constant factors into one literal: pi/2*x -> 1.57...*x.
        coefficient, rest = expr.as_independent(*expr.free_symbols, as_Add=False)
        if coefficient.is_number and not coefficient.is_Rational and rest != 1:
            sign = "-" if coefficient.is_negative else ""
            factor = self._print_constant(abs(coefficient))
            rest_code = self.parenthesize(rest, precedence(expr), strict=True)
            return f"{sign}{factor}*{rest_code}"
        return super()._print_Mul(expr)

    def _print_Pow(self, expr: sympy.Pow) -> str:
        base, exponent = expr.args
        if self._of_scalars_only(expr):
            if exponent == sympy.S.Half:
                return f"math.sqrt({self._print(base)})"
        elif exponent == sympy.S.Half:
            return f"torch.sqrt({self._print(base)})"
        elif exponent == -sympy.S.Half:
            return f"torch.rsqrt({self._print(base)})"
        if exponent == -1:
            return f"1.0 / {self.parenthesize(base, precedence(expr))}"
        if base == sympy.E:
            return f"torch.exp({self._print(exponent)})"
        # Integer exponents stay integers: pow with an int is exact and cheaper.
        if exponent.is_Integer:
            power = str(int(exponent))
            power = f"({power})" if int(exponent) < 0 else power
        else:
            power = self.parenthesize(exponent, precedence(expr), strict=True)
        return f"{self.parenthesize(base, precedence(expr), strict=True)}**{power}"


def torch_code(expr: sympy.Expr, scalars: frozenset[str] = frozenset()) -> str:
    """Python source for `expr` in torch operations, e.g. `torch.sin(x)**2`;
    `scalars` names the symbols that are Python floats, not tensors."""
    return AdgenTorchPrinter(scalars).doprint(expr)
