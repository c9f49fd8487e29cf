"""What a `.net` expression evaluates to during lowering, besides tensors and plain numbers.

Tensors are graph `Value`s; compile-time numbers, strings, bools and lists are Python values.
The classes here are the rest: references to functions and blocks, layer configurations (a layer
written but not yet applied), layer instances (a configuration applied under a name, owning its
parameters), and `Invalid`, the value of an expression that already produced an error, which
silences the errors that would cascade from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ir.graph import Value
from ..source import Span
from . import ast


class Invalid:
    """The result of an expression that already reported an error."""

    _instance: "Invalid | None" = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = Invalid()


@dataclass(frozen=True)
class FunctionRef:
    """A built-in lowercase function (`relu`), not yet called."""

    name: str
    target: Any


@dataclass
class BlockDef:
    """A user `block` definition and the file it came from."""

    node: ast.Block
    file: str

    @property
    def name(self) -> str:
        return self.node.name


@dataclass
class LayerRef:
    """A built-in layer class (`Dense`) or a block, not yet configured with arguments."""

    kind: str
    target: Any                     # the layer class, or a BlockDef


@dataclass(eq=False)
class LayerConfig:
    """A configured layer: `Dense(120)`, `Residual(64)`.  Applying it makes (or reuses) an
    instance; binding it to a name shares that instance between applications."""

    kind: str
    layer: Any                      # a built-in layer object, or a BlockDef
    block_args: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None
    explicit_name: str | None = None        # from `as name`
    binding_name: str | None = None         # from `enc = Dense(64)`
    instance: "Instance | None" = None

    @property
    def is_block(self) -> bool:
        return isinstance(self.layer, BlockDef)

    def describe(self) -> dict[str, str]:
        """The key arguments shown in the summary and diagrams."""
        if self.is_block:
            return {k: _show(v) for k, v in self.block_args.items()}
        describe = getattr(self.layer, "describe", None)
        return describe() if describe else {}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@dataclass
class Instance:
    """A layer instance: its full scoped name and the parameters it owns."""

    name: str                       # the last path component: "fc1", "dense_2"
    scope: tuple[str, ...]          # the full path, ending with name
    params: dict[str, Value] = field(default_factory=dict)
    children: dict[str, "Instance"] = field(default_factory=dict)   # a block's layer instances
    applications: int = 0
    record_name: str = ""           # the first application's architecture record

    @property
    def full_name(self) -> str:
        return ".".join(self.scope)


@dataclass(eq=False)
class Repeat:
    """`repeat(n, Layer(...))`: n fresh copies of a layer configuration applied in sequence."""

    count: int
    template: ast.Expr              # re-evaluated per copy so each copy is a fresh instance
    kind: str
    span: Span | None = None
    explicit_name: str | None = None
    binding_name: str | None = None


def is_layer(value: Any) -> bool:
    return isinstance(value, (LayerConfig, LayerRef, Repeat))
