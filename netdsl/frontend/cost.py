"""FLOPs of primitive nodes, for the `netdsl check` summary, as expressions over the dims.

An op may declare its own count with a `flops(node)` rule; otherwise matmul and the
convolutions (forward and both gradients) count a multiply and an add as two FLOPs,
elementwise ops one per output element, reductions one per input element, and data movement
nothing.  A count is a dimension polynomial (`ir/types.py`): `256*B` for a Dense(128) on
f32[B, 64] is 2 * 64 * 128 * B, and the summary binds B (and `--dim T=12`) when it prints.
"""
from __future__ import annotations

from ..ir.types import DimLike, Sym, dim_add, dim_mul, dim_prod, evaluate_dim


class _Ones(dict):
    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key) -> int:
        return 1


def per_example(dim) -> int:
    """A dimension with every symbol set to 1 (at least 1: `T - 2` is not -1 elements)."""
    return max(evaluate_dim(dim, _Ones()), 1) if isinstance(dim, Sym) else int(dim)


def _elements(type_) -> DimLike:
    return dim_prod(type_.shape)


def _convolution_operands(node):
    """(the tensor over the convolution's output positions, the filter) of a conv2d or one of
    its gradients: each does one multiply-add per pair of an element of the first and a weight
    of one output channel's filter."""
    name = node.op.name
    if name == "conv2d":
        return node.outputs[0].type, node.inputs[1].type
    if name == "conv2d_grad_input":                   # inputs (g, w, x)
        return node.inputs[0].type, node.inputs[1].type
    if name == "conv2d_grad_weight":                  # inputs (x, g), result the filter's shape
        return node.inputs[1].type, node.outputs[0].type
    return None


def _scan_steps(node) -> DimLike:
    """How many times a scan runs its body: the length of its sequences' time axis (ops/control.py
    Scan), or its `length` when it scans none."""
    n_carry, n_seq, axis = node.attrs["n_carry"], node.attrs["n_seq"], node.attrs["axis"]
    if n_seq:
        return node.inputs[n_carry].type.shape[axis]
    return node.attrs.get("length") or 1


def node_cost(node) -> DimLike:
    """FLOPs of one node, symbolic in the graph's dims."""
    rule = getattr(node.op, "flops", None)
    if rule is not None:
        return rule(node)
    name = node.op.name
    if name == "matmul":
        a = node.inputs[0].type
        inner = a.shape[-2] if node.attrs.get("transpose_a") else a.shape[-1]
        return dim_mul(2, dim_mul(inner, _elements(node.outputs[0].type)))
    convolution = _convolution_operands(node)
    if convolution is not None:
        positions, weight = convolution
        return dim_mul(2, dim_mul(dim_prod(weight.shape[1:]), _elements(positions)))
    if name == "scan":
        body = node.attrs["body"]
        return dim_mul(_scan_steps(node), nodes_cost(body.nodes))
    if node.op.is_elementwise:
        return _elements(node.outputs[0].type)
    if "reduction" in node.op.traits:
        return _elements(node.inputs[0].type)
    return 0


def nodes_cost(nodes) -> DimLike:
    total: DimLike = 0
    for node in nodes:
        total = dim_add(total, node_cost(node))
    return total
