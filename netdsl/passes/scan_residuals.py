"""A loop that recomputes what an earlier loop computed step by step reads that loop's values.

The gradient of a scan (passes/scan_grad.py) recomputes each forward step from the stored
carry entering it, then pulls the cotangents back through it.  For an LSTM that is the gate
pre-activations `z_t = x_t W_ihᵀ + h_{t-1} W_hhᵀ + b`, three sigmoids and two tanh per element,
before any gradient arithmetic: five exponentials and five divisions per element that the
forward loop has already done, plus reading the two [B, T, 4H] sequences `z_t` is made of.
PyTorch's LSTM keeps its gates from the forward pass for the same reason.

`reuse_loop_values` finds, in a loop G, the values that are the same function of the same step
inputs as values of an earlier loop F's body (by value numbering across the two bodies), and
makes F yield them stacked so that G reads them as sequences.  The values G reads this way are
the *frontier*: recomputed values that something in G other than the recomputation uses (for
the LSTM: the four activated gates and tanh(c_t), 5 x [B, H] per step).  What G then no longer
needs (the recomputation, and the sequences only it read: `x_t W_ihᵀ` and `h_{t-1} W_hhᵀ`,
2 x [B, 4H]) is removed by the cleanup's DCE, and DCE's pruning of scans drops the sequences
and the forward ys nobody reads any more.

G step t reads slice t of its sequences; a value of G's body corresponds to one of F's body
when both are the same op with the same attributes of corresponding values, starting from:
  - G's slice of one of F's stored carries  <->  F's carry entering step t,
  - G's slice of one of F's stacked ys      <->  that y's body value,
  - G's slice of one of F's sequences       <->  F's slice of it (same axis),
  - G's constant that is one of F's constants  <->  F's constant input.
Every op is a pure function of its inputs and attributes (passes/cse.py), so corresponding
values are equal at every step: G reads exactly the numbers F computed (the recomputation may
have rounded differently, by an ulp, under other fusion).

When: the frontier costs no more to store and read than the sequences it frees (per step
bytes, every symbolic dimension 1), so memory traffic never grows; the recomputation saved is
the gain.  Runs after `reuse_loop_products` (passes/scan_hoist.py), whose reused product is
one of the ys the correspondence starts from.
"""
from __future__ import annotations

from ..frontend.cost import per_example
from ..ir.graph import Graph, Node, Value
from ..ir.types import TensorType
from .rewrite import Rebuilder, as_values


def _step_bytes(type_: TensorType) -> int:
    elements = 1
    for dim in type_.shape:
        elements *= per_example(dim)
    return elements * type_.dtype.numpy.itemsize


def _starting_points(loop: Node, partner: Node) -> dict[int, Value]:
    """G body input id -> the F body value it corresponds to (see the module docstring)."""
    body, n_carry, n_seq = loop.attrs["body"], loop.attrs["n_carry"], loop.attrs["n_seq"]
    f_body, f_carry, f_seq = (partner.attrs["body"], partner.attrs["n_carry"],
                              partner.attrs["n_seq"])
    f_outputs = list(f_body.outputs.values())
    f_ys = len(f_outputs) - f_carry
    f_sequences = {v.id: k for k, v in enumerate(partner.inputs[f_carry:f_carry + f_seq])}
    f_constants = {v.id: m for m, v in enumerate(partner.inputs[f_carry + f_seq:])}
    found: dict[int, Value] = {}
    for j, outer in enumerate(loop.inputs[n_carry:n_carry + n_seq]):
        inner = body.inputs[n_carry + j]
        if outer.producer is partner:
            k = outer.index - f_carry
            if 0 <= k < f_ys:
                found[inner.id] = f_outputs[f_carry + k]
            elif partner.attrs.get("stack_carries") and 0 <= k - f_ys < f_carry:
                found[inner.id] = f_body.inputs[k - f_ys]
        elif outer.id in f_sequences:
            found[inner.id] = f_body.inputs[f_carry + f_sequences[outer.id]]
    for m, outer in enumerate(loop.inputs[n_carry + n_seq:]):
        if outer.id in f_constants:
            found[body.inputs[n_carry + n_seq + m].id] = \
                f_body.inputs[f_carry + f_seq + f_constants[outer.id]]
    return found


def _correspondence(loop: Node, partner: Node) -> dict[int, Value]:
    """G body value id -> the equal F body value, for every G value that has one."""
    known = _starting_points(loop, partner)
    if not known:
        return {}
    f_nodes = {}
    for node in partner.attrs["body"].nodes:
        f_nodes.setdefault((node.op.name, tuple(v.id for v in node.inputs), node.attr_key()),
                           node)
    for node in loop.attrs["body"].nodes:
        if not all(v.id in known for v in node.inputs):
            continue
        key = (node.op.name, tuple(known[v.id].id for v in node.inputs), node.attr_key())
        twin = f_nodes.get(key)
        if twin is not None and [v.type for v in twin.outputs] == [v.type for v in node.outputs]:
            known.update({v.id: w for v, w in zip(node.outputs, twin.outputs)})
    return known


def _live(body: Graph, cut: set[int]) -> set[int]:
    """Ids of the body values its outputs read, not looking past the values in `cut`."""
    live = {v.id for v in body.outputs.values()}
    for node in reversed(body.nodes):
        if any(v.id in live and v.id not in cut for v in node.outputs):
            live.update(v.id for v in node.inputs)
    return live - cut


def _varying(body: Graph, n_steps: int) -> set[int]:
    """Ids of the body values that read one of its first `n_steps` inputs."""
    varying = {v.id for v in body.inputs[:n_steps]}
    for node in body.nodes:
        if any(v.id in varying for v in node.inputs):
            varying.update(v.id for v in node.outputs)
    return varying


# Ops cheaper to redo from values at hand than to store and load: a frontier value made by one
# of these from other frontier values, loop constants or inputs read anyway is left recomputed
# (GRU: `1 - z` beside `z`).
_CHEAP = frozenset({"add", "sub", "mul", "neg", "square", "maximum", "minimum"})


def _trimmed(body: Graph, frontier: list[Value], varying: set[int]) -> list[Value]:
    """The frontier without the values cheaply remade from the rest (see `_CHEAP`)."""
    inputs = {v.id for v in body.inputs}
    kept = list(frontier)
    changed = True
    while changed:
        changed = False
        cut = {v.id for v in kept}
        live = _live(body, cut)
        for value in kept:
            node = value.producer
            if node.op.name in _CHEAP and all(
                    (u.id in cut and u is not value) or u.id not in varying or
                    (u.id in inputs and u.id in live) for u in node.inputs):
                kept.remove(value)
                changed = True
                break
    return kept


def _frontier(body: Graph, known: dict[int, Value], varying: set[int]) -> list[Value]:
    """The recomputed values that a live value without a twin, or an output, reads.  Only
    values that change from step to step (`varying`), of single-output nodes (the rewrite
    replaces whole nodes); never body inputs."""
    live = _live(body, set())
    frontier: dict[int, Value] = {}

    def recomputed(v: Value) -> bool:
        return v.id in known and v.id in varying and v.producer is not None and \
            len(v.producer.outputs) == 1

    for node in body.nodes:
        if all(v.id in known for v in node.outputs) or \
                not any(v.id in live for v in node.outputs):
            continue
        for v in node.inputs:
            if recomputed(v):
                frontier.setdefault(v.id, v)
    for v in body.outputs.values():
        if recomputed(v):
            frontier.setdefault(v.id, v)
    return list(frontier.values())


def _freed_bytes(loop: Node, frontier: list[Value]) -> int:
    """Per-step bytes of G's sequences that nothing reads once the frontier is read instead."""
    body, n_carry, n_seq = loop.attrs["body"], loop.attrs["n_carry"], loop.attrs["n_seq"]
    before, after = _live(body, set()), _live(body, {v.id for v in frontier})
    return sum(_step_bytes(v.type) for v in body.inputs[n_carry:n_carry + n_seq]
               if v.id in before and v.id not in after)


def _plan(loop: Node) -> tuple[Node, list[tuple[Value, Value]]] | None:
    """(F, [(G frontier value, its F twin)]) when G should read F's values, else None."""
    if loop.op.name != "scan":
        return None
    n_carry, n_seq = loop.attrs["n_carry"], loop.attrs["n_seq"]
    partners = []
    for outer in loop.inputs[n_carry:n_carry + n_seq]:
        producer = outer.producer
        if producer is not None and producer.op.name == "scan" and producer is not loop and \
                producer.attrs["axis"] == loop.attrs["axis"] and producer not in partners:
            partners.append(producer)
    body = loop.attrs["body"]
    varying = _varying(body, n_carry + n_seq)          # values that read a carry or sequence
    for partner in partners:
        known = _correspondence(loop, partner)
        frontier = _trimmed(body, _frontier(body, known, varying), varying)
        if not frontier or any(v.rank < loop.attrs["axis"] for v in frontier):
            continue
        if sum(_step_bytes(v.type) for v in frontier) <= _freed_bytes(loop, frontier):
            return partner, [(v, known[v.id]) for v in frontier]
    return None


def _with_ys(rebuilder: Rebuilder, node: Node, values: list[Value]) -> list[Value]:
    """Emit `node` (a scan) yielding `values` of its body as stacked ys (new ones unless it
    yields them already); its old outputs are mapped, and the ys returned in order."""
    body, n_carry = node.attrs["body"], node.attrs["n_carry"]
    n_ys = len(body.outputs) - n_carry
    outputs = dict(body.outputs)
    old_ys = [v.id for v in list(body.outputs.values())[n_carry:]]
    position = {}                                   # value id -> output index of its y
    for value in values:
        if value.id in old_ys:
            position[value.id] = n_carry + old_ys.index(value.id)
            continue
        name = f"residual{len(outputs) - n_carry - n_ys}"
        while name in outputs:
            name += "_"
        position[value.id] = len(outputs)
        outputs[name] = value
    new_body = Graph(name=body.name, inputs=list(body.inputs), nodes=list(body.nodes),
                     outputs=outputs, input_spans=dict(body.input_spans))
    with rebuilder.like(node) as builder:
        results = as_values(builder.op("scan", *rebuilder.inputs_of(node),
                                       **dict(node.attrs, body=new_body)))
    extra = len(outputs) - len(body.outputs)
    for k, old in enumerate(node.outputs):          # stored carries move after the new ys
        rebuilder.replace(old, results[k if k < n_carry + n_ys else k + extra])
    return [results[position[v.id]] for v in values]


def _reading(rebuilder: Rebuilder, node: Node, frontier: list[Value],
             stacked: list[Value]) -> None:
    """Emit `node` (G) with each frontier value read from a new sequence input instead."""
    body, n_carry, n_seq = node.attrs["body"], node.attrs["n_carry"], node.attrs["n_seq"]
    slices = [Value(v.type, kind="input", name=f"residual{k}") for k, v in enumerate(frontier)]
    inner = Rebuilder(body)
    inner.graph.inputs[n_carry + n_seq:n_carry + n_seq] = slices
    replaced = {v.id: s for v, s in zip(frontier, slices)}
    for body_node in body.nodes:
        if all(v.id in replaced for v in body_node.outputs):
            for v in body_node.outputs:
                inner.replace(v, replaced[v.id])
        else:
            inner.copy(body_node)
    inputs = list(rebuilder.inputs_of(node))
    inputs[n_carry + n_seq:n_carry + n_seq] = stacked
    with rebuilder.like(node) as builder:
        results = as_values(builder.op("scan", *inputs, **dict(
            node.attrs, body=inner.finish(), n_seq=n_seq + len(frontier))))
    for old, new in zip(node.outputs, results):
        rebuilder.replace(old, new)


def reuse_loop_values(graph: Graph) -> Graph:
    """A new graph in which a loop reads, as sequences, the values an earlier loop's body
    computed that it would otherwise compute again (see the module docstring)."""
    plans = {node.id: plan for node in graph.nodes if (plan := _plan(node)) is not None}
    # a loop that another loop reads from is left as it is (one rewrite per node)
    plans = {g: plan for g, plan in plans.items()
             if all(other[0].id != g for other in plans.values())}
    if not plans:
        return graph
    wanted: dict[int, list[Value]] = {}          # F id -> F body values to yield, in order
    for partner, pairs in plans.values():
        values = wanted.setdefault(partner.id, [])
        for _, twin in pairs:
            if all(twin is not v for v in values):
                values.append(twin)
    rebuilder = Rebuilder(graph)
    yielded: dict[int, dict[int, Value]] = {}    # F id -> F body value id -> its stacked y
    for node in graph.nodes:
        if node.id in wanted:
            stacked = _with_ys(rebuilder, node, wanted[node.id])
            yielded[node.id] = {v.id: s for v, s in zip(wanted[node.id], stacked)}
        elif node.id in plans:
            partner, pairs = plans[node.id]
            _reading(rebuilder, node, [g for g, _ in pairs],
                     [yielded[partner.id][twin.id] for _, twin in pairs])
        else:
            rebuilder.copy(node)
    return rebuilder.finish()


__all__ = ["reuse_loop_values"]
