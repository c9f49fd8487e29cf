"""Dead-code elimination: keep only the nodes that the outputs, losses and state updates need.

Algorithm: walk the nodes backwards from the roots (outputs, losses, state updates), marking a
node live when one of its outputs is live and then marking its inputs live; the surviving nodes
keep their order.  All ops are pure, so a node nobody reads can always go.  Graph inputs and
parameters are kept even when unused: they are the graph's calling convention.

Ops with a `prune` rule (scan) are cut down inside too: the rule gets the indices of the
outputs somebody reads and returns the inputs, attributes and outputs it keeps (OpDef.prune).
Nodes that CSE would merge (equal op, inputs and `merge_key`, e.g. a forward scan and its
gradient's `stack_carries` twin) are pruned alike, with the union of their needs, so they still
merge.  This is what removes, from a training step, the gradient of an RNN w.r.t. its input
data and every weight gradient that nobody asked for.  Pruning runs to a fixed point: a loop
pruned of a sequence may leave another loop's stacked y unread, which is then pruned too.
Bodies are then cleaned recursively with their outputs as roots.
"""
from __future__ import annotations

from collections.abc import Callable

from ..ir.graph import Graph
from ..ops.registry import Pruning
from .cse import merge_group
from .rewrite import Rebuilder, as_values, graph_pass, map_bodies


@graph_pass
def eliminate_dead_code(graph: Graph, bodies: Callable[[Graph], Graph]) -> Graph:
    """A new graph without the nodes that no output, loss or state update depends on."""
    roots = {v.id for v in graph.outputs.values()}
    roots.update(loss.value.id for loss in graph.losses)
    roots.update(v.id for v in graph.state_updates.values())
    live = _liveness(graph, roots, {})
    while True:         # a pruned loop may stop reading another loop's output: fixed point
        prunings = _prunings(graph, live)
        pruned_live = _liveness(graph, roots, prunings)
        if pruned_live == live:
            break
        live = pruned_live
    rebuilder = Rebuilder(graph)
    for node in graph.nodes:
        if not any(v.id in live for v in node.outputs):
            continue
        pruning = prunings.get(node.id)
        if pruning is None:
            rebuilder.copy(node, map_bodies(node, bodies))
            continue
        attrs = {key: bodies(value) if isinstance(value, Graph) else value
                 for key, value in pruning.attrs.items()}
        inputs = [rebuilder.get(node.inputs[i]) for i in pruning.inputs]
        with rebuilder.like(node) as b:
            new = as_values(b.op(node.op, *inputs, **attrs))
        for old_index, new_index in pruning.outputs.items():
            rebuilder.replace(node.outputs[old_index], new[new_index])
    return rebuilder.finish()


def _liveness(graph: Graph, roots: set[int], prunings: dict) -> set[int]:
    """Ids of live values; a pruned node reads only the inputs its pruning keeps."""
    live = set(roots)
    for node in reversed(graph.nodes):
        if any(v.id in live for v in node.outputs):
            pruning = prunings.get(node.id)
            inputs = node.inputs if pruning is None else \
                [node.inputs[i] for i in pruning.inputs]
            live.update(v.id for v in inputs)
    return live


def _prunings(graph: Graph, live: set[int]) -> dict[int, Pruning]:
    """Node id -> what it keeps, for each node whose op's `prune` rule drops something."""
    prunable = [node for node in graph.nodes if node.op.prune is not None]
    needed: dict[tuple, set[int]] = {}
    for node in prunable:           # the union of needs over the nodes CSE would merge
        needed.setdefault(merge_group(node, node.inputs, node.attrs), set()).update(
            k for k, value in enumerate(node.outputs) if value.id in live)
    memo: dict = {}
    prunings = {}
    for node in prunable:
        pruning = node.op.prune(node, needed[merge_group(node, node.inputs, node.attrs)], memo)
        if pruning is not None:
            prunings[node.id] = pruning
    return prunings
