"""Element types, symbolic dimensions and tensor types of the graph IR.

A dimension is an `int` or a `Sym`: a polynomial with integer coefficients over named symbolic
dimensions (`B`, `4*H`, `T*D`, `B*T + 1`).  Polynomials are kept in a canonical form so that two
dimensions are equal exactly when their normal forms are equal; a `Sym` whose polynomial is a
constant is returned as a plain `int`.  Operations a polynomial cannot express (division that is
not exact, the output size of a strided convolution on a symbolic extent) produce an *opaque*
symbol named after the expression, which is still unified and bound at run time.
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from functools import cached_property
from enum import Enum
from typing import Mapping, Union

import numpy as np


class DType(Enum):
    """Element types of tensors; the value is the spelling in `.net` files."""

    f16 = "f16"
    f32 = "f32"
    f64 = "f64"
    i32 = "i32"
    i64 = "i64"
    bool = "bool"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_NUMPY_NAMES[self])

    @property
    def is_float(self) -> bool:
        return self in (DType.f16, DType.f32, DType.f64)

    @property
    def is_int(self) -> bool:
        return self in (DType.i32, DType.i64)

    @staticmethod
    def from_numpy(dtype) -> "DType":
        name = np.dtype(dtype).name
        for member, numpy_name in _NUMPY_NAMES.items():
            if numpy_name == name:
                return member
        raise ValueError(f"no netdsl element type for numpy dtype {name}")

    def __str__(self) -> str:
        return self.value


_NUMPY_NAMES = {DType.f16: "float16", DType.f32: "float32", DType.f64: "float64",
                DType.i32: "int32", DType.i64: "int64", DType.bool: "bool"}

# Result type of arithmetic between two element types (NumPy-like, but int + f32 stays f32,
# as PyTorch does, so that `x * 2` never silently widens a model to f64).
_RANK = {DType.bool: 0, DType.i32: 1, DType.i64: 2, DType.f16: 3, DType.f32: 4, DType.f64: 5}


def promote(a: DType, b: DType) -> DType:
    """The element type of a binary arithmetic result."""
    return a if _RANK[a] >= _RANK[b] else b


# ---------------------------------------------------------------------------------------------
# Symbolic dimensions

Monomial = tuple[str, ...]          # sorted symbol names, with repetition for powers


@dataclass(frozen=True)
class Sym:
    """A symbolic dimension: sum of coefficient * monomial, canonical (sorted, no zero terms)."""

    terms: tuple[tuple[Monomial, int], ...]

    @staticmethod
    def named(name: str) -> "Sym":
        return Sym((((name,), 1),))

    @property
    def symbols(self) -> set[str]:
        return {name for monomial, _ in self.terms for name in monomial}

    @property
    def is_single_symbol(self) -> bool:
        return len(self.terms) == 1 and len(self.terms[0][0]) == 1 and self.terms[0][1] == 1

    @property
    def name(self) -> str:
        return str(self)

    def __str__(self) -> str:
        pieces = []
        for monomial, coefficient in self.terms:
            factors = ([str(coefficient)] if coefficient != 1 or not monomial else []) + \
                [_atom(n) for n in monomial]
            pieces.append("*".join(factors))
        text = " + ".join(pieces)
        return text.replace("+ -", "- ")

    __repr__ = __str__


def _atom(name: str) -> str:
    """Opaque symbols carry an expression as their name; bracket it when it has operators."""
    return f"({name})" if any(c in name for c in " +-*/") else name


DimLike = Union[int, Sym]


def _poly(d: DimLike) -> dict[Monomial, int]:
    if isinstance(d, Sym):
        return dict(d.terms)
    return {(): int(d)} if d else {}


def _make(poly: Mapping[Monomial, int]) -> DimLike:
    terms = tuple(sorted(((m, c) for m, c in poly.items() if c), key=lambda t: (not t[0], len(t[0]), t[0])))
    if not terms:
        return 0
    if len(terms) == 1 and terms[0][0] == ():
        return terms[0][1]
    return Sym(terms)


def dim_add(a: DimLike, b: DimLike) -> DimLike:
    poly = _poly(a)
    for m, c in _poly(b).items():
        poly[m] = poly.get(m, 0) + c
    return _make(poly)


def dim_neg(a: DimLike) -> DimLike:
    return _make({m: -c for m, c in _poly(a).items()})


def dim_sub(a: DimLike, b: DimLike) -> DimLike:
    return dim_add(a, dim_neg(b))


def dim_mul(a: DimLike, b: DimLike) -> DimLike:
    poly: dict[Monomial, int] = {}
    for ma, ca in _poly(a).items():
        for mb, cb in _poly(b).items():
            m = tuple(sorted(ma + mb))
            poly[m] = poly.get(m, 0) + ca * cb
    return _make(poly)


def dim_floordiv(a: DimLike, b: DimLike) -> DimLike:
    """Exact division stays a polynomial; anything else becomes an opaque symbol."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    if isinstance(b, int) and b > 0:
        # Cancel a common factor first, so (2*B) // 8 is the same dimension as B // 4.
        poly = _poly(a)
        common = math.gcd(b, *poly.values())
        a, b = _make({m: c // common for m, c in poly.items()}), b // common
        if b == 1:
            return a
    if isinstance(b, Sym) and b.is_single_symbol:
        name = b.terms[0][0][0]
        poly = _poly(a)
        if all(name in m for m in poly):
            return _make({_remove_one(m, name): c for m, c in poly.items()})
    return opaque(f"{_atom(str(a))} // {_atom(str(b))}")


def _remove_one(monomial: Monomial, name: str) -> Monomial:
    items = list(monomial)
    items.remove(name)
    return tuple(items)


def dim_prod(dims) -> DimLike:
    result: DimLike = 1
    for d in dims:
        result = dim_mul(result, d)
    return result


def opaque(expression: str) -> Sym:
    """A dimension netdsl cannot simplify; it is named by the expression that made it."""
    return Sym.named(expression)


def evaluate_dim(d: DimLike, bindings: Mapping[str, int]) -> int:
    """The integer value of a dimension once its symbols are bound (at run time)."""
    if isinstance(d, int):
        return d
    total = 0
    for monomial, coefficient in d.terms:
        value = coefficient
        for name in monomial:
            value *= bindings[name] if name in bindings else _evaluate_opaque(name, bindings)
        total += value
    return total


def elements_at(shape, size: int) -> int:
    """The product of a shape's dims with every symbol at `size` (a size hint: how large a
    value is taken to be when a choice is made before the batch is known)."""
    total = 1
    for d in shape:
        names = d.symbols if isinstance(d, Sym) else ()
        total *= evaluate_dim(d, {name: size for name in names})
    return total


def substitute_dim(d: DimLike, bindings: Mapping[str, int]) -> DimLike:
    """A dimension with the bound symbols replaced by their values and the others kept
    (`128*B*T` with B=32 is `4096*T`).  An opaque symbol is evaluated once all it reads is
    bound, else kept."""
    if isinstance(d, int):
        return d
    result: DimLike = 0
    for monomial, coefficient in d.terms:
        term: DimLike = coefficient
        for name in monomial:
            try:
                value = bindings[name] if name in bindings else _evaluate_opaque(name, bindings)
            except KeyError:
                value = Sym.named(name)
            term = dim_mul(term, value)
        result = dim_add(result, term)
    return result


# An opaque dimension (`(B + 2) // 3`, what dim_floordiv cannot simplify) is named by its
# expression: integers, symbols, + - * // and brackets.  These read the name back.
_OPERATORS = {"Add": ("+", lambda a, b: a + b), "Sub": ("-", lambda a, b: a - b),
              "Mult": ("*", lambda a, b: a * b), "FloorDiv": ("//", lambda a, b: a // b)}


def _opaque_tree(name: str):
    """The expression of an opaque dimension's name, or None for a plain symbol."""
    import ast
    if not any(c in name for c in " +-*/"):
        return None
    try:
        return ast.parse(name, mode="eval").body
    except SyntaxError:
        return None


def _fold_opaque(name: str, leaf, combine):
    """Walk an opaque name's expression: `leaf(symbol or int)`, `combine(operator, l, r)`."""
    import ast

    def walk(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return leaf(node.value)
        if isinstance(node, ast.Name):
            return leaf(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return combine("Sub", leaf(0), walk(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op).__name__ in _OPERATORS:
            return combine(type(node.op).__name__, walk(node.left), walk(node.right))
        raise KeyError(name)
    tree = _opaque_tree(name)
    if tree is None:
        raise KeyError(name)
    return walk(tree)


def opaque_symbols(name: str) -> set[str]:
    """The plain symbols an opaque dimension's name reads ({name} for a plain symbol)."""
    if _opaque_tree(name) is None:
        return {name}
    found: set[str] = set()
    _fold_opaque(name, lambda x: found.add(x) if isinstance(x, str) else None,
                 lambda op, a, b: None)
    return found


def opaque_source(name: str, variables: Mapping[str, str]) -> str:
    """Python source of an opaque dimension, each symbol replaced by its variable."""
    return _fold_opaque(name, lambda x: variables[x] if isinstance(x, str) else str(x),
                        lambda op, a, b: f"({a} {_OPERATORS[op][0]} {b})")


def _evaluate_opaque(name: str, bindings: Mapping[str, int]) -> int:
    """An opaque dimension's value from its expression and the bound symbols (KeyError for an
    unbound symbol or a division by zero)."""
    def combine(op, a, b):
        if op == "FloorDiv" and b == 0:
            raise KeyError(name)
        return _OPERATORS[op][1](a, b)
    return _fold_opaque(name, lambda x: bindings[x] if isinstance(x, str) else x, combine)


# ---------------------------------------------------------------------------------------------
# Tensor types

Shape = tuple[DimLike, ...]


@dataclass(frozen=True)
class TensorType:
    """The static type of a value: element type and shape (ints and symbolic dims)."""

    dtype: DType
    shape: Shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_concrete(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @cached_property
    def size(self) -> DimLike:
        # Cached (in the instance's __dict__, which a frozen dataclass still allows): the
        # memory planner and code generation ask a type's size thousands of times per compile.
        return dim_prod(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    __repr__ = __str__


def scalar(dtype: DType = DType.f32) -> TensorType:
    return TensorType(dtype, ())


class ShapeError(Exception):
    """Raised by an op's shape rule; the graph builder attaches the source span."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy broadcasting over static shapes; symbolic dims must match exactly or meet a 1."""
    rank = max((len(s) for s in shapes), default=0)
    result: list[DimLike] = []
    for axis in range(rank):
        dim: DimLike = 1
        for shape in shapes:
            offset = axis - (rank - len(shape))
            if offset < 0:
                continue
            d = shape[offset]
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif d != dim:
                raise ShapeError(
                    f"cannot broadcast {_fmt(shapes)}: dimension {dim} does not match {d}",
                    hint="dimensions broadcast when they are equal or one of them is 1")
        result.append(dim)
    return tuple(result)


def _fmt(shapes) -> str:
    return " with ".join("[" + ", ".join(str(d) for d in s) + "]" for s in shapes)


def normalize_axis(axis: int, rank: int) -> int:
    """A possibly negative axis as a non-negative index, or ShapeError."""
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else 0
