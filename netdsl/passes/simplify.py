"""Algebraic simplification: local rewrites that remove work without changing any result.

Algorithm: walk the nodes in order with inputs already rewritten; each node is offered to the
rule for its op, which may return a replacement value (an existing value, or a cheaper node it
emits).  Because inputs are rewritten first, chains collapse in one pass (`neg(neg(neg(neg x)))`
becomes `x`).  Every rule requires the replacement to have exactly the node's type, so a rule never
changes a shape or an element type (`x + 0` where the 0 broadcasts `x` to a bigger shape stays).

Rules (a "one"/"zero" is a known constant whose elements are all 1/0, see `fold.known_value`):
    x * 1, 1 * x, x / 1, x ** 1, x + 0, 0 + x, x - 0  ->  x
    0 - x                                   ->  neg(x)
    neg(neg(x))                             ->  x
    reshape(x) to x's own shape             ->  x;    reshape(reshape(x)) -> reshape(x)
    transpose(x) by the identity            ->  x;    transpose(transpose(x)) -> one transpose
    broadcast_to(x) to x's own shape        ->  x
    cast(x) to x's own element type         ->  x;    identity(x) -> x
    sum/mean/max/min over no axes           ->  x
    matmul(a, transpose(b)), matmul(transpose(a), b), where the transpose swaps the last two
    axes and nothing else                   ->  matmul with that operand's transpose flag
                                                toggled (no transposed copy; a scan body's
                                                `x_t @ transpose(w)` no longer copies w each step)
    transpose(matmul(a, b)) over the last two axes, the product used only there
                                            ->  matmul(b, a) with both flags toggled
    slice_grad(g1, x, range 1) + slice_grad(g2, x, range 2) + ...  where the ranges of one
    axis cover it once                      ->  concat(g..., in range order)
    numel(x) of a computed x                ->  the count from the graph inputs' dims
                                                (numel of an input's axis, times constants),
                                                so x is not kept or stored for its shape
    x * 0, 0 * x                            ->  zeros, ONLY for integer and boolean x.
For floating-point x, `x * 0` is kept: it is NaN when x is NaN or infinite, and the gradient
graph must not hide such values.  `cast(cast(x))` is kept (the inner cast may round), and so is
`stop_gradient(x)`: a graph may still be differentiated after simplification.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir.graph import Graph, GraphBuilder, Node, Value
from ..ir.types import DType, Sym
from .fold import known_value
from .rewrite import Rebuilder, graph_pass, map_bodies


def _all(value: Value, number: float) -> bool:
    array = known_value(value)
    return array is not None and array.size > 0 and bool(np.all(array == number))


def _producer(value: Value, name: str) -> Node | None:
    node = value.producer
    return node if node is not None and node.op.name == name else None


# Each rule: (builder, node, inputs) -> replacement Value or None.  `inputs` are the rewritten
# inputs; the builder emits at the node's span and scope.

def _add(b, node, inputs):
    x, y = inputs
    if _all(x, 0):
        return y
    if _all(y, 0):
        return x
    return _slice_grads_as_concat(b, node.outputs[0].type, inputs)


def _slice_range(node: Node | None) -> tuple[int, int, int] | None:
    """(axis, start, stop) when `node` is a slice_grad writing into one range of one axis (static
    non-negative bounds, step 1, nothing squeezed; the other axes whole)."""
    if node is None or node.op.name != "slice_grad" or node.attrs.get("squeeze"):
        return None
    x = node.inputs[1]
    rank = x.rank
    found = None
    bounds = [tuple(node.attrs.get(key) or ()) for key in ("starts", "stops", "steps")]
    for axis in range(rank):
        start, stop, step = (b[axis] if axis < len(b) else None for b in bounds)
        if step not in (None, 1) or (start in (None, 0) and stop is None):
            if step not in (None, 1):
                return None
            continue
        start = 0 if start is None else start
        if found is not None or not isinstance(start, int) or not isinstance(stop, int) or \
                not isinstance(x.shape[axis], int) or not 0 <= start < stop <= x.shape[axis]:
            return None
        found = (axis, start, stop)
    return found


def _slice_grads_as_concat(b, out_type, inputs) -> Value | None:
    """A sum of slice_grads that together write every element of one axis once (the gradient
    of gates sliced out of one product: an LSTM's i, f, g, o) is the concat of their
    gradients: one copy each, instead of zero-filling every slice_grad and adding them up."""
    leaves, pending = [], list(inputs)
    while pending and len(leaves) <= 16:
        value = pending.pop()
        producer = value.producer
        if producer is not None and producer.op.name == "add" and \
                all(v.type == value.type for v in producer.inputs):
            pending.extend(producer.inputs)
        else:
            leaves.append(value)
    ranges = [_slice_range(v.producer) for v in leaves]
    if pending or len(leaves) < 2 or any(r is None for r in ranges) or \
            len({r[0] for r in ranges}) != 1 or \
            any(v.producer.inputs[1].type.shape != out_type.shape for v in leaves):
        return None
    order = sorted(range(len(leaves)), key=lambda k: ranges[k][1])
    axis, covered = ranges[0][0], 0
    for k in order:
        if ranges[k][1] != covered:
            return None                          # a gap or an overlap
        covered = ranges[k][2]
    if covered != out_type.shape[axis]:
        return None
    return b.op("concat", *(leaves[k].producer.inputs[0] for k in order), axis=axis)


def _sub(b, node, inputs):
    x, y = inputs
    if _all(y, 0):
        return x
    if _all(x, 0) and y.type == node.outputs[0].type:
        return b.op("neg", y)
    return None


def _mul(b, node, inputs):
    x, y = inputs
    if _all(x, 1):
        return y
    if _all(y, 1):
        return x
    out = node.outputs[0]
    if (_all(x, 0) or _all(y, 0)) and not out.dtype.is_float and out.type.is_concrete:
        return b.op("full", shape=tuple(out.shape), value=0, dtype=out.dtype)
    return None


def _div_or_pow(b, node, inputs):
    x, y = inputs
    return x if _all(y, 1) else None


def _neg(b, node, inputs):
    inner = _producer(inputs[0], "neg")
    return inner.inputs[0] if inner is not None else None


def _reshape(b, node, inputs):
    x = inputs[0]                    # a second input, if any, only gives the target shape
    if tuple(x.shape) == tuple(node.outputs[0].shape):
        return x
    inner = _producer(x, "reshape")
    if inner is not None:
        return b.op("reshape", inner.inputs[0], *inputs[1:], **node.attrs)
    return None


def _permutation(node: Node) -> tuple[int, ...]:
    rank = node.inputs[0].rank
    perm = node.attrs.get("perm")
    return tuple(reversed(range(rank))) if perm is None else tuple(p % rank for p in perm)


def _transpose(b, node, inputs):
    (x,) = inputs
    perm = _permutation(node)
    if perm == tuple(range(len(perm))):
        return x
    inner = _producer(x, "transpose")
    if inner is not None:
        first = _permutation(inner)
        composed = tuple(first[axis] for axis in perm)
        source = inner.inputs[0]
        return source if composed == tuple(range(len(composed))) else \
            b.op("transpose", source, perm=composed)
    return None


def _swaps_last_two(node: Node | None) -> bool:
    if node is None or node.inputs[0].rank < 2:
        return False
    perm, rank = _permutation(node), node.inputs[0].rank
    return perm == tuple(range(rank - 2)) + (rank - 1, rank - 2)


def _matmul(b, node, inputs):
    x, y = inputs
    ta = bool(node.attrs.get("transpose_a", False))
    tb = bool(node.attrs.get("transpose_b", False))
    inner_x, inner_y = _producer(x, "transpose"), _producer(y, "transpose")
    fold_x, fold_y = _swaps_last_two(inner_x), _swaps_last_two(inner_y)
    if not (fold_x or fold_y):
        return None
    if fold_x:
        x, ta = inner_x.inputs[0], not ta
    if fold_y:
        y, tb = inner_y.inputs[0], not tb
    attrs = {**node.attrs, "transpose_a": ta, "transpose_b": tb}
    return b.op("matmul", x, y, **attrs)


def _same_type(b, node, inputs):
    """broadcast_to / cast / identity: `_apply` keeps the node unless nothing changes."""
    return inputs[0]


def _numel(b, node, inputs):
    """numel of a computed value, counted from the graph inputs that carry its symbolic dims
    (and its static ones): an input is an argument, in memory for the whole step, so no
    computed value is kept or stored to be read for its shape.  (A mean's gradient counts its
    input: batch norm's squared deviations were stored for that read alone.)"""
    (x,) = inputs
    if x.kind != "node":
        return None
    axes = node.attrs.get("axes")
    chosen = range(x.rank) if axes is None else [int(a) % x.rank for a in np.atleast_1d(axes)]
    carriers: dict[str, tuple[Value, int]] = {}
    for value in b.graph.inputs:
        for axis, d in enumerate(value.shape):
            if isinstance(d, Sym) and len(d.terms) == 1 and d.terms[0][1] == 1 and \
                    len(d.terms[0][0]) == 1:
                carriers.setdefault(d.terms[0][0][0], (value, axis))
    constant, factors = 1, []
    for d in (x.shape[a] for a in chosen):
        if isinstance(d, int):
            constant *= d
            continue
        if len(d.terms) != 1 or any(name not in carriers for name in d.terms[0][0]):
            return None
        constant *= d.terms[0][1]
        factors += [carriers[name] for name in d.terms[0][0]]
    dtype = node.attrs.get("dtype", DType.f32)
    count = None
    for value, axis in factors:
        factor = b.op("numel", value, axes=(axis,), dtype=dtype)
        count = factor if count is None else b.op("mul", count, factor)
    if count is None or constant != 1:
        factor = b.constant(np.asarray(constant, dtype=dtype.numpy), dtype)
        count = factor if count is None else b.op("mul", count, factor)
    return count


def _reduction(b, node, inputs):
    axes = node.attrs.get("axes")            # None: every axis; an int: one (reduced_axes)
    return inputs[0] if isinstance(axes, (tuple, list)) and len(axes) == 0 else None


RULES: dict[str, Callable] = {
    "add": _add, "sub": _sub, "mul": _mul, "div": _div_or_pow, "pow": _div_or_pow,
    "neg": _neg, "reshape": _reshape, "transpose": _transpose,
    "broadcast_to": _same_type, "cast": _same_type, "identity": _same_type,
    "sum": _reduction, "mean": _reduction, "max": _reduction, "min": _reduction,
    "matmul": _matmul, "numel": _numel,
}


@graph_pass
def simplify_algebra(graph: Graph, bodies: Callable[[Graph], Graph]) -> Graph:
    """A new graph with the algebraic identities above applied."""
    rebuilder = Rebuilder(graph)
    uses: dict[int, int] = {}
    for node in graph.nodes:
        for value in node.inputs:
            uses[value.id] = uses.get(value.id, 0) + 1
    for value in graph.outputs.values():
        uses[value.id] = uses.get(value.id, 0) + 2
    for node in graph.nodes:
        product = _producer(node.inputs[0], "matmul") if node.op.name == "transpose" else None
        if product is not None and uses.get(node.inputs[0].id) == 1 and _swaps_last_two(node) \
                and all(v.rank >= 2 for v in product.inputs):
            a, b2 = rebuilder.inputs_of(product)     # (A B)ᵀ = Bᵀ Aᵀ: one gemm, no copy
            ta = bool(product.attrs.get("transpose_a", False))
            tb = bool(product.attrs.get("transpose_b", False))
            with rebuilder.like(node) as b:
                replacement = _apply(lambda b, n, i: b.op("matmul", b2, a, transpose_a=not tb,
                                                          transpose_b=not ta), b, node, [])
            if replacement is not None:
                rebuilder.replace(node.outputs[0], replacement)
                continue
        rule = RULES.get(node.op.name)
        if rule is not None and len(node.outputs) == 1:
            inputs = rebuilder.inputs_of(node)
            with rebuilder.like(node) as b:
                replacement = _apply(rule, b, node, inputs)
            if replacement is not None:
                rebuilder.replace(node.outputs[0], replacement)
                continue
        rebuilder.copy(node, map_bodies(node, bodies))
    return rebuilder.finish()


def _apply(rule, b: GraphBuilder, node: Node, inputs) -> Value | None:
    """Run a rule; a replacement of a different type is refused (the node stays)."""
    mark = len(b.graph.nodes)
    replacement = rule(b, node, inputs)
    if replacement is not None and replacement.type != node.outputs[0].type:
        del b.graph.nodes[mark:]            # drop anything the refused rule emitted
        return None
    return replacement
