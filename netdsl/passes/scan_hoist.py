"""Products of a step's sequence slice with a loop constant leave the loop as one product, and
the gradient loop's recomputed products read the forward loop's own.

In a `scan` body, `x_t @ W` where `x_t` is a slice of one of the scan's sequences and `W` one
of its constants does not depend on the loop's carries: every step's product can be made
before the loop, as one product of the whole stacked sequence with `W`, and the body reads its
slice of that like any other sequence.  T small products ([32, 128] @ [128, 512], 32 times)
become one large one ([1024, 128] @ [128, 512]), which BLAS runs several times faster per
multiply-add and with one hand-over to its threads instead of T.

Where it matters: the gradient of a recurrent layer (passes/scan_grad.py) recomputes each step
from the stored carry entering it, `h_{t-1} @ W_hhᵀ` included.  In the gradient's loop the
stored carries are sequences, so that recomputed product leaves the loop here (measured on the
LSTM and GRU benchmarks, T 32, B 32, H 128, one thread, with and without this pass interleaved
in one process: 6% less time per training step for each).  An RNN written with
the input product inside its body (`x_t @ transpose(w_ih)`) gets the input projection PyTorch
makes outside the loop.

When: `matmul(a, w)` in a body with `a` a sequence input of the body, `w` a constant input of
rank 2 (so it broadcasts over every leading axis) and `a` not transposed, and the time axis not
the stacked sequence's last one.  Then, per step t, `(stacked @ w)` sliced at t is `a_t @ w`
row for row, with the same transpose flag on `w`.  The body gets the product's slice as a new
sequence input after the others; the constant, if nothing else reads it, is dropped by DCE's
pruning of scans (passes/dce.py via the op's `prune` rule).  It runs after autodiff, so no
gradient flows through the rewritten loop.

Then `reuse_loop_products`: what hoisting made of the gradient's recomputation, a product of
the forward loop's stored carries with one of its constants, is a product the forward body
already makes each step (`h_{t-1} @ W_hhᵀ` from the carry entering it).  The forward loop
yields those as an extra stacked y and the product outside reads them: PyTorch's LSTM keeps
its gates the same way instead of recomputing them.  Measured with both steps against neither,
interleaved in one process, one thread: the LSTM and GRU benchmark steps 1.17x faster each
(LSTM 11.1 -> 9.5 ms, GRU 8.8 -> 7.5 ms).
"""
from __future__ import annotations

from collections.abc import Callable

from ..ir.graph import Graph, GraphBuilder, Node, Value
from .cse import eliminate_common_subexpressions
from .rewrite import Rebuilder, as_values, graph_pass, rebuild_scans
from .scan_residuals import reuse_loop_values
from .scan_transpose import transpose_loop_constants


def _hoistable(node: Node, sequences: dict[int, int], constants: dict[int, int],
               axis: int) -> tuple[int, int] | None:
    """(sequence index, constant index) when `node` is a product that can leave the loop."""
    if node.op.name != "matmul" or node.attrs.get("transpose_a"):
        return None
    a, w = node.inputs
    if a.id not in sequences or w.id not in constants or w.rank != 2 or a.rank < 2:
        return None
    if axis > a.rank - 1:                       # the time axis would be the stacked last one
        return None
    return sequences[a.id], constants[w.id]


def _hoist(builder: GraphBuilder, node: Node, inputs: tuple[Value, ...],
           attrs: dict) -> tuple[Value, ...] | None:
    """The scan `node` (inputs and body already rewritten) with its hoistable products made
    before it; None when it has none."""
    body: Graph = attrs["body"]
    n_carry, n_seq, axis = attrs["n_carry"], attrs["n_seq"], attrs["axis"]
    slices = body.inputs[n_carry:n_carry + n_seq]
    consts = body.inputs[n_carry + n_seq:]
    sequences = {v.id: j for j, v in enumerate(slices)}
    constants = {v.id: m for m, v in enumerate(consts)}
    found = [(n, where) for n in body.nodes
             if (where := _hoistable(n, sequences, constants, axis)) is not None]
    if not found:
        return None
    outer_sequences = list(inputs[n_carry:n_carry + n_seq])
    outer_constants = list(inputs[n_carry + n_seq:])
    rebuilder = Rebuilder(body)
    steps = {}                                  # product node id -> its step's new input
    for product, (j, m) in found:
        stacked = builder.op("matmul", outer_sequences[j], outer_constants[m],
                             transpose_a=False,
                             transpose_b=bool(product.attrs.get("transpose_b")))
        outer_sequences.append(stacked)
        steps[product.id] = Value(product.outputs[0].type, kind="input",
                                  name=f"hoisted{len(steps)}")
    # the new slices go after the body's other sequence inputs, before its constants
    rebuilder.graph.inputs[n_carry + n_seq:n_carry + n_seq] = list(steps.values())
    for body_node in body.nodes:
        if body_node.id in steps:
            rebuilder.replace(body_node.outputs[0], steps[body_node.id])
        else:
            rebuilder.copy(body_node)
    new_body = rebuilder.finish()
    new_attrs = dict(attrs, body=new_body, n_seq=n_seq + len(steps))
    carries = list(inputs[:n_carry])
    return as_values(builder.op("scan", *carries, *outer_sequences, *outer_constants,
                                **new_attrs))


@graph_pass
def hoist_scan_products(graph: Graph, bodies: Callable[[Graph], Graph]) -> Graph:
    """A new graph in which no scan body multiplies a sequence slice by a loop constant."""
    return rebuild_scans(graph, bodies, _hoist)


def _stacked_type(step_type, axis: int, steps):
    return step_type.with_shape(step_type.shape[:axis] + (steps,) + step_type.shape[axis:])


def _reusable(product: Node):
    """(loop, its body's matching product) when `product` multiplies a carry the loop stored
    (`stack_carries`) by one of the loop's constants, and the body makes that product of the
    carry each step; else None."""
    if product.op.name != "matmul" or product.attrs.get("transpose_a"):
        return None
    stacked, weight = product.inputs
    loop = stacked.producer
    if loop is None or loop.op.name != "scan" or not loop.attrs.get("stack_carries"):
        return None
    body, n_carry, n_seq = loop.attrs["body"], loop.attrs["n_carry"], loop.attrs["n_seq"]
    carry = stacked.index - n_carry - (len(body.outputs) - n_carry)
    constants = [v.id for v in loop.inputs[n_carry + n_seq:]]
    if not 0 <= carry < n_carry or weight.id not in constants:
        return None
    carry_in = body.inputs[carry]
    weight_in = body.inputs[n_carry + n_seq + constants.index(weight.id)]
    for node in body.nodes:
        if node.op.name == "matmul" and node.inputs[0] is carry_in and \
                node.inputs[1] is weight_in and not node.attrs.get("transpose_a") and \
                bool(node.attrs.get("transpose_b")) == bool(product.attrs.get("transpose_b")):
            axis = loop.attrs["axis"]
            if _stacked_type(node.outputs[0].type, axis, stacked.shape[axis]) == \
                    product.outputs[0].type:
                return loop, node
    return None


def reuse_loop_products(graph: Graph) -> Graph:
    """A new graph in which a product of a loop's stored carries with one of its constants
    (what hoisting leaves of a gradient loop's recomputed step, `h_{t-1} @ W_hhᵀ`) reads the
    products the forward loop made anyway, stacked as an extra y of that loop.

    The forward body computes `h_{t-1} @ W_hhᵀ` every step from the carry entering it; the
    gradient recomputes it from the stored carries.  Yielding it from the forward loop costs a
    store per step (for the LSTM benchmark [32, T, 512] floats, 2 MB) instead of a product of
    [B*T, H] @ [H, 4H] (67 M multiply-adds there).  The values are those of the forward pass,
    so the gradient is the same up to the rounding of one product against another."""
    found: dict[int, list[tuple[Node, Node]]] = {}
    for node in graph.nodes:
        match = _reusable(node)
        if match is not None:
            found.setdefault(match[0].id, []).append((node, match[1]))
    if not found:
        return graph
    rebuilder = Rebuilder(graph)
    replacements: dict[int, Value] = {}
    for node in graph.nodes:
        if node.id in replacements:
            rebuilder.replace(node.outputs[0], replacements[node.id])
            continue
        if node.id not in found:
            rebuilder.copy(node)
            continue
        body, n_carry = node.attrs["body"], node.attrs["n_carry"]
        n_ys = len(body.outputs) - n_carry
        made: dict[int, int] = {}              # body product id -> its new y's position
        outputs = dict(body.outputs)
        for product, step_product in found[node.id]:
            if step_product.id not in made:
                made[step_product.id] = n_ys + len(made)
                name = f"reused{len(made)}"
                while name in outputs:              # a body output of that name already
                    name += "_"
                outputs[name] = step_product.outputs[0]
        new_body = Graph(name=body.name, inputs=list(body.inputs), nodes=list(body.nodes),
                         outputs=outputs, input_spans=dict(body.input_spans))
        with rebuilder.like(node) as builder:
            results = as_values(builder.op("scan", *rebuilder.inputs_of(node),
                                           **dict(node.attrs, body=new_body)))
        extra = len(made)
        for k, old in enumerate(node.outputs):          # stored carries move after the new ys
            rebuilder.replace(old, results[k if k < n_carry + n_ys else k + extra])
        for product, step_product in found[node.id]:
            replacements[product.id] = results[n_carry + made[step_product.id]]
    return rebuilder.finish()


def hoist_and_reuse(graph: Graph) -> Graph:
    """The pipeline's scan_hoist stage: hoist_scan_products, reuse_loop_products, then
    reuse_loop_values (passes/scan_residuals.py), after CSE has made the products hoisted out
    of both loops one (the correspondence starts from values the loops share), and last
    transpose_loop_constants (passes/scan_transpose.py: it changes the bodies' products, which
    the two reuses match).  A graph without loops is returned as it is (no copy, no second
    CSE)."""
    if not any(node.op.name == "scan" for node in graph.nodes):
        return graph
    reused = reuse_loop_products(hoist_scan_products(graph))
    return transpose_loop_constants(reuse_loop_values(eliminate_common_subexpressions(reused)))


__all__ = ["hoist_and_reuse", "hoist_scan_products", "reuse_loop_products"]
