"""CUDA lowerings of cumsum and cumprod (netdsl/ops/cumulative.py).

The input is viewed as (outer, n, inner) around the axis, and one thread (in a grid-stride loop)
scans one (outer, inner) line in order along n, forward or from the end with reverse.  The
running value is kept in the output's dtype, as NumPy's accumulate (the reference rule) and the
cpu target do: the result then matches the reference exactly (a float64 running sum would
round differently from the f32 reference on long axes, and would lose int64 sums above 2**53).
"""
from __future__ import annotations

from numba import cuda

from ....ir.types import normalize_axis
from ..device import launch
from . import lowering


@cuda.jit(cache=True)
def _scan_kernel(source, out, reverse, product):
    """out[o, :, m] = the running sum (or product) of source[o, :, m] along axis 1."""
    lines, length, inner = source.shape[0] * source.shape[2], source.shape[1], source.shape[2]
    line = cuda.grid(1)
    step = cuda.gridsize(1)
    while line < lines:
        o = line // inner
        m = line % inner
        k = length - 1 if reverse else 0
        running = source[o, k, m]
        out[o, k, m] = running
        for j in range(1, length):
            k = length - 1 - j if reverse else j
            if product:
                running = running * source[o, k, m]
            else:
                running = running + source[o, k, m]
            out[o, k, m] = running
        line += step


def _scan(x, out, axis, reverse, product):
    shape = x.shape
    outer, inner = 1, 1
    for extent in shape[:axis]:
        outer *= extent
    for extent in shape[axis + 1:]:
        inner *= extent
    if out.size == 0:
        return
    blocks, threads = launch(outer * inner)
    view = (outer, shape[axis], inner)
    _scan_kernel[blocks, threads](x.reshape(view), out.reshape(view), reverse, product)


def cumsum(x, out, axis, reverse):
    """out = the running sum of x along `axis` (a non-negative axis), from the end if reverse."""
    _scan(x, out, axis, reverse, False)


def cumprod(x, out, axis, reverse):
    """out = the running product of x along `axis`, from the end if reverse."""
    _scan(x, out, axis, reverse, True)


def _args(node) -> str:
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[0].rank)
    return f"{axis}, {bool(node.attrs.get('reverse', False))}"


@lowering("cumsum")
def lower_cumsum(ctx, node, ins, outs):
    return [f"{ctx.use(cumsum)}({ins[0]}, {outs[0]}, {_args(node)})"]


@lowering("cumprod")
def lower_cumprod(ctx, node, ins, outs):
    return [f"{ctx.use(cumprod)}({ins[0]}, {outs[0]}, {_args(node)})"]
