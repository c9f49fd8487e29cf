"""Recompute a cheap elementwise value where it is read late, instead of keeping it in memory.

A training step keeps many forward values until the backward pass reads them.  Some are one
elementwise op away from values the backward pass keeps anyway: batch norm's normalised map
`x_hat = (x - mean) * rstd` is read back only for the scale's gradient, `sum(g * x_hat)`, while
the centred map `x - mean` and the per-channel `rstd` are kept for the input's gradient.  So
the step stores x_hat in the forward pass, keeps it alive through the whole step, and reads it
again: one map written, held and read that its backward kernel could compute from what it
reads anyway.

This pass gives such a late reader its own copy of the elementwise node.  Fusion then computes
the copy inside the reader's kernel (the copy's inputs are already there), and the forward
kernel no longer needs to store the value when its other readers are in that kernel too.

A reader F of value v (made by elementwise node N) gets a copy of N when:

* N is pure (a copy of a random op would draw other numbers);
* F is not v's first reader in the schedule (the first keeps N itself);
* F fuses with an elementwise producer: it is elementwise or a loop reduction (a copy feeding
  a matrix product or a library kernel would be a kernel of its own, storing the value again);
* v is large (`LARGE` elements, symbolic dims counted at `SIZE_HINT`): small values cost
  nothing to keep;
* every large input of N is read (for its data, not its shape) at or after F anyway, so the
  copy keeps nothing alive longer than it already lived.

The pass runs last in the pipeline, after CSE, which would merge the copies back.
"""
from __future__ import annotations

import math

from ..ir.graph import Graph, Node, Value
from ..ir.types import elements_at
from .fusion_rules import is_elementwise
from .rewrite import Rebuilder

LARGE = 1 << 14          # elements: 64 KiB of f32
SIZE_HINT = 128          # the value a symbolic dim (the batch) is counted at


def recompute_late_reads(graph: Graph) -> Graph:
    """The graph with late readers of cheap large elementwise values computing their own copy
    (see the module docstring); the graph itself when there is none."""
    chosen = _choose(graph)
    if not chosen:
        return graph
    rebuilder = Rebuilder(graph)
    for node in graph.nodes:
        copies = chosen.get(node.id)
        if not copies:
            rebuilder.copy(node)
            continue
        inputs = list(rebuilder.inputs_of(node))
        with rebuilder.like(node) as builder:
            for value in copies:
                producer = value.producer
                copy = builder.op(producer.op, *rebuilder.inputs_of(producer), **producer.attrs)
                inputs = [copy if old.id == value.id else new
                          for old, new in zip(node.inputs, inputs)]
            outputs = builder.op(node.op, *inputs, **node.attrs)
        for old, new in zip(node.outputs, outputs if isinstance(outputs, tuple) else (outputs,)):
            rebuilder.replace(old, new)
    return rebuilder.finish()


def _choose(graph: Graph) -> dict[int, list[Value]]:
    """Reader node id -> the values it gets a copy of."""
    position = {node.id: k for k, node in enumerate(graph.nodes)}
    last_read: dict[int, float] = {}
    readers: dict[int, list[Node]] = {}
    for node in graph.nodes:
        for k, value in enumerate(node.inputs):
            if k not in node.op.shape_inputs:       # a read of the shape alone needs nothing
                readers.setdefault(value.id, []).append(node)
                last_read[value.id] = position[node.id]
    for value in (*graph.outputs.values(), *(l.value for l in graph.losses),
                  *graph.state_updates.values()):
        last_read[value.id] = math.inf
    chosen: dict[int, list[Value]] = {}
    for node in graph.nodes:
        if len(node.outputs) != 1 or not node.op.has("pure") or not is_elementwise(node) or \
                not _large(node.outputs[0]):
            continue
        value = node.outputs[0]
        if last_read.get(value.id) == math.inf:
            continue
        late = sorted({r.id: r for r in readers.get(value.id, [])}.values(),
                      key=lambda r: position[r.id])[1:]
        for reader in late:
            fuses = is_elementwise(reader) or reader.op.reduction is not None
            kept = all(last_read.get(u.id, -1) >= position[reader.id]
                       for u in node.inputs if _large(u))
            if fuses and kept:
                chosen.setdefault(reader.id, []).append(value)
    return chosen


def _large(value: Value) -> bool:
    return elements_at(value.shape, SIZE_HINT) >= LARGE


__all__ = ["LARGE", "recompute_late_reads"]
