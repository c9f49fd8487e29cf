"""Dead-code elimination: keep only the nodes that the outputs, losses and state updates need.

Algorithm: walk the nodes backwards from the roots (outputs, losses, state updates), marking a
node live when one of its outputs is live and then marking its inputs live; the surviving nodes
keep their order.  All ops are pure, so a node nobody reads can always go.  Graph inputs and
parameters are kept even when unused: they are the graph's calling convention.

Loops are pruned inside too.  A `scan` keeps only the stacked ys somebody reads and the carries
that are read (finally or stacked) or that feed a kept body output, found by a fixed point over
the body; sequences and constants the kept outputs do not use are dropped as inputs (one
sequence stays, to give the loop its length).  This is what removes, from a training step, the
gradient of an RNN w.r.t. its input data and every weight gradient that nobody asked for.  Scans
that CSE would merge (same inputs and body, e.g. a forward scan and its gradient's
`stack_carries` twin) are pruned alike, with the union of their needs, so they still merge.
Bodies are then cleaned recursively with their outputs as roots.
"""
from __future__ import annotations

from typing import Callable

from ..ir.graph import Graph, Node
from ..ops.control import merge_key
from .rewrite import Rebuilder, as_values, graph_pass, map_bodies


@graph_pass
def eliminate_dead_code(graph: Graph, bodies: Callable[[Graph], Graph]) -> Graph:
    """A new graph without the nodes that no output, loss or state update depends on."""
    roots = {v.id for v in graph.outputs.values()}
    roots.update(loss.value.id for loss in graph.losses)
    roots.update(v.id for v in graph.state_updates.values())
    live = _liveness(graph, roots, {})
    plans = _scan_plans(graph, live)
    live = _liveness(graph, roots, plans)
    rebuilder = Rebuilder(graph)
    pruned_bodies: dict[tuple, Graph] = {}
    for node in graph.nodes:
        if not any(v.id in live for v in node.outputs):
            continue
        plan = plans.get(node.id)
        if plan is None:
            rebuilder.copy(node, map_bodies(node, bodies))
            continue
        inputs, attrs, output_map = _apply_plan(node, plan, pruned_bodies)
        attrs["body"] = bodies(attrs["body"])
        with rebuilder.like(node) as b:
            new = as_values(b.op("scan", *(rebuilder.get(v) for v in inputs), **attrs))
        for old_index, new_index in output_map.items():
            rebuilder.replace(node.outputs[old_index], new[new_index])
    return rebuilder.finish()


def _liveness(graph: Graph, roots: set[int], plans: dict) -> set[int]:
    """Ids of live values; a planned scan reads only the inputs its plan keeps."""
    live = set(roots)
    for node in reversed(graph.nodes):
        if any(v.id in live for v in node.outputs):
            plan = plans.get(node.id)
            inputs = node.inputs if plan is None else [node.inputs[i] for i in plan.inputs]
            live.update(v.id for v in inputs)
    return live


class _Plan:
    """What a pruned scan keeps: indices of carries, sequences, constants and ys."""

    def __init__(self, carries, sequences, constants, ys, n_carry, n_seq):
        self.carries, self.sequences, self.constants, self.ys = carries, sequences, constants, ys
        self.inputs = carries + [n_carry + j for j in sequences] + \
            [n_carry + n_seq + m for m in constants]

    def key(self) -> tuple:
        return (tuple(self.carries), tuple(self.sequences), tuple(self.constants),
                tuple(self.ys))


def _scan_plans(graph: Graph, live: set[int]) -> dict[int, _Plan]:
    """A pruning plan for each scan with something to drop (node id -> plan)."""
    needs: dict[tuple, tuple[set, set]] = {}
    scans = [n for n in graph.nodes if n.op.name == "scan"]
    for node in scans:       # the union of needs over scans CSE would merge
        carries, ys = needs.setdefault(_group(node), (set(), set()))
        n_carry, n_ys = node.attrs["n_carry"], _n_ys(node)
        stacked = node.outputs[n_carry + n_ys:]
        carries.update(i for i in range(n_carry)
                       if node.outputs[i].id in live or (stacked and stacked[i].id in live))
        ys.update(j for j in range(n_ys) if node.outputs[n_carry + j].id in live)
    plans = {}
    for node in scans:
        plan = _plan(node, *needs[_group(node)])
        if plan is not None:
            plans[node.id] = plan
    return plans


def _group(node: Node) -> tuple:
    return (tuple(v.id for v in node.inputs), merge_key(node.attrs))


def _n_ys(node: Node) -> int:
    return len(node.attrs["body"].outputs) - node.attrs["n_carry"]


def _plan(node: Node, carries: set[int], ys: set[int]) -> _Plan | None:
    body: Graph = node.attrs["body"]
    n_carry, n_seq = node.attrs["n_carry"], node.attrs["n_seq"]
    outputs = list(body.outputs.values())
    needed = set(carries)
    while True:                          # a kept output may read another carry: fixed point
        roots = [outputs[i] for i in sorted(needed)] + [outputs[n_carry + j] for j in ys]
        used = _used_values(body, roots)
        more = {i for i in range(n_carry) if body.inputs[i].id in used} - needed
        if not more:
            break
        needed |= more
    n_const = len(body.inputs) - n_carry - n_seq
    sequences = [j for j in range(n_seq) if body.inputs[n_carry + j].id in used]
    if n_seq and not sequences:
        sequences = [0]                  # the loop's length comes from a sequence
    constants = [m for m in range(n_const) if body.inputs[n_carry + n_seq + m].id in used]
    plan = _Plan(sorted(needed), sequences, constants, sorted(ys), n_carry, n_seq)
    if len(plan.inputs) == len(node.inputs) and len(plan.ys) == len(outputs) - n_carry:
        return None
    return plan


def _used_values(body: Graph, roots) -> set[int]:
    used = {v.id for v in roots}
    for node in reversed(body.nodes):
        if any(v.id in used for v in node.outputs):
            used.update(v.id for v in node.inputs)
    return used


def _apply_plan(node: Node, plan: _Plan, pruned_bodies: dict[tuple, Graph]):
    """The kept inputs, the new attributes and old output index -> new output index."""
    body: Graph = node.attrs["body"]
    n_carry, n_seq = node.attrs["n_carry"], node.attrs["n_seq"]
    key = (id(body), plan.key())
    if key not in pruned_bodies:         # shared by the scans of one CSE group
        names = list(body.outputs)
        kept = [names[i] for i in plan.carries] + [names[n_carry + j] for j in plan.ys]
        pruned_bodies[key] = Graph(name=body.name, inputs=[body.inputs[i] for i in plan.inputs],
                                   nodes=list(body.nodes),
                                   outputs={name: body.outputs[name] for name in kept})
    attrs = dict(node.attrs, body=pruned_bodies[key], n_carry=len(plan.carries),
                 n_seq=len(plan.sequences))
    n_ys, kept_carries = _n_ys(node), len(plan.carries)
    output_map = {i: k for k, i in enumerate(plan.carries)}
    output_map.update({n_carry + j: kept_carries + k for k, j in enumerate(plan.ys)})
    if node.attrs.get("stack_carries"):
        base = kept_carries + len(plan.ys)
        output_map.update({n_carry + n_ys + i: base + k for k, i in enumerate(plan.carries)})
    return [node.inputs[i] for i in plan.inputs], attrs, output_map
