"""Stage 1: expression text -> sympy expression.

The text is data. It goes through Python's `ast` parser and a whitelist of node
types; nothing from it is ever passed to `eval`, `sympify` or `parse_expr`.
"""

from __future__ import annotations

import ast
import difflib
import string
from collections.abc import Callable
from dataclasses import dataclass

import sympy

from . import functions
from .errors import InputError, caret_line
from .registry import BY_NAME

MAX_LENGTH = 10_000  # characters; ast.parse itself fails badly on huge inputs
MAX_DEPTH = 100  # nesting of parentheses, calls and operators
MAX_OPERATIONS = 300  # operators and calls; third derivatives grow fast
MAX_CONSTANT_EXPONENT = 1024  # 2**(10**100) would make sympy compute forever
MAX_OUTPUTS = 16  # a top-level tuple: one output per item

# Functions an expression may call: name -> (constructor, arity), from the
# registry's rows (registry.py is the one table of functions).
FUNCTIONS: dict[str, tuple[Callable[..., sympy.Expr], int]] = {
    name: (row.construct, row.arity) for name, row in BY_NAME.items()
}

# Uncalled names that are constants; every other uncalled name is a symbol,
# whatever sympy would make of it (beta, gamma, N, S, Q, I ...).
CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "e": sympy.E, "E": sympy.E}

_ALLOWED_CHARACTERS = frozenset(
    string.ascii_letters + string.digits + " \t\n" + "+-*/().,_<>=!"
)
_BINARY_OPERATORS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARISONS = {
    ast.Lt: sympy.StrictLessThan,
    ast.LtE: sympy.LessThan,
    ast.Gt: sympy.StrictGreaterThan,
    ast.GtE: sympy.GreaterThan,
    ast.Eq: sympy.Eq,
    ast.NotEq: sympy.Ne,
}
_NODE_DESCRIPTIONS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.Compare: "comparisons (outside the condition of where())",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "conditional expressions",
    ast.NamedExpr: "':='",
    ast.Starred: "starred arguments",
    ast.Tuple: "tuples",
    ast.List: "lists",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.JoinedStr: "f-strings",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slices",
}


_COUNTED = (ast.BinOp, ast.UnaryOp, ast.Call)
_CHAINED = (ast.Add, ast.Sub, ast.Mult, ast.Div)


def _is_chain(node: ast.AST, op: ast.operator) -> bool:
    """Whether `node` continues a chain of + and - (or * and /) that `op` belongs to."""
    if not isinstance(node, ast.BinOp):
        return False
    additive = (ast.Add, ast.Sub)
    multiplicative = (ast.Mult, ast.Div)
    family = additive if isinstance(op, additive) else multiplicative
    return isinstance(node.op, family)


@dataclass(frozen=True)
class ParsedExpression:
    """A user's expression, checked and converted to sympy."""

    text: str  # "x*exp(-alpha*x**2)*cos(y)": the user's text, whitespace collapsed
    expr: sympy.Expr  # x*exp(-alpha*x**2)*cos(y) as a sympy tree
    names: tuple[str, ...]  # ("x", "alpha", "y"): symbols in order of first appearance
    call_name: str | None  # "sin" for "sin(x)": the whole expression is one call of names
    # (r*cos(t), r*sin(t)): one expression per output when the text is a top-level
    # tuple (then `expr` is their sympy.Tuple); empty for a single output.
    outputs: tuple[sympy.Expr, ...] = ()
    # Each output as written: sympy would make x*y*y x*y**2 (whose square
    # overflows where (x*y)*y does not); here every operation Python would round
    # on its own is held, in Python's order ((x*y)*y). Empty: as `expr`/`outputs`.
    written: tuple[sympy.Expr, ...] = ()


def parse_expression(text: str) -> ParsedExpression:
    """Parse `text` into a sympy expression, or raise InputError saying where it is wrong."""
    _check_characters(text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        column = _syntax_error_column(text.strip(), error)
        reason = error.msg if "limit" not in error.msg else "number has too many digits"
        raise InputError(
            f"invalid syntax at column {column + 1} ({reason})",
            caret_line(text.strip(), column),
        ) from None
    except (MemoryError, RecursionError, ValueError):
        raise InputError("expression is too deeply nested or too large") from None
    operations = sum(1 for node in ast.walk(tree) if isinstance(node, _COUNTED))
    if operations > MAX_OPERATIONS:
        raise InputError(
            f"expression has {operations} operations; the limit is {MAX_OPERATIONS} "
            "(its third derivatives would take too long to generate)"
        )
    converter = _Converter(text.strip())
    if isinstance(tree.body, ast.Tuple):  # several outputs: "r*cos(t), r*sin(t)"
        items = _output_items(converter, tree.body)
        outputs = tuple(_output(converter, item) for item in items)
        return ParsedExpression(
            text=" ".join(text.split()),
            expr=sympy.Tuple(*outputs),
            names=tuple(converter.names),
            call_name=None,
            outputs=outputs,
            written=tuple(_written(text.strip(), item, e) for item, e in zip(items, outputs)),
        )
    expr = _output(converter, tree.body)
    return ParsedExpression(
        text=" ".join(text.split()),
        expr=expr,
        names=tuple(converter.names),
        call_name=_call_name(tree.body),
        written=(_written(text.strip(), tree.body, expr),),
    )


def _output_items(converter: _Converter, node: ast.Tuple) -> list[ast.expr]:
    """The items of a top-level tuple, each one output, checked for count and nesting."""
    if len(node.elts) < 2:
        what = "an empty tuple" if not node.elts else "a tuple of one item"
        raise converter.error(f"{what} is not an expression: give 2 to {MAX_OUTPUTS} outputs", node)
    if len(node.elts) > MAX_OUTPUTS:
        raise converter.error(
            f"{len(node.elts)} outputs; the limit is {MAX_OUTPUTS}", node
        )
    for item in node.elts:
        if isinstance(item, ast.Tuple):
            raise converter.error("nested tuples not allowed (outputs are one flat tuple)", item)
    return list(node.elts)


def _output(converter: _Converter, node: ast.expr) -> sympy.Expr:
    expr = converter.convert(node, depth=0)
    if not isinstance(expr, sympy.Expr):
        raise InputError("expression does not evaluate to a number")
    return expr


def _written(text: str, node: ast.expr, expr: sympy.Expr) -> sympy.Expr:
    """`expr` (already converted and checked) as written: see ParsedExpression."""
    if expr.has(sympy.Piecewise):
        return expr  # where(): derivatives as written give up on it anyway
    return _needed_holds(_Converter(text, hold=True).convert(node, depth=0))


def _needed_holds(expr: sympy.Basic, inside_arithmetic: bool = False) -> sympy.Basic:
    """`expr` held only where sympy could merge a part into its neighbours: as an
    argument of a sum, product or power (sin(held(x*y)) is sin(x*y))."""
    if isinstance(expr, functions.held):
        inner = _needed_holds(expr.args[0])
        return functions.held(inner) if inside_arithmetic else inner
    if expr.is_Atom:
        return expr
    arithmetic = expr.is_Add or expr.is_Mul or expr.is_Pow
    return expr.func(*(_needed_holds(a, arithmetic) for a in expr.args))


def joined_outputs(expr: object) -> str:
    """The text of an expression given as one string, or as a list of strings,
    one per output: "r*cos(t), r*sin(t)"."""
    if isinstance(expr, str):
        return expr
    if not isinstance(expr, (list, tuple)) or not all(isinstance(e, str) for e in expr):
        raise InputError(f"expr must be a string or a list of strings, got {expr!r}")
    if len(expr) < 2:
        raise InputError("a list of expressions needs one string per output, at least two")
    for index, item in enumerate(expr):
        if not item.strip():
            raise InputError(f"expr[{index}] is empty")
        count = len(parse_expression(item).outputs)
        if count:
            raise InputError(f"expr[{index}] holds {count} outputs; give one expression per item")
    return ", ".join(" ".join(item.split()) for item in expr)


def _check_characters(text: str) -> None:
    if not text.strip():
        raise InputError("empty expression")
    if len(text) > MAX_LENGTH:
        raise InputError(
            f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}"
        )
    depth = 0
    for column, char in enumerate(text):
        if char not in _ALLOWED_CHARACTERS:
            what = "non-ASCII character" if ord(char) > 127 else "character"
            raise InputError(
                f"{what} {char!r} is not allowed at column {column + 1}",
                caret_line(text, column),
            )
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth > MAX_DEPTH:
            raise InputError(
                f"parentheses nest more than {MAX_DEPTH} deep at column {column + 1}",
                caret_line(text, column),
            )


def _syntax_error_column(text: str, error: SyntaxError) -> int:
    lines = text.split("\n")
    line = max(1, min(error.lineno or 1, len(lines)))
    offset = max(1, error.offset or 1)
    column = sum(len(previous) + 1 for previous in lines[: line - 1]) + offset - 1
    return min(column, len(text) - 1) if text else 0


def _call_name(node: ast.expr) -> str | None:
    """The function's name when the expression is `f(a, b)` with plain names as arguments."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.args
        and all(isinstance(arg, ast.Name) for arg in node.args)
    ):
        return node.func.id.lower()
    return None


class _Converter:
    """Walks a whitelisted `ast` tree and builds the sympy expression."""

    def __init__(self, text: str, hold: bool = False) -> None:
        self.text = text
        self.hold = hold  # hold each operation's result (ParsedExpression.written)
        self.line_starts = [0]
        for line in text.split("\n")[:-1]:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)
        self.names: list[str] = []

    def error(self, message: str, node: ast.AST, hint: str = "") -> InputError:
        column = self.line_starts[node.lineno - 1] + node.col_offset
        return InputError(
            f"{message} at column {column + 1}{hint}", caret_line(self.text, column)
        )

    def convert(self, node: ast.AST, depth: int) -> sympy.Basic:
        if depth > MAX_DEPTH:
            raise self.error(f"expression nests more than {MAX_DEPTH} deep", node)
        method = getattr(self, f"_convert_{type(node).__name__}", None)
        if method is None:
            what = _NODE_DESCRIPTIONS.get(type(node), f"'{type(node).__name__}'")
            raise self.error(f"{what} not allowed", node)
        return method(node, depth + 1)

    def _convert_Constant(self, node: ast.Constant, depth: int) -> sympy.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"constant {value!r} not allowed", node)
        if isinstance(value, int):
            return sympy.Integer(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise self.error("number out of range", node)
        if value.is_integer():
            return sympy.Integer(int(value))  # x**2.0 is x**2
        # A float stays a float: as an exact rational, 0.044715 would turn into
        # coefficients like 8943/200000 whose expansions multiply tiny values by
        # 1e-10 first and underflow in float32.
        return sympy.Float(repr(value), 17)

    def _convert_Name(self, node: ast.Name, depth: int) -> sympy.Expr:
        name = node.id
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name.startswith("_"):
            raise self.error(f"name {name!r} not allowed (names may not start with '_')", node)
        if name in FUNCTIONS:
            raise self.error(f"function {name!r} must be called, as in {name}(x)", node)
        if name not in self.names:
            self.names.append(name)
        return sympy.Symbol(name, real=True)

    def _convert_UnaryOp(self, node: ast.UnaryOp, depth: int) -> sympy.Expr:
        operand = self.convert(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise self.error(f"operator {type(node.op).__name__!r} not allowed", node)

    def _convert_BinOp(self, node: ast.BinOp, depth: int) -> sympy.Expr:
        operation = _BINARY_OPERATORS.get(type(node.op))
        if operation is None:
            symbol = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@"}.get(
                type(node.op), type(node.op).__name__
            )
            raise self.error(f"operator {symbol!r} not allowed", node)
        if isinstance(node.op, _CHAINED) and _is_chain(node.left, node.op):
            return self._convert_chain(node, depth)
        left = self.convert(node.left, depth)
        return self._combine(node, left, self.convert(node.right, depth))

    def _combine(self, node: ast.BinOp, left: sympy.Expr, right: sympy.Expr) -> sympy.Expr:
        """left `node.op` right, refusing what sympy cannot or should not compute."""
        if isinstance(node.op, ast.Pow) and left.is_number and right.is_number:
            # In sympy's own functions: the vocabulary (softplus(2)) has no
            # numeric value, so the comparison could not be decided.
            if (abs(right.rewrite(sympy.exp)) > MAX_CONSTANT_EXPONENT) is sympy.true:
                raise self.error("constant power too large", node)
        if isinstance(node.op, ast.Div) and right == 0:
            raise self.error("division by zero", node)
        result = self._checked(_BINARY_OPERATORS[type(node.op)](left, right), node)
        return functions.hold(result) if self.hold else result

    def _convert_chain(self, node: ast.BinOp, depth: int) -> sympy.Expr:
        """`a + b - c + ...` without one level of nesting per term: a long sum or
        product is flat in meaning, and Python's parser makes it left-deep."""
        links: list[ast.BinOp] = []
        head: ast.expr = node
        while isinstance(head, ast.BinOp) and _is_chain(head, node.op):
            links.append(head)
            head = head.left
        result = self.convert(head, depth)
        for link in reversed(links):
            result = self._combine(link, result, self.convert(link.right, depth))
        return result

    def _convert_Call(self, node: ast.Call, depth: int) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.error("only named functions can be called", node)
        name = node.func.id
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, FUNCTIONS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise self.error(f"unknown function {name!r}", node, hint)
        if node.keywords:
            raise self.error(f"keyword arguments not allowed in {name}()", node)
        function, arity = FUNCTIONS[name]
        if len(node.args) != arity:
            raise self.error(
                f"{name}() takes {arity} argument{'s' if arity > 1 else ''}, "
                f"got {len(node.args)}",
                node,
            )
        if name == "where":
            condition = self._condition(node.args[0], depth)
            args = [condition] + [self.convert(arg, depth) for arg in node.args[1:]]
        else:
            args = [self.convert(arg, depth) for arg in node.args]
        try:
            result = function(*args)
        except (ValueError, ArithmeticError):  # sympy evaluates erfinv(2.5) at once
            constant = ast.get_source_segment(self.text, node) or name
            raise self.error(f"constant {constant} is not a real number", node) from None
        return self._checked(result, node)

    def _condition(self, node: ast.AST, depth: int) -> sympy.Basic:
        """The first argument of where(): a comparison such as `x > 0` or `0 < x <= 1`."""
        if not isinstance(node, ast.Compare):
            raise self.error("where() needs a comparison as its condition", node)
        operands = [self.convert(node.left, depth)]
        operands += [self.convert(right, depth) for right in node.comparators]
        parts = []
        for op, left, right in zip(node.ops, operands, operands[1:]):
            relation = _COMPARISONS.get(type(op))
            if relation is None:
                raise self.error("only < <= > >= == != compare in where()", node)
            parts.append(relation(left, right))
        condition = sympy.And(*parts)
        if condition in (sympy.true, sympy.false):
            raise self.error("the condition of where() is constant", node)
        return condition

    def _checked(self, result: sympy.Expr, node: ast.AST) -> sympy.Expr:
        if result.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise self.error("expression is undefined here (a pole or infinity)", node)
        if result.has(sympy.I):
            raise self.error("expression is complex here (ops are real-valued)", node)
        if result.is_number:  # a constant such as erfinv(2.5): is it a real number?
            try:
                value = functions.elementary(result).evalf(20)
            except (ValueError, ArithmeticError):
                value = sympy.nan
            if not (value.is_real and value.is_finite):
                raise self.error(f"constant {result} is not a real number", node)
        return result
