"""Forward FLOPs of primitive nodes, per example, for the `netdsl check` summary.

An op may declare its own count with a `flops(node)` rule; otherwise matmul and conv count
two FLOPs per multiply-add, elementwise ops one per output element, reductions one per input
element, and data movement nothing.  Symbolic dimensions are taken as 1 (per example).
"""
from __future__ import annotations

from ..ir.types import Sym, evaluate_dim


class _Ones(dict):
    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key) -> int:
        return 1


def per_example(dim) -> int:
    """A dimension with every symbol set to 1 (at least 1: `T - 2` is not -1 elements)."""
    return max(evaluate_dim(dim, _Ones()), 1) if isinstance(dim, Sym) else int(dim)


def _elements(type_) -> int:
    size = 1
    for dim in type_.shape:
        size *= dim if isinstance(dim, int) else per_example(dim)
    return size


def node_cost(node) -> int:
    """Forward FLOPs of one node with symbolic dims set to 1."""
    rule = getattr(node.op, "flops", None)
    if rule is not None:
        return int(rule(node))
    name = node.op.name
    if name == "matmul":
        a = node.inputs[0].type
        inner = per_example(a.shape[-2] if node.attrs.get("transpose_a") else a.shape[-1])
        return 2 * inner * _elements(node.outputs[0].type)
    if name == "conv2d":
        weight = node.inputs[1].type
        per_output = 1
        for dim in weight.shape[1:]:
            per_output *= per_example(dim)
        return 2 * per_output * _elements(node.outputs[0].type)
    if name == "scan":
        body = node.attrs["body"]
        steps = per_example(node.outputs[-1].type.shape[node.attrs["axis"]]) \
            if len(node.outputs) > node.attrs["n_carry"] else 1
        return steps * nodes_cost(body.nodes)
    if node.op.is_elementwise:
        return _elements(node.outputs[0].type)
    if "reduction" in node.op.traits:
        return _elements(node.inputs[0].type)
    return 0


def nodes_cost(nodes) -> int:
    return sum(node_cost(node) for node in nodes)
