"""The graph IR: values, nodes, graphs, and the builder every stage uses to make them.

A `Graph` is a list of `Node`s in topological order over `Value`s.  Values are SSA: each is made
once, by a node (`producer`) or as a graph input, parameter or state.  Nodes are immutable once
built; passes make new graphs rather than editing old ones.  Every node carries the span of the
source that made it and the scope (layer-instance path) it belongs to, so errors, diagrams and
checkpoints all point back to the user's `.net` file.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import Error
from ..source import Span
from .types import DType, ShapeError, TensorType

_ids = itertools.count()


class Value:
    """An SSA value of the graph.  kind: 'input', 'param', 'state' or 'node'."""

    __slots__ = ("id", "type", "producer", "index", "kind", "name")

    def __init__(self, type: TensorType, producer: "Node | None" = None, index: int = 0,
                 kind: str = "node", name: str | None = None):
        self.id = next(_ids)
        self.type = type
        self.producer = producer
        self.index = index
        self.kind = kind
        self.name = name

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self):
        return self.type.shape

    @property
    def rank(self) -> int:
        return len(self.type.shape)

    def __repr__(self) -> str:
        label = self.name or f"%{self.id}"
        return f"<{label}: {self.type}>"


@dataclass(eq=False)
class Node:
    """One application of a primitive op.  `op` is the OpDef itself, not its name."""

    op: Any                                  # netdsl.ops.registry.OpDef
    inputs: tuple[Value, ...]
    attrs: dict[str, Any]
    outputs: tuple[Value, ...] = ()
    span: Span | None = None
    scope: tuple[str, ...] = ()
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        assert len(self.outputs) == 1, f"{self.op.name} has {len(self.outputs)} outputs"
        return self.outputs[0]

    def attr_key(self) -> tuple:
        """A hashable form of the attributes (used by CSE and the compile cache)."""
        return tuple(sorted((k, _hashable(v)) for k, v in self.attrs.items()))


def _hashable(value: Any):
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, Graph):
        return ("graph", id(value))
    return value


@dataclass
class ParamInfo:
    """What lowering knows about a parameter: its initialiser and whether training updates it."""

    name: str
    value: Value
    init: Any                       # an initialiser spec, e.g. ("he",), ("normal", 0.01)
    trainable: bool = True          # BatchNorm running statistics are state, not trainable
    span: Span | None = None
    scope: tuple[str, ...] = ()
    fan: tuple[int, int] | None = None   # (fan_in, fan_out) for xavier/he, set by the layer


@dataclass
class LossInfo:
    """A named scalar objective and the scopes whose parameters it trains (None = all)."""

    name: str
    value: Value
    wrt: tuple[str, ...] | None = None
    span: Span | None = None


@dataclass
class Graph:
    """A computation graph: inputs, parameters, nodes in topological order, outputs, losses."""

    name: str = "graph"
    inputs: list[Value] = field(default_factory=list)
    params: list[ParamInfo] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    outputs: dict[str, Value] = field(default_factory=dict)
    losses: list[LossInfo] = field(default_factory=list)
    # New values of state parameters (BatchNorm running statistics) computed in training mode.
    state_updates: dict[str, Value] = field(default_factory=dict)
    input_spans: dict[str, Span] = field(default_factory=dict)
    # Label input -> the class id its loss ignores (cross_entropy's ignore_index, e.g. padding),
    # so that metrics leave those positions out too.
    ignored_labels: dict[str, int] = field(default_factory=dict)

    def param(self, name: str) -> ParamInfo:
        for info in self.params:
            if info.name == name:
                return info
        raise KeyError(name)

    def input(self, name: str) -> Value:
        for value in self.inputs:
            if value.name == name:
                return value
        raise KeyError(name)

    @property
    def trainable(self) -> list[ParamInfo]:
        return [p for p in self.params if p.trainable]

    def restricted(self, outputs: dict[str, "Value"] | None = None,
                   keep_losses: bool = False) -> "Graph":
        """The part of the graph the given outputs need (inputs and params it does not use are
        dropped); nodes are shared, since they are immutable."""
        outputs = dict(self.outputs if outputs is None else outputs)
        roots = list(outputs.values()) + ([loss.value for loss in self.losses]
                                          if keep_losses else [])
        nodes = toposort(roots)
        used = {v.id for node in nodes for v in node.inputs} | {v.id for v in roots}
        used |= self._dim_carriers(nodes, used)
        return Graph(name=self.name,
                     inputs=[v for v in self.inputs if v.id in used],
                     params=[p for p in self.params if p.value.id in used],
                     nodes=nodes, outputs=outputs,
                     losses=list(self.losses) if keep_losses else [],
                     input_spans=dict(self.input_spans),
                     ignored_labels=dict(self.ignored_labels))

    def _dim_carriers(self, nodes: list[Node], used: set[int]) -> set[int]:
        """Inputs kept only because they carry a symbolic dim the kept nodes need: in
        `out noise = normal([B, 2])` nothing reads the input that binds B, yet B must be
        bound at run time; nor, in `out h = pe[T - 2:T]`, the one that binds a dim only an
        attribute names."""
        def symbols(value: "Value") -> set[str]:
            return {n for d in value.shape if not isinstance(d, int) for n in d.symbols}

        def attr_symbols(value: Any) -> set[str]:
            if isinstance(value, (list, tuple)):
                return set().union(*(attr_symbols(v) for v in value))
            return set(getattr(value, "symbols", ())) if hasattr(value, "terms") else set()
        needed = {n for node in nodes for v in node.outputs for n in symbols(v)}
        needed |= {n for node in nodes for v in node.attrs.values() for n in attr_symbols(v)}
        bound = {n for v in self.inputs if v.id in used for n in symbols(v)}
        carriers: set[int] = set()
        for value in self.inputs:
            if symbols(value) & (needed - bound):
                carriers.add(value.id)
                bound |= symbols(value)
        return carriers

    def consumers(self) -> dict[int, list[Node]]:
        """Value id -> the nodes that read it."""
        users: dict[int, list[Node]] = {}
        for node in self.nodes:
            for value in node.inputs:
                users.setdefault(value.id, []).append(node)
        return users


class GraphBuilder:
    """Appends nodes to a graph, inferring types through the op registry.

    Lowering, layers, autodiff and passes all build graphs through `op()`, so every node is
    type-checked when it is made and a shape error points at the source being lowered
    (`builder.at(span)`) inside the current layer scope (`builder.scoped(name)`).
    """

    def __init__(self, graph: Graph | None = None):
        self.graph = graph if graph is not None else Graph()
        self.span: Span | None = None
        self.scope: tuple[str, ...] = ()

    # -- context --------------------------------------------------------------------------
    @contextmanager
    def at(self, span: Span | None) -> Iterator[None]:
        """Nodes made inside carry this span (errors point here)."""
        saved = self.span
        self.span = span if span is not None else saved
        try:
            yield
        finally:
            self.span = saved

    @contextmanager
    def scoped(self, name: str) -> Iterator[None]:
        """Nodes made inside belong to the layer instance `name` (nested scopes join by '.')."""
        saved = self.scope
        self.scope = saved + (name,)
        try:
            yield
        finally:
            self.scope = saved

    # -- graph inputs ---------------------------------------------------------------------
    def input(self, name: str, type: TensorType, span: Span | None = None) -> Value:
        value = Value(type, kind="input", name=name)
        self.graph.inputs.append(value)
        if span is not None:
            self.graph.input_spans[name] = span
        return value

    def param(self, name: str, type: TensorType, init: Any, *, trainable: bool = True,
              span: Span | None = None, fan: tuple[int, int] | None = None) -> Value:
        """A parameter named by its full scoped name (e.g. `block_1.dense_2.weight`)."""
        value = Value(type, kind="param" if trainable else "state", name=name)
        self.graph.params.append(ParamInfo(name, value, init, trainable,
                                           span or self.span, self.scope, fan))
        return value

    # -- ops ------------------------------------------------------------------------------
    def op(self, op: Any, *inputs: Value, **attrs: Any) -> Any:
        """Apply a primitive; returns its Value, or a tuple of Values for multi-output ops."""
        from ..ops.registry import get_op          # the registry imports this module
        opdef = get_op(op) if isinstance(op, str) else op
        attrs = {k: _freeze(v) for k, v in attrs.items()}
        for value in inputs:
            if not isinstance(value, Value):
                raise TypeError(f"{opdef.name}: input {value!r} is not a graph Value")
        try:
            result = opdef.infer(*(v.type for v in inputs), **attrs)
        except ShapeError as error:
            raise Error(self._shape_diagnostic(opdef, error, inputs)) from None
        types = result if isinstance(result, tuple) else (result,)
        node = Node(opdef, tuple(inputs), attrs, span=self.span, scope=self.scope)
        node.outputs = tuple(Value(t, node, i) for i, t in enumerate(types))
        self.graph.nodes.append(node)
        return node.outputs if isinstance(result, tuple) else node.outputs[0]

    def _shape_diagnostic(self, opdef, error: ShapeError, inputs: Sequence[Value]):
        """A shape error at the current span, with a note where each operand was made."""
        from ..errors import Diagnostic
        diagnostic = Diagnostic(error.message, self.span, error.hint)
        for position, value in enumerate(inputs[:2]):
            made = value.producer.span if value.producer is not None else \
                self.graph.input_spans.get(value.name or "")
            if made is not None and made != self.span and len(inputs) > 1:
                diagnostic.notes.append((made, f"operand {position + 1} has type {value.type}"))
        return diagnostic

    def constant(self, value: Any, dtype: DType | None = None) -> Value:
        """A compile-time constant of exactly `value`'s shape (a Python scalar stays rank 0).

        The one way to make a constant: ops' VJP rules pass `like.dtype` (a rank-0 constant
        broadcasts against `like`), passes and optimisers the element type they need; without
        `dtype`, a float value is f32, a bool bool and anything else i64."""
        array = np.asarray(value)
        if dtype is None:
            dtype = (DType.f32 if array.dtype.kind == "f" else
                     DType.bool if array.dtype.kind == "b" else DType.i64)
        # np.array, not ascontiguousarray: the latter turns a rank-0 value into shape (1,).
        return self.op("constant", value=np.array(array, dtype=dtype.numpy, order="C"))


def _freeze(value: Any) -> Any:
    """Lists become tuples so attributes are hashable and cannot be mutated later."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_freeze(v) for v in value)
    return value


def toposort(outputs: Sequence[Value]) -> list[Node]:
    """The nodes that the given values depend on, dependencies first."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(v.producer, False) for v in reversed(outputs)
                                      if v.producer is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.append((node, True))
        for value in reversed(node.inputs):
            if value.producer is not None and value.producer.id not in seen:
                stack.append((value.producer, False))
    return order
