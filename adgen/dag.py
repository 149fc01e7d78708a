"""Stage 2, for formulas that swell: higher partial derivatives on the expression DAG.

derive takes each table entry as the derivative of the entry below it
(`sympy.diff` of a tree). That is what lets the selection stage measure and
rewrite each entry as one formula, but a tree multiplies under the product rule:
the third derivative of a product of 20 factors has thousands of terms, and
taking it, stabilising it and sharing its subexpressions takes most of a minute.

Here the derivatives are propagated forward through the expression's distinct
nodes instead, as Taylor-mode automatic differentiation does: every node gets
one temporary for its value and one for each partial derivative up to the order
asked for, each written over the temporaries of the node's arguments. For a node
g(a, b, ...) and a multiset S of inputs, Faà di Bruno's formula (the chain rule
to any order, over the set partitions of S) gives

    ∂_S g = Σ over partitions {B1..Bk} of S, over argument slots j1..jk:
            (∂^k g/∂a_j1...∂a_jk) · ∂_B1 a_j1 · ... · ∂_Bk a_jk

with g's own partial derivatives from sympy (exp' is exp, written as the node's
value). Sums and products of many terms are taken two at a time. The program's
size grows with the number of nodes times the number of entries (the cheap
gradient principle), not with the expanded tree.

Only the entries' formulas change, never their values: a table entry computed
here is the same mathematical function as the one derive would have taken. Nodes
whose derivative is not elementary in sympy's sense (where(), guarded branches,
comparisons) make `derivatives` return None, and derive goes on by trees.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import sympy

from .functions import guarded, held
from .stable import stabilize


@dataclass(frozen=True)
class DagDerivatives:
    """A straight-line program and the entries it computes."""

    statements: tuple[tuple[sympy.Symbol, sympy.Expr], ...]  # in order; each reads earlier ones
    entries: dict[tuple[int, tuple[int, ...]], sympy.Expr]  # (output, index) -> over statements


class NotElementary(Exception):
    """A node this propagation does not differentiate."""


def derivatives(
    outputs: tuple[sympy.Expr, ...],
    inputs: tuple[sympy.Symbol, ...],
    orders: tuple[int, ...],
    names: Iterator[sympy.Symbol],
) -> DagDerivatives | None:
    """Every partial derivative of each of `outputs` by `inputs` of the given
    orders, as one program whose temporaries take their names from `names`;
    None where a node is not differentiated here. Entries that are zero are
    absent; an index (0, 0, 1) is ∂³/∂x∂x∂y for inputs (x, y)."""
    program = _Program(inputs, names)
    try:
        entries = {}
        for output, expr in enumerate(outputs):
            for order in orders:
                for index in itertools.combinations_with_replacement(range(len(inputs)), order):
                    value = program.derivative(expr, index)
                    if value != 0:
                        entries[(output, index)] = value
    except NotElementary:
        return None
    return DagDerivatives(program.used_statements(entries.values()), entries)


class _Program:
    """The statements written so far, and what each node's value and partial
    derivatives are over them (each computed once)."""

    def __init__(self, inputs: tuple[sympy.Symbol, ...], names: Iterator[sympy.Symbol]) -> None:
        self.inputs = inputs
        self.names = names
        self.statements: list[tuple[sympy.Symbol, sympy.Expr]] = []
        self.values: dict[sympy.Expr, sympy.Expr] = {}  # node -> its value's temporary
        self.partials: dict[tuple[sympy.Expr, tuple[int, ...]], sympy.Expr] = {}
        self.local: dict[tuple[sympy.Expr, tuple[int, ...]], sympy.Expr] = {}
        self.inputs_in: dict[sympy.Expr, frozenset[int]] = {}
        self.operations: dict[sympy.Expr, tuple[dict[int, sympy.Dummy], sympy.Expr]] = {}
        self.forms: dict[tuple[sympy.Expr, tuple[int, ...]], sympy.Expr] = {}

    def inputs_of(self, node: sympy.Expr) -> frozenset[int]:
        """The positions of the inputs in `node` (sympy walks the tree for free_symbols)."""
        if node not in self.inputs_in:
            free = node.free_symbols
            self.inputs_in[node] = frozenset(i for i, s in enumerate(self.inputs) if s in free)
        return self.inputs_in[node]

    def depends(self, node: sympy.Expr) -> bool:
        return bool(self.inputs_of(node))

    def statement(self, value: sympy.Expr) -> sympy.Expr:
        """`value` as a temporary of its own (numbers and names stay as they are)."""
        if value.is_Atom or (-value).is_Atom:
            return value
        symbol = next(self.names)
        self.statements.append((symbol, value))
        return symbol

    def value(self, node: sympy.Expr) -> sympy.Expr:
        """The temporary holding `node`'s value (the node itself where no input is in it)."""
        if not self.depends(node) or node.is_Symbol:
            return node
        if isinstance(node, held):  # held(e) is e
            return self.value(node.args[0])
        if node not in self.values:
            arguments = [self.value(a) for a in _arguments(node)]
            self.values[node] = self.statement(_rebuilt(node, arguments))
        return self.values[node]

    def derivative(self, node: sympy.Expr, index: tuple[int, ...]) -> sympy.Expr:
        """∂_index node, over temporaries (0 where it vanishes)."""
        if not index:
            return self.value(node)
        if not set(index) <= self.inputs_of(node):
            return sympy.S.Zero
        key = (node, index)
        if key not in self.partials:
            self.partials[key] = self.statement(self._derivative(node, index))
        return self.partials[key]

    def _derivative(self, node: sympy.Expr, index: tuple[int, ...]) -> sympy.Expr:
        if node.is_Symbol:  # an input, by the test in derivative()
            return sympy.S.One if len(index) == 1 else sympy.S.Zero
        if isinstance(node, held):  # held(e) is e
            return self.derivative(node.args[0], index)
        if node.is_Add:
            return sympy.Add(*[self.derivative(a, index) for a in node.args])
        arguments = _arguments(node)
        slots = [j for j, a in enumerate(arguments) if self.depends(a)]
        terms = []
        for partition in _partitions(list(range(len(index)))):
            blocks = [tuple(sorted(index[p] for p in block)) for block in partition]
            for assignment in itertools.product(slots, repeat=len(blocks)):
                factors = [self.derivative(arguments[j], b) for j, b in zip(assignment, blocks)]
                if any(f == 0 for f in factors):
                    continue
                local = self.local_derivative(node, tuple(sorted(assignment)))
                if local != 0:
                    terms.append(sympy.Mul(local, *factors))
        return sympy.Add(*terms)

    def local_derivative(self, node: sympy.Expr, slots: tuple[int, ...]) -> sympy.Expr:
        """∂^k node / ∂a_j1...∂a_jk at the arguments' values, over temporaries;
        the node itself, where it reappears, is its value's temporary (exp' is exp)."""
        key = (node, slots)
        if key not in self.local:
            dummies, _ = self.placeholders(node)
            values = [self.value(a) for a in _arguments(node)]
            itself = _rebuilt(node, values)
            derivative = self.local_form(node, slots).xreplace({d: values[j] for j, d in dummies.items()})
            self.local[key] = derivative.xreplace({itself: self.value(node)})
        return self.local[key]

    def placeholders(self, node: sympy.Expr) -> tuple[dict[int, sympy.Dummy], sympy.Expr]:
        """The node's operation alone, on a placeholder for each argument that
        varies: the arguments' own formulas would only make sympy's work larger."""
        if node not in self.operations:
            arguments = _arguments(node)
            dummies = {j: sympy.Dummy(f"a{j}", real=True) for j, a in enumerate(arguments) if self.depends(a)}
            self.operations[node] = (dummies, _rebuilt(node, [dummies.get(j, a) for j, a in enumerate(arguments)]))
        return self.operations[node]

    def local_form(self, node: sympy.Expr, slots: tuple[int, ...]) -> sympy.Expr:
        """∂^k of the operation over its placeholders, each order the stable
        form (stable.py) of the derivative of the one below, as the trees' entries
        are: tanh' is 4*sigmoid(2a)*sigmoid(-2a), not 1 - tanh(a)**2."""
        key = (node, slots)
        if key not in self.forms:
            dummies, general = self.placeholders(node)
            if not slots:
                return general
            derivative = sympy.diff(self.local_form(node, slots[:-1]), dummies[slots[-1]])
            if derivative.has(sympy.Derivative, sympy.Subs):
                raise NotElementary(node)  # sympy knows no formula for it
            # Differentiated almost everywhere, as PyTorch does: sign' is 0.
            self.forms[key] = stabilize(derivative.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero))
        return self.forms[key]

    def used_statements(self, results: Collection[sympy.Expr]) -> tuple[tuple[sympy.Symbol, sympy.Expr], ...]:
        """The statements the results read, directly or through others, in order."""
        needed = set().union(*(r.free_symbols for r in results))
        kept = []
        for symbol, value in reversed(self.statements):
            if symbol in needed:
                kept.append((symbol, value))
                needed |= value.free_symbols
        return tuple(reversed(kept))


def _arguments(node: sympy.Expr) -> tuple[sympy.Expr, ...]:
    """A node's arguments, a product of several taken two at a time: a*b*c is
    (a*b)*c, so that the chain rule sees two factors."""
    if isinstance(node, (sympy.Piecewise, guarded)) or node.is_Relational or node.is_Boolean:
        raise NotElementary(node)
    if node.is_Mul and len(node.args) > 2:
        return (sympy.Mul(*node.args[:-1], evaluate=False), node.args[-1])
    return node.args


def _rebuilt(node: sympy.Expr, arguments: list[sympy.Expr]) -> sympy.Expr:
    """`node`'s operation applied to `arguments` (a product of two, for a product)."""
    if node.is_Mul:
        return sympy.Mul(*arguments)
    return node.func(*arguments)


def _partitions(positions: list[int]) -> Iterator[list[list[int]]]:
    """Every set partition of `positions`."""
    if not positions:
        yield []
        return
    first, rest = positions[0], positions[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for k in range(len(partition)):
            yield [*partition[:k], [first, *partition[k]], *partition[k + 1 :]]
