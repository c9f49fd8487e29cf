"""What the fusion pass (fusion.py) asks of a node: its scalar template, whether it is a
window or a tiling, a reduction it can fuse and over which axes, an anchor's kind.  All of it
comes from the ops' rules and traits (ops/registry.py), never their names."""
from __future__ import annotations

from ..ir.graph import Node


def is_scalar_constant(node: Node) -> bool:
    """A constant small enough to inline as a literal (one element)."""
    return node.op.has("constant") and getattr(node.attrs.get("value"), "size", 2) == 1


def elementwise_template(node: Node) -> tuple[str, tuple[int, ...]] | None:
    """The scalar template of a node the loop IR can fuse, and which inputs it reads as data.

    Besides ops with a `kernel`, those with a `fusion_kernel` rule: broadcast_to (a
    broadcasting load), cast (the loop IR casts every result to its node's dtype anyway) and
    full (a literal); their `like` input is read for its shape only."""
    if len(node.outputs) != 1:
        return None
    if node.op.kernel is not None:
        return node.op.kernel, tuple(range(len(node.inputs)))
    return node.op.fusion_kernel


def is_elementwise(node: Node) -> bool:
    return elementwise_template(node) is not None


def window_offsets(node: Node) -> tuple[int, ...] | None:
    """The offsets at which a window node (see fusion.py's docstring) reads its input 0, or
    None when the node is not one (an op that fuses as elementwise never is)."""
    if node.op.window is None or len(node.outputs) != 1 or not node.inputs or \
            elementwise_template(node) is not None:
        return None
    offsets = node.op.window(node.inputs[0].type, **node.attrs)
    if offsets is None or len(offsets) != node.outputs[0].rank:
        return None
    return tuple(offsets)


def tile_offsets(node: Node) -> list[tuple[int, ...]] | None:
    """Where a tiling node (see fusion.py's docstring) stores each input in its output, or
    None when the node is not one (an op that fuses as elementwise never is)."""
    if node.op.tiles is None or len(node.outputs) != 1 or len(node.inputs) < 2 or \
            elementwise_template(node) is not None:
        return None
    return node.op.tiles(*(v.type for v in node.inputs), **node.attrs)


def is_identity_window(node: Node, offsets: tuple[int, ...]) -> bool:
    """A window that is its whole input (x[0:n] of n): a plain elementwise copy."""
    return not any(offsets) and tuple(node.inputs[0].shape) == tuple(node.outputs[0].shape)


def shifted_window(node: Node) -> bool:
    """Is the node a window read as a shifted load (a window, not its whole input)?"""
    offsets = window_offsets(node)
    return offsets is not None and not is_identity_window(node, offsets)


def is_fusable_reduction(node: Node) -> bool:
    """A reduction the loop IR knows how to emit (else it is an op group)."""
    return (node.op.reduction is not None and len(node.inputs) == 1
            and len(node.outputs) == 1 and set(node.attrs) <= {"axes", "keepdims"}
            and node.attrs.get("axes", None) != ())


def reduction_axes(node: Node) -> frozenset[int]:
    """Normalised `axes` attribute of a reduction node (None: all axes)."""
    rank = node.inputs[0].rank
    axes = node.attrs.get("axes", node.attrs.get("axis"))
    if axes is None:
        return frozenset(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    return frozenset(a % rank for a in axes)


def anchor_kind(node: Node) -> str | None:
    if node.op.has("matmul"):
        return "matmul"
    if node.op.has("conv"):
        return "conv"
    return None


__all__ = ["anchor_kind", "elementwise_template", "is_elementwise", "is_fusable_reduction",
           "is_identity_window", "is_scalar_constant", "reduction_axes", "shifted_window",
           "tile_offsets", "window_offsets"]
