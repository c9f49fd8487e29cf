"""Reverse-mode automatic differentiation on the graph IR: gradients are more graph.

Algorithm (`vjp`):
1. Activity: a value is *active* when it is floating-point and depends on one of the `wrt`
   values; only nodes with an active input and an output that reaches the seeds can carry a
   gradient, so the walk is restricted to them.
2. Walk those nodes in reverse topological order.  A node whose outputs received no cotangent is
   skipped.  Otherwise its op's `vjp` rule is called with one cotangent (or None) per output and
   returns one gradient (or None) per input; gradients for inactive inputs are dropped.
3. Fan-out: when a value feeds several nodes its cotangents are summed with `add` (one node per
   extra use), so every use contributes exactly once.  Un-broadcasting is each elementwise rule's
   job (`ops._common.unbroadcast`).
4. Cuts: ops with the "no_grad" trait (`stop_gradient`, comparisons, argmax, random masks) stop
   the flow.  An active op that has no `vjp` and is not marked "no_grad" is a compiler bug and
   raises `InternalError` naming the op and its source span.

Gradient nodes are made with the forward node's span and the scope `("grad",) + forward scope`,
so errors still point at the user's source and renderers can draw the backward pass apart.
Each gradient is checked to have exactly its input's type (a wrong vjp rule fails here, at the
op that produced it, rather than far away).
"""
from __future__ import annotations

from typing import Sequence

from ..ir.graph import GraphBuilder, Node, Value, toposort
from ..ir.verify import InternalError

GRAD_SCOPE = "grad"


def gradients(b: GraphBuilder, loss: Value, wrt: Sequence[Value]) -> list[Value | None]:
    """Gradient of the scalar `loss` w.r.t. each of `wrt` (None where no path), appended to `b`.

    `b`'s graph must already hold the nodes computing `loss`; the seed is d loss/d loss = 1.
    """
    if loss.rank != 0 or not loss.dtype.is_float:
        raise InternalError(f"internal error: gradients of a non-scalar loss {loss.type}")
    with b.at(loss.producer.span if loss.producer else None):
        seed = b.constant(1.0, loss.dtype)
    return vjp(b, [loss], [seed], wrt)


def vjp(b: GraphBuilder, outputs: Sequence[Value], cotangents: Sequence[Value | None],
        wrt: Sequence[Value]) -> list[Value | None]:
    """Pull the `cotangents` of `outputs` back to `wrt`: one gradient (or None) per wrt value."""
    wrt_ids = {v.id for v in wrt}
    nodes = toposort(list(outputs))
    active = _active_values(nodes, wrt_ids)
    grads: dict[int, Value] = {}
    for value, cotangent in zip(outputs, cotangents):
        if cotangent is not None and value.id in active:
            _accumulate(b, grads, value, _checked(cotangent, value, None))
    for node in reversed(nodes):
        if not any(v.id in active for v in node.inputs):
            continue
        output_grads = [grads.get(v.id) for v in node.outputs]
        if all(g is None for g in output_grads):
            continue
        _backprop_node(b, node, output_grads, active, grads)
    return [grads.get(v.id) for v in wrt]


def _active_values(nodes: Sequence[Node], wrt_ids: set[int]) -> set[int]:
    """Ids of floating-point values that depend on a wrt value (the wrt values included)."""
    active = set(wrt_ids)
    for node in nodes:
        if "no_grad" in node.op.traits:
            continue
        if any(v.id in active for v in node.inputs):
            active.update(v.id for v in node.outputs if v.dtype.is_float)
    return active


def _backprop_node(b: GraphBuilder, node: Node, output_grads: list[Value | None],
                   active: set[int], grads: dict[int, Value]) -> None:
    opdef = node.op
    if "no_grad" in opdef.traits:
        return
    if opdef.vjp is None:
        where = f" at {node.span}" if node.span else ""
        raise InternalError(
            f"internal error: op '{opdef.name}'{where} has no vjp rule, but a gradient flows "
            f"through it (give it a vjp, or the 'no_grad' trait if it is not differentiable)")
    saved_span, saved_scope = b.span, b.scope
    b.span, b.scope = node.span, (GRAD_SCOPE,) + tuple(node.scope)
    try:
        results = opdef.vjp(b, output_grads, node.inputs, node.outputs, **node.attrs)
        results = tuple(results) if isinstance(results, (tuple, list)) else (results,)
        if len(results) != len(node.inputs):
            raise InternalError(f"internal error: vjp of '{opdef.name}' returned "
                                f"{len(results)} gradients for {len(node.inputs)} inputs")
        for value, grad in zip(node.inputs, results):
            if grad is not None and value.id in active:
                _accumulate(b, grads, value, _checked(grad, value, node))
    finally:
        b.span, b.scope = saved_span, saved_scope


def _checked(grad: Value, value: Value, node: Node | None) -> Value:
    """The gradient must have its primal's exact shape; a dtype mismatch is a checked cast."""
    if tuple(grad.type.shape) != tuple(value.type.shape):
        op = f"vjp of '{node.op.name}'" if node is not None else "a cotangent"
        where = f" at {node.span}" if node is not None and node.span else ""
        raise InternalError(f"internal error: {op}{where} gave a gradient of type {grad.type} "
                            f"for a value of type {value.type}")
    return grad


def _accumulate(b: GraphBuilder, grads: dict[int, Value], value: Value, grad: Value) -> None:
    """Sum cotangents over fan-out (cast to the primal's dtype first)."""
    if grad.dtype != value.dtype:
        grad = b.op("cast", grad, dtype=value.dtype)
    previous = grads.get(value.id)
    grads[value.id] = grad if previous is None else b.op("add", previous, grad)


def zeros_like(b: GraphBuilder, value: Value) -> Value:
    """A tensor of zeros with `value`'s type (for missing cotangents).  A concrete shape is an
    attribute; a symbolic one is read from `value` (its shape only, never its elements)."""
    if value.type.is_concrete:
        return b.op("full", shape=tuple(value.shape), value=0, dtype=value.dtype)
    return b.op("full", value, value=0, dtype=value.dtype)
