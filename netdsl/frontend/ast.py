"""The abstract syntax tree of a `.net` file: frozen dataclasses, one per construct.

Every node has a keyword-only `span` (where it is in the source) that is ignored by `==` and
`repr`, so two parses of the same program compare equal whatever their layout, and tests can
build expected trees without positions: `BinOp("+", Name("a"), Name("b"))`.

Conventions:
- A name that a statement *declares* (`in x`, `param w`, `model M`, `const N`, `out y = ...`) is
  a plain `str` field `name`, with its own position in `name_span`.
- A name that *refers* to something (in an expression, a `wrt` target, a scanned input) and the
  targets of a binding (`a, b = ...`, several names) are `Name` nodes, each with its span.
- Pipelines stay explicit (`Pipe`): whether `x |> f` applies a layer or passes `x` as the first
  argument of a function is decided by the lowering, which knows what `f` is.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Union

from ..source import Span


def _span_field():
    return field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Node:
    """Base of every AST node: only the source position."""

    span: Span | None = _span_field()


# ---- expressions ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Name(Node):
    """A reference to a value, layer, function, constant or dimension: `x`, `Dense`, `relu`."""

    id: str


@dataclass(frozen=True)
class Number(Node):
    """An int or float literal; `is_int` keeps `2` and `2.0` apart."""

    value: int | float
    is_int: bool


@dataclass(frozen=True)
class String(Node):
    """A string literal, escapes already decoded."""

    value: str


@dataclass(frozen=True)
class Bool(Node):
    """`true` or `false`."""

    value: bool


@dataclass(frozen=True)
class NoneLit(Node):
    """`none`."""


@dataclass(frozen=True)
class EllipsisLit(Node):
    """`...` inside an index: all remaining axes."""


@dataclass(frozen=True)
class Tuple(Node):
    """`(a, b)`, `(a,)` or `()`."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class List(Node):
    """`[a, b]`: shapes, axis lists, `concat([a, b])`, train metrics."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class BinOp(Node):
    """A binary operation; `op` is the operator as written: + - * / // % @ ** < <= > >= == !=."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnaryOp(Node):
    """Unary `-` or `+`."""

    op: str
    operand: Expr


@dataclass(frozen=True)
class Keyword(Node):
    """A keyword argument `name=value` of a call; span covers both."""

    name: str
    value: Expr
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Call(Node):
    """`func(args..., kw=value...)`; positional arguments always come before keywords."""

    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()


@dataclass(frozen=True)
class Slice(Node):
    """`start:stop:step` inside an index; a missing part is None."""

    start: Expr | None = None
    stop: Expr | None = None
    step: Expr | None = None


@dataclass(frozen=True)
class Index(Node):
    """`value[items]`; each item is an expression, a `Slice` or an `EllipsisLit`."""

    value: Expr
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Attribute(Node):
    """`value.attr`, e.g. the parameter `fc1.weight` of a named layer."""

    value: Expr
    attr: str


@dataclass(frozen=True)
class Pipe(Node):
    """`left |> right`: right is a layer (applied to left) or a function (left is its first
    argument); the lowering decides which."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class Named(Node):
    """`value as name`: names a layer instance for checkpoints and diagrams."""

    value: Expr
    name: str
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Carry(Node):
    """One carried state of a scan: `h = zeros([B, H])` after `with`."""

    name: str
    init: Expr
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Yield(Node):
    """`yield a, b` — the last statement of a scan body: the per-step outputs."""

    values: tuple[Expr, ...]


@dataclass(frozen=True)
class Scan(Node):
    """`scan x, m over axis with h = init, ... { body }`, a loop over one axis.

    Inside the body, the element of scanned input `x` is `x_t`, and each carry name holds the
    state of the previous step; re-binding a carry sets the next state.  The body is ordinary
    bindings ending with exactly one `Yield` (the parser checks that).  The value of the scan
    is a tuple: the stacked yields, then the final value of each carry.
    """

    inputs: tuple[Name, ...]
    axis: Expr
    carries: tuple[Carry, ...]
    body: tuple[Stmt, ...]

    @property
    def yields(self) -> tuple[Expr, ...]:
        """The values of the final `yield`."""
        last = self.body[-1] if self.body else None
        return last.values if isinstance(last, Yield) else ()


Expr = Union[Name, Number, String, Bool, NoneLit, EllipsisLit, Tuple, List, BinOp, UnaryOp,
             Call, Slice, Index, Attribute, Pipe, Named, Scan]


# ---- types ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DimInt(Node):
    """A literal dimension: `28`."""

    value: int


@dataclass(frozen=True)
class DimName(Node):
    """A named dimension: a const, a block argument or a symbolic dimension such as `B`."""

    id: str


@dataclass(frozen=True)
class DimBinOp(Node):
    """Dimension arithmetic: `4*H`, `D+1`, `T//2`; op is one of + - * //."""

    op: str
    left: DimExpr
    right: DimExpr


DimExpr = Union[DimInt, DimName, DimBinOp]

DTYPES = ("f32", "f64", "f16", "i32", "i64", "bool")


@dataclass(frozen=True)
class TensorTypeExpr(Node):
    """`f32[B, 1, 28, 28]`; `dtype` is one of DTYPES and `dims` is empty for a scalar."""

    dtype: str
    dims: tuple[DimExpr, ...]


# ---- statements ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Input(Node):
    """`in name: type` — a model input, or a block's positional input."""

    name: str
    type: TensorTypeExpr
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Param(Node):
    """`param name: type = init`; init is None when no initialiser is written."""

    name: str
    type: TensorTypeExpr
    init: Expr | None = None
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Assign(Node):
    """`x = expr` or `a, b = expr` (destructuring a tuple result)."""

    targets: tuple[Name, ...]
    value: Expr


@dataclass(frozen=True)
class Output(Node):
    """`out expr` or `out name = expr`."""

    name: str | None
    value: Expr
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Loss(Node):
    """`loss expr`, `loss name = expr`, optionally `wrt A` / `wrt [A, B]` (whose parameters
    this objective updates)."""

    name: str | None
    value: Expr
    wrt: tuple[Name, ...] | None = None
    name_span: Span | None = _span_field()


Stmt = Union[Input, Param, Assign, Output, Loss, Yield]


# ---- top level -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Import(Node):
    """`import "path.net"` (relative to the importing file)."""

    path: str


@dataclass(frozen=True)
class Const(Node):
    """`const NAME = expr` — a compile-time constant."""

    name: str
    value: Expr
    name_span: Span | None = _span_field()


ARG_TYPES = ("int", "float", "bool", "str")


@dataclass(frozen=True)
class BlockParam(Node):
    """`name: type = default` in a block header; type_name is one of ARG_TYPES."""

    name: str
    type_name: str
    default: Expr | None = None
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Block(Node):
    """`block Name(params) { body }` — a reusable sub-network."""

    name: str
    params: tuple[BlockParam, ...]
    body: tuple[Stmt, ...]
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class Model(Node):
    """`model Name { body }`."""

    name: str
    body: tuple[Stmt, ...]
    name_span: Span | None = _span_field()


@dataclass(frozen=True)
class TrainEntry(Node):
    """One line of a train section: `key = value`, or a bare expression (key None) such as
    `early_stopping(patience=3, monitor=val_loss)`."""

    key: str | None
    value: Expr
    key_span: Span | None = _span_field()


@dataclass(frozen=True)
class Train(Node):
    """`train ModelName { entries }`."""

    name: str
    entries: tuple[TrainEntry, ...]
    name_span: Span | None = _span_field()


Item = Union[Import, Const, Block, Model, Train]


@dataclass(frozen=True)
class Module(Node):
    """A whole `.net` file: its items in source order, and the file name used in spans."""

    items: tuple[Item, ...]
    path: str = ""


def walk(node: Node):
    """Yield node and every node below it, depth first in field order."""
    yield node
    for f in fields(node):
        value = getattr(node, f.name)
        for child in (value if isinstance(value, tuple) else (value,)):
            if isinstance(child, Node):
                yield from walk(child)
