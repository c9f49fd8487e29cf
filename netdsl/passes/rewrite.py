"""Helpers to rebuild graphs: every pass returns a NEW graph and never edits the one it was given.

`Rebuilder` copies a graph node by node while the pass decides, per node, to keep it, to replace
its outputs by other values, or to emit new nodes in its place.  A node whose inputs did not
change is shared with the old graph rather than copied (nodes and values are immutable, so two
graphs may share them); a node whose inputs were replaced is rebuilt through `GraphBuilder.op`,
which re-infers its types.  `finish()` remaps the outputs, losses and state updates.

`inline_graph` copies a whole graph into another builder with its inputs bound to given values
(used to call a `scan` body inside the body of its gradient).  `graph_pass` makes a pass apply
itself to `scan` bodies.  (Constants are made by `GraphBuilder.constant`.)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence


from ..ir.graph import Graph, GraphBuilder, Node, Value


def as_values(result: Any) -> tuple[Value, ...]:
    """`GraphBuilder.op` returns a Value or a tuple of Values; always give a tuple."""
    return result if isinstance(result, tuple) else (result,)


class Rebuilder:
    """Copies `graph` into a new graph with the same inputs and parameters, remapping values."""

    def __init__(self, graph: Graph, name: str | None = None):
        self.old = graph
        self.graph = Graph(name=name or graph.name, inputs=list(graph.inputs),
                           params=list(graph.params), input_spans=dict(graph.input_spans))
        self.builder = GraphBuilder(self.graph)
        self.mapping: dict[int, Value] = {}

    def get(self, value: Value) -> Value:
        """The value that replaces `value` in the new graph (itself if unchanged)."""
        return self.mapping.get(value.id, value)

    def replace(self, old: Value, new: Value) -> None:
        """Every later use of `old` reads `new` instead."""
        if old.id != new.id:
            self.mapping[old.id] = new

    def inputs_of(self, node: Node) -> tuple[Value, ...]:
        return tuple(self.get(v) for v in node.inputs)

    def copy(self, node: Node, attrs: dict[str, Any] | None = None) -> tuple[Value, ...]:
        """Keep `node` (shared if nothing changed, rebuilt otherwise); returns its new outputs."""
        inputs = self.inputs_of(node)
        if attrs is None and all(a is b for a, b in zip(inputs, node.inputs)):
            self.graph.nodes.append(node)
            return node.outputs
        with self.like(node):
            new = as_values(self.builder.op(node.op, *inputs,
                                            **(node.attrs if attrs is None else attrs)))
        for old, value in zip(node.outputs, new):
            self.replace(old, value)
        return new

    @contextmanager
    def like(self, node: Node) -> Iterator[GraphBuilder]:
        """Nodes emitted inside carry `node`'s span and scope (replacements stay traceable)."""
        saved = self.builder.span, self.builder.scope
        self.builder.span, self.builder.scope = node.span, node.scope
        try:
            yield self.builder
        finally:
            self.builder.span, self.builder.scope = saved

    def finish(self) -> Graph:
        """The new graph, with outputs, losses and state updates read through the mapping."""
        old = self.old
        self.graph.outputs = {name: self.get(v) for name, v in old.outputs.items()}
        self.graph.losses = [replace(loss, value=self.get(loss.value)) for loss in old.losses]
        self.graph.state_updates = {name: self.get(v) for name, v in old.state_updates.items()}
        return self.graph


def rebuild(graph: Graph, rule: Callable[[Rebuilder, Node], "Sequence[Value] | None"]) -> Graph:
    """Copy `graph`, asking `rule(rebuilder, node)` for each node: None keeps the node (with its
    inputs remapped); a sequence of values replaces the node's outputs by them."""
    rebuilder = Rebuilder(graph)
    for node in graph.nodes:
        replacement = rule(rebuilder, node)
        if replacement is None:
            rebuilder.copy(node)
        else:
            for old, new in zip(node.outputs, replacement):
                rebuilder.replace(old, new)
    return rebuilder.finish()


def map_bodies(node: Node, transform: Callable[[Graph], Graph]) -> dict[str, Any] | None:
    """The node's attributes with every Graph-valued one transformed, or None if none changed."""
    changed = False
    attrs = dict(node.attrs)
    for key, value in node.attrs.items():
        if isinstance(value, Graph):
            new = transform(value)
            if new is not value:
                attrs[key] = new
                changed = True
    return attrs if changed else None


def rebuild_scans(graph: Graph, bodies: Callable[[Graph], Graph],
                  rule: Callable[..., Sequence[Value] | None]) -> Graph:
    """Copy `graph` (inside a `graph_pass`), its subgraphs through `bodies`, asking
    `rule(builder, node, inputs, attrs)` for each `scan` node (its inputs remapped, its attrs
    with the bodies already rewritten): None keeps the node; a sequence of values replaces its
    outputs by them.  The builder emits beside the node, with its span and scope."""
    rebuilder = Rebuilder(graph)
    for node in graph.nodes:
        attrs = map_bodies(node, bodies)
        if node.op.name == "scan":
            with rebuilder.like(node) as builder:
                outputs = rule(builder, node, rebuilder.inputs_of(node),
                               attrs if attrs is not None else node.attrs)
            if outputs is not None:
                for old, new in zip(node.outputs, outputs):
                    rebuilder.replace(old, new)
                continue
        rebuilder.copy(node, attrs)
    return rebuilder.finish()


def inline_graph(b: GraphBuilder, graph: Graph, arguments: Sequence[Value]) -> list[Value]:
    """Emit copies of `graph`'s nodes into `b` with its inputs bound to `arguments` (in order);
    returns the copies of its outputs in order.  Copied nodes keep their spans and scopes."""
    if graph.params:
        raise ValueError(f"cannot inline graph '{graph.name}': it has parameters")
    if len(arguments) != len(graph.inputs):
        raise ValueError(f"inline of '{graph.name}': {len(graph.inputs)} inputs, "
                         f"{len(arguments)} arguments")
    mapping = {v.id: a for v, a in zip(graph.inputs, arguments)}
    saved = b.span, b.scope
    try:
        for node in graph.nodes:
            b.span, b.scope = node.span, node.scope
            new = as_values(b.op(node.op, *(mapping.get(v.id, v) for v in node.inputs),
                                 **node.attrs))
            for old, value in zip(node.outputs, new):
                mapping[old.id] = value
    finally:
        b.span, b.scope = saved
    return [mapping.get(v.id, v) for v in graph.outputs.values()]


def graph_pass(body: Callable[[Graph, Callable[[Graph], Graph]], Graph]) -> Callable[[Graph], Graph]:
    """Decorator for a pass `body(graph, bodies)` that also applies itself to subgraphs.

    `bodies(subgraph)` runs the pass on a `scan` body, memoised for one run of the pass: a body
    shared by several nodes (a scan and its `stack_carries` twin) stays one shared graph, so
    CSE can still recognise the two nodes as the same loop.
    """
    def run(graph: Graph) -> Graph:
        cache: dict[int, tuple[Graph, Graph]] = {}

        def on_body(subgraph: Graph) -> Graph:
            if id(subgraph) not in cache:       # keep the key graph alive beside its result
                cache[id(subgraph)] = (subgraph, body(subgraph, on_body))
            return cache[id(subgraph)][1]

        return body(graph, on_body)

    run.__name__ = body.__name__
    run.__qualname__ = body.__qualname__
    run.__doc__ = body.__doc__
    run.__module__ = body.__module__
    return run
