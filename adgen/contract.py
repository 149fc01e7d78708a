"""Part of stage 2 (derive): the vector products of the derivative tables.

Past the first, every kernel of the family contracts ∂²f and ∂³f with grads and
tangents. Written out entry by entry, that is n² and n³ terms for an op of n
inputs: JvpJvp.backward's `d_x` alone reads every f_x.. entry times two
tangents. The terms come in two shapes, whatever the kernel:

    ∂²f·a    = (Σⱼ f_ij·a_j)ᵢ        the Hessian times a vector a
    ∂³f·a·b  = (Σⱼₖ f_ijk·a_j·b_k)ᵢ  the third derivatives times a and b

where a vector is a family of arguments with one component per input (x_t, y_t;
grad_grad_x_t, grad_grad_y_t). `factor` finds those sums among a kernel's terms
and names them as the results of two helpers the module defines once,
`_hessian_times` and `_third_times`, so that a kernel reads
`d_x = grad_hess_t_u_x + grad_third_t_u_x` (grad·∂²f·t_u + grad·∂³f·t·u at x).
A group of terms is replaced only where it is the helper's expansion times one
factor (checked as polynomials): what is computed stays the same, only the
order of the sums changes. Where every output of a kernel sums several ∂²f·a
with the same factors (BackwardJvp.jvp), one call takes the sum of the vectors,
∂²f·(grad·t_u + grad_t·u + grad_u·t): fewer operations, the same value.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import sympy

HELPERS = {2: "_hessian_times", 3: "_third_times"}  # by the order of the table they read
_RESULT_PREFIX = {2: "hess", 3: "third"}


@dataclass(frozen=True)
class Product:
    """One call of a helper in a kernel: ∂²f·a or ∂³f·a·b, one result per input."""

    order: int  # 3: ∂³f·a·b, `_third_times`
    vectors: tuple[tuple[str, ...], ...]  # (("x_t", "y_t"), ("x_u", "y_u")): a, b by input
    results: tuple[str, ...]  # ("third_t_u_x", "third_t_u_y")
    # For each result, the kernel names it reads: the vectors' components and the
    # table entries its sum has (f_xy = 0: no y component): a result's shape.
    reads: tuple[frozenset[str], ...]
    # An argument the first vector is multiplied by, where every use of the
    # product in its kernel is multiplied by it: ∂²f·(grad·gg), grad_hess_gg_x.
    scale: str | None = None
    # The first vector's components, where it is a sum of several vectors, each
    # times its factor (∂²f·t_u·grad + ∂²f·u·grad_t: ∂²f·(grad·t_u + grad_t·u));
    # `vectors` then holds the others. Empty: the first vector is vectors[0].
    combined: tuple[sympy.Expr, ...] = ()
    # The table the helper reads: the op's, or, for one of several outputs, that
    # output's ("df.u"; "f" in a loop over the outputs). None where every ∂ᵏf is
    # a number or a formula of the parameters (x*y + y*z): the helper has them.
    table: str | None = "df"

    def components(self) -> tuple[tuple[sympy.Expr, ...], ...]:
        """Each vector's components as expressions, the first scaled or summed."""
        vectors = [tuple(sympy.Symbol(c, real=True) for c in v) for v in self.vectors]
        if self.combined:
            return (self.combined, *vectors)
        if self.scale:
            scale = sympy.Symbol(self.scale, real=True)
            vectors[0] = tuple(scale * c for c in vectors[0])
        return tuple(vectors)


def vector_families(arguments: tuple[str, ...], inputs: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The vectors among a kernel's arguments, by label: {"t": ("x_t", "y_t"),
    "gg_t": ("grad_grad_x_t", "grad_grad_y_t")}. A vector is every input's name
    with one prefix and suffix; an argument read two ways is no component."""
    present = set(arguments)
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for argument in arguments:
        for name in inputs:
            start = argument.find(name)
            while start != -1:
                prefix, suffix = argument[:start], argument[start + len(name) :]
                at_boundaries = prefix == "" or prefix.endswith("_")
                at_boundaries &= suffix == "" or suffix.startswith("_")
                components = tuple(prefix + n + suffix for n in inputs)
                if (prefix or suffix) and at_boundaries and present.issuperset(components):
                    found[(prefix, suffix)] = components
                start = argument.find(name, start + 1)
    readings: dict[str, int] = {}
    for components in found.values():
        for c in components:
            readings[c] = readings.get(c, 0) + 1
    families = {}
    for (prefix, suffix), components in sorted(found.items()):
        if all(readings[c] == 1 for c in components) and len(set(components)) == len(inputs):
            families[_label(prefix, suffix)] = components
    return families


def _label(prefix: str, suffix: str) -> str:
    """The vector's name in its products' results: its components' suffix, after
    the prefix's initials where that is several words (grad_grad_x_t: gg_t)."""
    words = [w for w in prefix.split("_") if w]
    head = "".join(w[0] for w in words) if len(words) > 1 else "".join(words)
    return "_".join(part for part in (head, suffix.strip("_")) if part)


class _Factoring:
    """The products found in one kernel, named once each."""

    def __init__(
        self,
        inputs: tuple[str, ...],
        families: dict[str, tuple[str, ...]],
        entry: Callable[[tuple[int, ...]], str | None],
        nonzero: Callable[[tuple[int, ...]], bool],
        taken: set[str],
    ) -> None:
        self.inputs = inputs
        self.families = families
        self.entry = entry  # sorted input positions -> the table entry's name, or None
        self.nonzero = nonzero  # sorted input positions -> whether that partial is not 0
        self.taken = set(taken)
        self.products: dict[tuple[int, tuple[str, ...], str | None], Product] = {}
        self.entries_of: dict[int, bool] = {}  # has_entries, by order
        self.component = {c: (label, i) for label, cs in families.items() for i, c in enumerate(cs)}

    def product(self, order: int, labels: tuple[str, ...], scale: str | None = None) -> Product:
        """The product of ∂ᵏf by these vectors, the first times `scale`, named
        once: hess_t_x; grad_hess_t_x with the scale, read as grad·hess_t_x."""
        key = (order, tuple(sorted(labels)), scale)
        if key not in self.products:
            labels = key[1]
            results = self.result_names((*([scale] if scale else []), _RESULT_PREFIX[order], *labels))
            vectors = tuple(self.families[label] for label in labels)
            reads = self.reads(order, vectors, scale)
            self.products[key] = Product(order, vectors, tuple(results), reads, scale, table=self.table(order))
        return self.products[key]

    def result_names(self, words: tuple[str, ...]) -> list[str]:
        """A product's results, one per input, named by `words` then the input
        (hess_t_x), an underscore added where the name is taken."""
        results = []
        for name in self.inputs:
            result = "_".join((*words, name))
            while result in self.taken:
                result += "_"
            self.taken.add(result)
            results.append(result)
        return results

    def combined_product(self, combination: tuple[tuple[sympy.Expr, str], ...]) -> Product:
        """∂²f times the sum of these vectors, each times its factor: one helper
        call for the terms ∂²f·a + ∂²f·b an output would sum (named hess_sum_x)."""
        key = (2, combination, None)
        if key not in self.products:
            results = self.result_names(("hess", "sum"))
            combined = tuple(
                sympy.Add(
                    *(factor * sympy.Symbol(self.families[label][j], real=True) for factor, label in combination)
                )
                for j in range(len(self.inputs))
            )
            reads = self.reads(2, (tuple(c.free_symbols for c in combined),), None)
            self.products[key] = Product(2, (), tuple(results), reads, None, combined, self.table(2))
        return self.products[key]

    def reads(self, order: int, vectors, scale: str | None) -> tuple[frozenset[str], ...]:
        """For each result, the names it reads: for each nonzero entry of its
        sum, the entry and the vectors' components there (a component may be
        given as the names it is made of)."""
        n = len(self.inputs)
        vectors = tuple(vectors)
        all_reads = []
        for i in range(n):
            reads: set[str] = set()
            for rest in _tuples(n, order - 1):
                index = tuple(sorted((i, *rest)))
                if self.nonzero(index):
                    for v, j in zip(vectors, rest):
                        reads.update([v[j]] if isinstance(v[j], str) else (s.name for s in v[j]))
                    reads.update([scale] if scale else [])
                    entry = self.entry(index)
                    if entry is not None:
                        reads.add(entry)
            all_reads.append(frozenset(reads))
        return tuple(all_reads)

    def has_entries(self, order: int) -> bool:
        if order not in self.entries_of:
            indices = itertools.combinations_with_replacement(range(len(self.inputs)), order)
            self.entries_of[order] = any(self.entry(index) for index in indices)
        return self.entries_of[order]

    def table(self, order: int) -> str | None:
        """The table a product of this order reads: none where ∂ᵏf has no entries."""
        return "df" if self.has_entries(order) else None

    def symbol(self, product: Product, i: int) -> sympy.Expr:
        """Result i of `product`, or 0 where every entry of its sum is (then it
        reads nothing: `reads` holds a vector's component for each nonzero one)."""
        if not product.reads[i]:
            return sympy.S.Zero
        return sympy.Symbol(product.results[i], real=True)

    def takes(self, order: int, labels: tuple[str, ...], free: tuple[int, ...]) -> bool:
        """Whether a group of this shape is a product (if its terms are whole):
        ∂ᵏf times k - 1 vectors at one input, or times k vectors."""
        if order not in HELPERS or len(labels) + len(free) != order or len(free) > 1:
            return False
        # A table of zeros (x*y + y*z's ∂³f) has no products to take.
        indices = itertools.combinations_with_replacement(range(len(self.inputs)), order)
        return any(self.nonzero(index) for index in indices)

    def replacement(self, order: int, labels: tuple[str, ...], free: tuple[int, ...]) -> sympy.Expr:
        """The group's terms as helper results: ∂ᵏf·a·b at input `free`, or, with
        none free, the first vector dotted with the product of the others."""
        if free:
            return self.symbol(self.product(order, labels), free[0])
        # Fully contracted: a·(∂ᵏf·b·c). Take as the product one this kernel has
        # already where there is one.
        choices = [(labels[k], labels[:k] + labels[k + 1 :]) for k in range(len(labels))]
        existing = [c for c in choices if (order, tuple(sorted(c[1])), None) in self.products]
        outer, inner = (existing or choices)[0]
        product = self.product(order, inner)
        return sympy.Add(
            *(
                sympy.Symbol(self.families[outer][i], real=True) * self.symbol(product, i)
                for i in range(len(self.inputs))
            )
        )


def _tuples(n: int, length: int) -> list[tuple[int, ...]]:
    """Every `length` input positions, in order: the terms of a sum over them."""
    return list(itertools.product(range(n), repeat=length))


def factor(
    outputs: list[sympy.Expr],
    arguments: tuple[str, ...],
    inputs: tuple[str, ...],
    index_of: Callable[[sympy.Derivative], tuple[int, ...]],
    entry: Callable[[tuple[int, ...]], str | None],
    nonzero: Callable[[tuple[int, ...]], bool],
    taken: set[str],
) -> tuple[list[sympy.Expr], tuple[Product, ...]]:
    """`outputs` (over Derivative atoms of an abstract f) with the products of
    ∂²f and ∂³f by the kernel's vectors named as helper results, and those
    products. Terms of any other shape stay as they are. One output's terms
    only: the kernels of several outputs factor each output's terms apart
    (derive's blocks)."""
    families = vector_families(arguments, inputs)
    if len(inputs) < 2 or not families:
        return outputs, ()
    factoring = _Factoring(inputs, families, entry, nonzero, taken | set(arguments))
    analysed = [_analysed(o, factoring, index_of) for o in outputs]
    scales = _common_scales([g for a in analysed for g in a.groups], set(arguments))
    combination = _common_combination(analysed)
    result = [_rebuilt(a, factoring, scales, combination) for a in analysed]
    return result, tuple(factoring.products.values())


@dataclass(frozen=True)
class _Group:
    """Terms of one output that are c·s·(∂ᵏf·a·b) at input `free` (or, with
    none free, dotted with one more vector), checked against the expansion."""

    order: int  # 3
    labels: tuple[str, ...]  # ("t", "u"): the vectors, sorted
    free: tuple[int, ...]  # (0,): the result at input 0; (): fully contracted
    scalar: sympy.Expr  # s: the terms' other factors (grad)
    ratio: sympy.Expr  # c: a number


@dataclass(frozen=True)
class _Analysed:
    """One output: the terms that stay, and the groups that are products."""

    kept: tuple[sympy.Expr, ...]  # over the placeholders
    groups: tuple[_Group, ...]
    restored: dict  # placeholder -> the Derivative atom it stands for


def _analysed(
    output: sympy.Expr, factoring: _Factoring, index_of: Callable[[sympy.Derivative], tuple[int, ...]]
) -> _Analysed:
    derivatives = {d: index_of(d) for d in output.atoms(sympy.Derivative)}
    # One placeholder per partial derivative of order 2 and 3, by index.
    # Made in a fixed order: the terms' order, and so the output, depends on it.
    placeholders = {
        index: sympy.Dummy("d", real=True)
        for index in sorted(set(derivatives.values()))
        if len(index) in HELPERS
    }
    if not placeholders:
        return _Analysed((output,), (), {})
    of_placeholder = {p: index for index, p in placeholders.items()}
    expanded = sympy.expand_mul(
        output.xreplace({d: placeholders[i] for d, i in derivatives.items() if i in placeholders})
    )
    terms_of: dict[tuple, list[sympy.Expr]] = {}
    kept = []
    for term in sympy.Add.make_args(expanded):
        key = _group_key(term, of_placeholder, factoring.component)
        if key is None:
            kept.append(term)
        else:
            terms_of.setdefault(key, []).append(term)
    groups = []
    # The products at one input first: a fully contracted group reuses one of them.
    for (order, scalar, labels, free), terms in sorted(terms_of.items(), key=lambda g: -len(g[0][3])):
        taken = factoring.takes(order, labels, free)
        expansion = _expansion(order, labels, free, factoring, placeholders) if taken else None
        ratio = _ratio(terms, [scalar * e for e in expansion]) if expansion is not None else None
        if ratio is None:
            kept.extend(terms)
        else:
            groups.append(_Group(order, labels, free, scalar, ratio))
    restored = {placeholders[i]: d for d, i in derivatives.items() if i in placeholders}
    return _Analysed(tuple(kept), tuple(groups), restored)


def _common_scales(groups: list[_Group], arguments: set[str]) -> dict[tuple[int, tuple[str, ...]], str]:
    """The products whose every use in the kernel is one input's result times
    the same argument s (grad): those take s·a as their first vector instead.
    The same n multiplications, but by arguments that forward mode over the
    kernel (a jvp of a double backward) need not differentiate, as the sums
    written out did (grad·gg_x first, then the table entries)."""
    uses: dict[tuple[int, tuple[str, ...]], set] = {}
    for group in groups:
        if group.free:
            uses.setdefault((group.order, group.labels), set()).add(group.scalar)
        else:  # dotted: s scales one number, and any product of the rest may serve
            for k in range(len(group.labels)):
                inner = group.labels[:k] + group.labels[k + 1 :]
                uses.setdefault((group.order, inner), set()).add(None)
    scales = {}
    for key, scalars in uses.items():
        (scalar,) = scalars if len(scalars) == 1 else (None,)
        if isinstance(scalar, sympy.Symbol) and scalar.name in arguments:
            scales[key] = scalar.name
    return scales


def _hessian_terms(analysed: _Analysed) -> list[_Group]:
    """An output's groups ∂²f·a at one input."""
    return [g for g in analysed.groups if g.order == 2 and g.free]


def _common_combination(analysed: list[_Analysed]) -> tuple[tuple[sympy.Expr, str], ...] | None:
    """(factor, vector) pairs where every output that has groups ∂²f·a at one
    input has several, with the same factors and vectors, each output at an
    input of its own (grad_x_t_u and grad_y_t_u of BackwardJvp.jvp, each
    ∂²f·t_u·grad + ∂²f·u·grad_t + ∂²f·t·grad_u): one product of ∂²f by their sum
    serves them all, n² multiplications instead of n² per vector."""
    shapes, positions = set(), []
    for output in analysed:
        groups = _hessian_terms(output)
        if groups:
            pairs = [(g.ratio * g.scalar, g.labels[0]) for g in groups]
            shapes.add(tuple(sorted(pairs, key=lambda p: (p[1], sympy.default_sort_key(p[0])))))
            positions.append({g.free[0] for g in groups})
    if len(shapes) != 1 or any(len(p) != 1 for p in positions):
        return None
    (shape,) = shapes
    free = [p.pop() for p in positions]
    return shape if len(shape) > 1 and len(set(free)) == len(free) else None


def _rebuilt(
    analysed: _Analysed, factoring: _Factoring, scales: dict, combination: tuple | None
) -> sympy.Expr:
    """The output with its groups replaced by helper results."""
    if not analysed.groups:
        return sympy.Add(*analysed.kept).xreplace(analysed.restored)
    replaced = []
    groups = list(analysed.groups)
    if combination is not None and _hessian_terms(analysed):
        merged = _hessian_terms(analysed)
        product = factoring.combined_product(combination)
        replaced.append(factoring.symbol(product, merged[0].free[0]))
        groups = [g for g in groups if g not in merged]
    for group in groups:
        scale = scales.get((group.order, group.labels)) if group.free else None
        if scale is not None:  # s is inside the product
            product = factoring.product(group.order, group.labels, scale)
            replaced.append(group.ratio * factoring.symbol(product, group.free[0]))
        else:
            replacement = factoring.replacement(group.order, group.labels, group.free)
            replaced.append(group.ratio * group.scalar * replacement)
    # Each factor once: x_t*(hess_u_v_x + third_u_v_x), not two terms; the
    # vectors' components first, then the other arguments (grad*(...)).
    results = {r for p in factoring.products.values() for r in p.results}
    factors = sorted(
        (s for s in sympy.Add(*replaced).free_symbols if s.name not in results),
        key=lambda s: (s.name not in factoring.component, s.name),
    )
    collected = sympy.collect(sympy.Add(*replaced), factors) if factors else sympy.Add(*replaced)
    return sympy.factor_terms(sympy.Add(*analysed.kept, collected).xreplace(analysed.restored))


def _group_key(term: sympy.Expr, of_placeholder: dict, component: dict) -> tuple | None:
    """(order, the term's other factors, its vectors' labels, the free input
    position) of a term that is one ∂²f or ∂³f entry times vector components;
    None for any other term."""
    _, factors = term.as_coeff_mul()
    entries = [f for f in factors if f in of_placeholder]
    if len(entries) != 1:
        return None
    index = of_placeholder[entries[0]]
    labels, positions, scalars = [], [], []
    for f in factors:
        if f is entries[0]:
            continue
        base, exponent = f.as_base_exp()
        if base.is_Symbol and base.name in component and exponent.is_Integer and exponent > 0:
            label, position = component[base.name]
            labels += [label] * int(exponent)
            positions += [position] * int(exponent)
        elif f.free_symbols.isdisjoint(of_placeholder):
            scalars.append(f)
        else:
            return None
    free = list(index)
    for position in positions:
        if position not in free:
            return None
        free.remove(position)
    return (len(index), sympy.Mul(*scalars), tuple(sorted(labels)), tuple(free))


def _expansion(
    order: int, labels: tuple[str, ...], free: tuple[int, ...], factoring: _Factoring, placeholders: dict
) -> list[sympy.Expr] | None:
    """The terms the helper results of the group stand for, over the placeholders."""
    n = len(factoring.inputs)
    terms = []
    for positions in _tuples(n, len(labels)):
        index = tuple(sorted(free + positions))
        if index not in placeholders:
            return None  # a derivative the kernel does not have: the group is not whole
        value = placeholders[index]
        for label, position in zip(labels, positions):
            value *= sympy.Symbol(factoring.families[label][position], real=True)
        terms.append(value)
    return terms


def _ratio(terms: list[sympy.Expr], expansion: list[sympy.Expr]) -> sympy.Expr | None:
    """c where the sum of `terms` is c times the sum of `expansion` for a number
    c, else None. Both are monomials: compared by their coefficients."""
    def coefficients(monomials: list[sympy.Expr]) -> dict[sympy.Expr, sympy.Expr]:
        found: dict[sympy.Expr, sympy.Expr] = {}
        for monomial in monomials:
            coefficient, rest = monomial.as_coeff_Mul()
            found[rest] = found.get(rest, 0) + coefficient
        return {rest: c for rest, c in found.items() if c != 0}

    got, expected = coefficients(terms), coefficients(expansion)
    if got.keys() != expected.keys() or not got:
        return None
    ratios = {got[m] / expected[m] for m in got}
    return ratios.pop() if len(ratios) == 1 else None
