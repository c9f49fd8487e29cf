"""CUDA lowerings of data movement: shape ops (netdsl/ops/shape.py), concat/split/pad
(ops/concat.py) and slice/slice_grad (ops/indexing.py).

All of them are one kernel, `strided_copy`: for every index of a shape, copy the source element
at (offset + index . source strides) to the target element at (offset + index . target
strides).  A transpose permutes the source strides, a broadcast gives broadcast axes stride 0,
a slice starts at its first element with its step in the strides, concat and split copy each
part at its offset along the axis, pad fills and copies the inside.  Strides are computed on
the host from the arrays' shapes at run time, so symbolic batch dims need nothing special.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from ....errors import Error
from ....ir.types import normalize_axis
from ....ops.indexing import slice_key
from ..device import launch
from . import lowering


@cuda.jit(cache=True)
def _strided_copy_kernel(target, target_offset, target_strides, source, source_offset,
                         source_strides, shape, total):
    g = cuda.grid(1)
    stride = cuda.gridsize(1)
    while g < total:
        rest = g
        t = target_offset
        s = source_offset
        for d in range(len(shape) - 1, -1, -1):
            index = rest % shape[d]
            rest //= shape[d]
            t += index * target_strides[d]
            s += index * source_strides[d]
        target[t] = source[s]
        g += stride


@cuda.jit(cache=True)
def _fill_kernel(target, value):
    g = cuda.grid(1)
    stride = cuda.gridsize(1)
    while g < target.size:
        target[g] = value
        g += stride


@cuda.jit(cache=True)
def _iota_kernel(target, along, after):
    g = cuda.grid(1)
    stride = cuda.gridsize(1)
    while g < target.size:
        target[g] = (g // after) % along
        g += stride


def contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for extent in reversed(tuple(shape)):
        strides.append(step)
        step *= int(extent)
    return tuple(reversed(strides))


def strided_copy(target, target_offset, target_strides, source, source_offset, source_strides,
                 shape) -> None:
    """Copy over `shape` between flat views of `target` and `source` (element strides)."""
    shape = tuple(int(d) for d in shape) or (1,)
    total = int(np.prod(shape, dtype=np.int64))
    if total == 0:
        return
    rank = len(shape)
    target_strides = tuple(int(s) for s in target_strides) or (0,) * rank
    source_strides = tuple(int(s) for s in source_strides) or (0,) * rank
    blocks, threads = launch(total)
    _strided_copy_kernel[blocks, threads](target.reshape(target.size), int(target_offset),
                                          target_strides, source.reshape(source.size),
                                          int(source_offset), source_strides, shape, total)


def copy_reshaped(source, target) -> None:
    """target = source, element for element in C order (reshape, cast, squeeze...)."""
    strided_copy(target, 0, (1,), source, 0, (1,), (target.size,))


def fill(target, value) -> None:
    if target.size:
        blocks, threads = launch(target.size)
        _fill_kernel[blocks, threads](target.reshape(target.size), value)


def set_constant(target, values: np.ndarray) -> None:
    """target = a constant known when the code was generated (copied from the host)."""
    target.reshape(target.size).copy_to_device(np.ascontiguousarray(values).reshape(-1))


def transpose(source, target, perm) -> None:
    strides = contiguous_strides(source.shape)
    strided_copy(target, 0, contiguous_strides(target.shape), source, 0,
                 tuple(strides[axis] for axis in perm), target.shape)


def broadcast(source, target) -> None:
    offset = len(target.shape) - len(source.shape)
    strides = contiguous_strides(source.shape)
    source_strides = [0] * offset + [0 if source.shape[k] == 1 and target.shape[offset + k] != 1
                                     else strides[k] for k in range(len(source.shape))]
    strided_copy(target, 0, contiguous_strides(target.shape), source, 0, source_strides,
                 target.shape)


def iota(target, axis: int) -> None:
    shape = target.shape
    after = int(np.prod(shape[axis + 1:], dtype=np.int64))
    if target.size:
        blocks, threads = launch(target.size)
        _iota_kernel[blocks, threads](target.reshape(target.size), shape[axis], max(after, 1))


def _slice_view(shape, starts, stops, steps, squeeze):
    """(offset, strides, extents) of x[key] as a strided view of a C-contiguous x."""
    key = slice_key(len(shape), starts, stops, steps, squeeze)
    strides = contiguous_strides(shape)
    offset, view_strides, extents = 0, [], []
    for axis, part in enumerate(key):
        if isinstance(part, slice):
            start, stop, step = part.indices(shape[axis])
            offset += start * strides[axis]
            view_strides.append(step * strides[axis])
            extents.append(len(range(start, stop, step)))
        else:
            offset += (part % shape[axis]) * strides[axis]
    return offset, view_strides, extents


def slice_copy(source, target, starts, stops, steps, squeeze) -> None:
    offset, strides, extents = _slice_view(source.shape, starts, stops, steps, squeeze)
    strided_copy(target, 0, contiguous_strides(extents), source, offset, strides, extents)


def slice_grad(gradient, target, starts, stops, steps, squeeze) -> None:
    fill(target, 0)
    offset, strides, extents = _slice_view(target.shape, starts, stops, steps, squeeze)
    strided_copy(target, offset, strides, gradient, 0, contiguous_strides(extents), extents)


def concat(target, axis: int, *parts) -> None:
    strides = contiguous_strides(target.shape)
    offset = 0
    for part in parts:
        strided_copy(target, offset * strides[axis], strides, part, 0,
                     contiguous_strides(part.shape), part.shape)
        offset += part.shape[axis]


def split(source, axis: int, *parts) -> None:
    strides = contiguous_strides(source.shape)
    offset = 0
    for part in parts:
        strided_copy(part, 0, contiguous_strides(part.shape), source, offset * strides[axis],
                     strides, part.shape)
        offset += part.shape[axis]


def pad(source, target, pads, value) -> None:
    fill(target, value)
    strides = contiguous_strides(target.shape)
    offset = sum(before * stride for (before, _), stride in zip(pads, strides))
    strided_copy(target, offset, strides, source, 0, contiguous_strides(source.shape),
                 source.shape)


def _concrete(values, what: str, node):
    values = tuple(values)
    if any(v is not None and not isinstance(v, (int, np.integer)) for v in values):
        raise Error(f"the cuda target cannot compile {what} with symbolic bounds yet",
                    node.span, hint="--target cpu compiles it")
    return tuple(None if v is None else int(v) for v in values)


def _number(value) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not np.isfinite(value):
        return "float('nan')" if np.isnan(value) else ("float('inf')" if value > 0
                                                       else "float('-inf')")
    return repr(value)


@lowering("constant")
def lower_constant(ctx, node, ins, outs):
    value = np.asarray(node.attrs["value"])
    items = ", ".join(_number(v) for v in value.ravel().tolist())
    return [f"{ctx.use(set_constant)}({outs[0]}, np.array([{items}], "
            f"dtype=np.{value.dtype.name}))"]


@lowering("full")
def lower_full(ctx, node, ins, outs):
    return [f"{ctx.use(fill)}({outs[0]}, {_number(node.attrs.get('value', 0.0))})"]


@lowering("reshape")
@lowering("expand_dims")
@lowering("squeeze")
@lowering("cast")
def lower_copy(ctx, node, ins, outs):
    return [f"{ctx.use(copy_reshaped)}({ins[0]}, {outs[0]})"]


@lowering("transpose")
def lower_transpose(ctx, node, ins, outs):
    rank = node.inputs[0].rank
    perm = node.attrs.get("perm")
    perm = tuple(reversed(range(rank))) if perm is None else tuple(p % rank for p in perm)
    return [f"{ctx.use(transpose)}({ins[0]}, {outs[0]}, {perm!r})"]


@lowering("broadcast_to")
def lower_broadcast_to(ctx, node, ins, outs):
    return [f"{ctx.use(broadcast)}({ins[0]}, {outs[0]})"]


@lowering("iota")
def lower_iota(ctx, node, ins, outs):
    return [f"{ctx.use(iota)}({outs[0]}, {int(node.attrs.get('axis', 0))})"]


@lowering("slice")
def lower_slice(ctx, node, ins, outs):
    attrs = _slice_attrs(node)
    return [f"{ctx.use(slice_copy)}({ins[0]}, {outs[0]}, {attrs})"]


@lowering("slice_grad")
def lower_slice_grad(ctx, node, ins, outs):
    attrs = _slice_attrs(node)
    return [f"{ctx.use(slice_grad)}({ins[0]}, {outs[0]}, {attrs})"]


def _slice_attrs(node) -> str:
    starts = _concrete(node.attrs.get("starts", ()), "slice", node)
    stops = _concrete(node.attrs.get("stops", ()), "slice", node)
    steps = _concrete(node.attrs.get("steps", ()), "slice", node)
    squeeze = tuple(int(a) for a in node.attrs.get("squeeze", ()))
    return f"{starts!r}, {stops!r}, {steps!r}, {squeeze!r}"


@lowering("concat")
def lower_concat(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[0].rank)
    return [f"{ctx.use(concat)}({outs[0]}, {axis}, {', '.join(ins)})"]


@lowering("split")
def lower_split(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[0].rank)
    return [f"{ctx.use(split)}({ins[0]}, {axis}, {', '.join(outs)})"]


@lowering("pad")
def lower_pad(ctx, node, ins, outs):
    pads = tuple((int(a), int(b)) for a, b in node.attrs["pads"])
    return [f"{ctx.use(pad)}({ins[0]}, {outs[0]}, {pads!r}, "
            f"{_number(node.attrs.get('value', 0.0))})"]
