"""Joining and cutting along axes: concat, split (concat's gradient) and pad (constant padding).

Same conventions as shape.py: split takes its sizes from an attribute or from `like` inputs, so
the gradient of a concat along a symbolic axis needs no symbolic dims in attributes (along a
static axis it takes the attribute, and reads no forward value).
"""
from __future__ import annotations

import numpy as np

from ..ir.types import DType, ShapeError, TensorType, dim_add, normalize_axis
from .registry import op
from .shape import concrete, format_shape, provably_different


def _axis_sizes(name: str, types, axis: int):
    """Checks that `types` agree on every axis but `axis`; returns their sizes along it."""
    first = types[0]
    for t in types[1:]:
        if t.rank != first.rank or any(d != e for i, (d, e) in
                                       enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ShapeError(f"{name} along axis {axis}: {first} and {t} differ on another axis")
    return [t.shape[axis] for t in types]


@op("concat")
class Concat:
    """Join tensors of one dtype along `axis` (default 0); all other axes must agree."""
    traits = {"shape", "pure"}

    def infer(*types, axis: int = 0):
        if not types:
            raise ShapeError("concat needs at least one tensor")
        if any(t.dtype != types[0].dtype for t in types):
            raise ShapeError(f"concat of different element types: "
                             f"{', '.join(str(t) for t in types)}", hint="cast first")
        axis = normalize_axis(axis, types[0].rank)
        total = 0
        for size in _axis_sizes("concat", types, axis):
            total = dim_add(total, size)
        shape = list(types[0].shape)
        shape[axis] = total
        return TensorType(types[0].dtype, tuple(shape))

    def reference(*arrays, axis: int = 0):
        return np.concatenate(arrays, axis=axis)

    def vjp(b, grads, inputs, outputs, axis: int = 0):
        sizes = [value.shape[normalize_axis(axis, value.rank)] for value in inputs]
        if all(isinstance(size, int) for size in sizes):
            # Static sizes go in the attribute: with the inputs as `like` operands the gradient
            # read the forward values for nothing but their shapes, which kept them alive until
            # the backward pass and made a loop's gradient store them step by step.
            pieces = b.op("split", grads[0], axis=axis, sizes=tuple(sizes))
        else:
            pieces = b.op("split", grads[0], *inputs, axis=axis)
        return tuple(pieces)

    def tiles(*types, axis: int = 0):
        """Each input's start in the output per axis (None past a symbolic size)."""
        axis = normalize_axis(axis, types[0].rank)
        starts, offset = [], 0
        for t in types:
            if not isinstance(offset, int):
                return None
            starts.append(tuple(offset if k == axis else 0 for k in range(t.rank)))
            offset = dim_add(offset, t.shape[axis])
        return starts

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (2, 3)), TensorType(f32, (2, 5))), {"axis": 1}),
                ((TensorType(f32, (1, 3)), TensorType(f32, (2, 3)), TensorType(f32, (3, 3))),
                 {"axis": -2})]


@op("split")
class Split:
    """Cut x along `axis` into pieces: sizes from attr `sizes`, or from the `like` inputs' axes."""
    traits = {"shape", "pure"}

    def infer(a, *likes, axis: int = 0, sizes=None):
        axis = normalize_axis(axis, a.rank)
        if (sizes is None) == (not likes):
            raise ShapeError("split takes its sizes from either `sizes` or like inputs")
        if likes:
            sizes = _axis_sizes("split", (a,) + likes, axis)[1:]
        total = 0
        for size in sizes:
            total = dim_add(total, size)
        if provably_different(total, a.shape[axis]):
            raise ShapeError(f"cannot split axis {axis} of {a} into pieces of "
                             f"{format_shape(sizes)}: they add up to {total}")
        return tuple(a.with_shape(a.shape[:axis] + (s,) + a.shape[axis + 1:]) for s in sizes)

    def reference(a, *likes, axis: int = 0, sizes=None):
        sizes = [like.shape[axis] for like in likes] if likes else concrete(sizes, "split")
        return tuple(np.split(a, np.cumsum(sizes)[:-1], axis=axis))

    def vjp(b, grads, inputs, outputs, axis: int = 0, sizes=None):
        pieces = [g if g is not None else b.op("full", out, value=0) for g, out in
                  zip(grads, outputs)]
        return (b.op("concat", *pieces, axis=axis),) + (None,) * (len(inputs) - 1)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (2, 7)),), {"axis": 1, "sizes": (3, 4)}),
                ((TensorType(f32, (6, 2)), TensorType(f32, (1, 2)), TensorType(f32, (5, 2))),
                 {"axis": 0})]


@op("pad")
class Pad:
    """Pad with a constant: attr pads, one (before, after) pair of ints >= 0 per axis; value."""
    traits = {"shape", "pure"}

    def infer(a, pads, value=0.0):
        if len(pads) != a.rank or any(len(p) != 2 or min(p) < 0 for p in pads):
            raise ShapeError(f"pad of {a} needs one (before, after) pair of non-negative ints "
                             f"per axis, got {pads}")
        return TensorType(a.dtype, tuple(dim_add(d, before + after)
                                         for d, (before, after) in zip(a.shape, pads)))

    def reference(a, pads, value=0.0):
        return np.pad(a, pads, constant_values=value)

    def vjp(b, grads, inputs, outputs, pads, value=0.0):
        return (b.op("slice", grads[0], starts=tuple(before for before, _ in pads),
                     stops=tuple(-after if after else None for _, after in pads)),)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (2, 3)),), {"pads": ((1, 0), (2, 1)), "value": 0.0}),
                ((TensorType(f32, (2, 2, 2)),), {"pads": ((0, 0), (1, 1), (0, 2)), "value": -1.5})]
