"""Common-subexpression elimination: compute each distinct (op, inputs, attributes) once.

Algorithm: walk the nodes in order, with inputs already rewritten to their surviving values; a
node's key is its op, the ids of its inputs and its hashable attributes (`Node.attr_key`:
arrays by their bytes, subgraphs by identity).  The first node with a key is kept; a later node
with the same key is dropped and its outputs read the first one's.

Every primitive is a pure function of its inputs and attributes, so any two nodes with equal keys
compute equal values.  That includes the random ops: they draw from an explicit (seed, counter)
input pair, so two draws with the same seed and counter are the same numbers by definition, and
merging them is correct.  Lowering gives each independent draw (each dropout layer, each
`normal([...])`) its own counter, so distinct draws never share a key.

Ops with a `merge_key` rule (scan) merge on that key instead of all their attributes: the
gradient of a scan asks for a twin of the forward loop with `stack_carries=True` (which only
adds outputs), and scans that differ only in that flag are one loop.  When a member of such a
group is wider (its `widen` rule leaves its attributes as they are), the first member is
emitted widened and the others read a prefix of its outputs, so the forward pass runs once and
keeps its carries for the backward pass.  Bodies are CSE'd recursively.
"""
from __future__ import annotations

from typing import Callable

from ..ir.graph import Graph, Node, Value
from .rewrite import Rebuilder, graph_pass, map_bodies


def _merges_by_key(node: Node) -> bool:
    return node.op.merge_key is not None


def merge_group(node: Node, inputs, attrs) -> tuple:
    """The key under which CSE merges `node` (given its inputs and attributes)."""
    key = node.op.merge_key(attrs) if _merges_by_key(node) else Node(node.op, (), attrs).attr_key()
    return (node.op.name, tuple(v.id for v in inputs), key)


def _is_wide(node: Node) -> bool:
    return node.op.widen(node.attrs) == node.attrs


@graph_pass
def eliminate_common_subexpressions(graph: Graph, bodies: Callable[[Graph], Graph]) -> Graph:
    """A new graph in which no two nodes have the same op, inputs and attributes."""
    # Groups merged by key (by the original inputs) that contain a wide member.
    wide_groups = {merge_group(node, node.inputs, node.attrs)
                   for node in graph.nodes if _merges_by_key(node) and _is_wide(node)}
    rebuilder = Rebuilder(graph)
    seen: dict[tuple, tuple[Value, ...]] = {}
    for node in graph.nodes:
        original_group = merge_group(node, node.inputs, node.attrs) \
            if _merges_by_key(node) else None
        attrs = map_bodies(node, bodies)
        effective = attrs if attrs is not None else node.attrs
        inputs = rebuilder.inputs_of(node)
        if _merges_by_key(node):
            key = merge_group(node, inputs, effective)
            if original_group in wide_groups and node.op.widen(effective) != effective:
                attrs = node.op.widen(effective)
        else:
            attr_key = node.attr_key() if attrs is None else \
                Node(node.op, (), effective).attr_key()       # the key of the rebuilt node
            key = (node.op.name, tuple(v.id for v in inputs), attr_key)
        if key in seen:
            for old, new in zip(node.outputs, seen[key]):   # a narrower twin reads a prefix
                rebuilder.replace(old, new)
            continue
        seen[key] = rebuilder.copy(node, attrs)
    return rebuilder.finish()
