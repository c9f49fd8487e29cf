"""A loop constant that a scan body multiplies by transposed is transposed once, before the loop.

A recurrent step's `h_{t-1} @ W_hhᵀ` (W_hh stored [4H, H], as PyTorch stores it) is a product
with its second operand transposed, made every step of the loop with the same constant.  How
fast a product runs can depend on that layout: netdsl's own float32 kernels
(numba_cpu/gemm_nt.py) make a @ bᵀ either from dot products, whose sums across vector lanes
cost more than the loop over a short K, or by transposing b first, once per call.  Here the
transposition is made once, before the loop, as a `transpose` node whose result the body takes
as one more constant, and the body's product reads it untransposed.  Measured on the LSTM
benchmark's step product ([32, 128] @ [512, 128]ᵀ, 32 times a step) on the AMD EPYC of
2026-12-06, one thread: 23 us a product, against 16 us for [32, 128] @ [128, 512]; the whole
training step, with and without this pass in alternating processes, 3.32-3.66 against
3.53-4.04 ms at one thread, 1.86-2.15 against 2.03-2.58 at two.  Where the BLAS runs both
layouts alike, the cost is one copy of the constant per loop ([512, 128]: ~10 us against a
step of milliseconds).

When: `matmul(x, w, transpose_b=True)` in a scan body, `w` one of the body's constant inputs
(not a sequence or a carry) of rank 2, and x anything (a carry, a value made from one: what
scan_hoist.py could not take out of the loop).  Each such constant is transposed once however
many products read it; the original constant stays an input where something else reads it
(DCE's pruning of scans drops it otherwise).  The products' values are the same, element for
element, up to the order the kernel sums them in.
"""
from __future__ import annotations

from collections.abc import Callable

from ..ir.graph import Graph, Node, Value
from .rewrite import Rebuilder, as_values, graph_pass, rebuild_scans


def _transposable(node: Node, constants: dict[int, int]) -> int | None:
    """The index among the body's constants of what `node` multiplies by transposed, or None."""
    if node.op.name != "matmul" or not node.attrs.get("transpose_b"):
        return None
    weight = node.inputs[1]
    return constants.get(weight.id) if weight.rank == 2 else None


def _transpose_constants(builder, node: Node, inputs: tuple[Value, ...],
                         attrs: dict) -> tuple[Value, ...] | None:
    """The scan `node` (inputs and body already rewritten) with the constants its body
    multiplies by transposed transposed before it; None when there are none."""
    body: Graph = attrs["body"]
    n_carry, n_seq = attrs["n_carry"], attrs["n_seq"]
    constants = {v.id: m for m, v in enumerate(body.inputs[n_carry + n_seq:])}
    found = [(n, m) for n in body.nodes if (m := _transposable(n, constants)) is not None]
    if not found:
        return None
    outer_constants = list(inputs[n_carry + n_seq:])
    transposed: dict[int, Value] = {}         # constant index -> its transposed body input
    for _, m in found:
        if m not in transposed:
            outer_constants.append(builder.op("transpose", outer_constants[m], perm=(1, 0)))
            transposed[m] = Value(outer_constants[-1].type, kind="input",
                                  name=f"transposed{len(transposed)}")
    rebuilder = Rebuilder(body)
    rebuilder.graph.inputs.extend(transposed.values())
    products = {n.id: m for n, m in found}
    for body_node in body.nodes:
        if body_node.id in products:
            left = rebuilder.inputs_of(body_node)[0]
            with rebuilder.like(body_node) as body_builder:
                made = body_builder.op("matmul", left, transposed[products[body_node.id]],
                                       **dict(body_node.attrs, transpose_b=False))
            rebuilder.replace(body_node.outputs[0], made)
        else:
            rebuilder.copy(body_node)
    new_attrs = dict(attrs, body=rebuilder.finish())
    return as_values(builder.op("scan", *inputs[:n_carry + n_seq], *outer_constants,
                                **new_attrs))


@graph_pass
def transpose_loop_constants(graph: Graph, bodies: Callable[[Graph], Graph]) -> Graph:
    """A new graph in which no scan body multiplies by one of its constants transposed."""
    return rebuild_scans(graph, bodies, _transpose_constants)


__all__ = ["transpose_loop_constants"]
