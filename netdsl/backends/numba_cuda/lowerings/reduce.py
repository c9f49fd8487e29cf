"""CUDA lowerings of the reductions (netdsl/ops/reduce.py) that are not fused into a kernel:
sum, mean, max, min, logsumexp, argmax and numel.

One block per output cell (blocks grid-stride over the cells): the block's threads read the
cell's reduced elements in a strided loop, each keeping a partial result, and then combine the
partials in a shared-memory tree (cuda.syncthreads between levels).  The block size is
device.reduce_threads(), read once at import as REDUCE_THREADS (a shared array's size must be a
compile-time constant; it is 32 in the simulator, 256 on a GPU).  The reduced axes need not be
the last ones: a position is decomposed into the kept and the reduced axes' indices (C order)
and their strides, so nothing is transposed or copied.

Float sums accumulate in float64, integer (and boolean) sums in int64; max, min and argmax keep
the position of each partial's best element, compare the values read back from the input (so
one kernel serves every dtype), prefer NaN as NumPy does, and break ties by the lower position,
so argmax gives the first maximum like np.argmax.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, int64

from ....ops.reduce import reduced_axes
from ..device import reduce_threads
from ..support import reduce_grid
from . import lowering

REDUCE_THREADS = reduce_threads()


@cuda.jit(device=True)
def _offset(index, sizes, strides):
    """The offset of the C-order position `index` in a box of extents `sizes` and `strides`."""
    offset = 0
    for d in range(len(sizes) - 1, -1, -1):
        offset += (index % sizes[d]) * strides[d]
        index //= sizes[d]
    return offset


@cuda.jit(device=True)
def beats(a, b, maximum):
    """Whether value a is a better extremum than b: NaN beats any number, as in NumPy."""
    if a != a:
        return b == b
    if b != b:
        return False
    return a > b if maximum else a < b


@cuda.jit(device=True)
def tree_sum(partial, t):
    """partial[0] = the sum of partial[0:REDUCE_THREADS] (a shared array holding each thread's
    partial); every thread of the block calls it, t being its index."""
    cuda.syncthreads()
    step = REDUCE_THREADS // 2
    while step > 0:
        if t < step:
            partial[t] += partial[t + step]
        cuda.syncthreads()
        step //= 2


@cuda.jit(device=True)
def tree_max(partial, t):
    """partial[0] = the maximum of partial[0:REDUCE_THREADS], NaN if any is NaN (tree_sum's
    protocol)."""
    cuda.syncthreads()
    step = REDUCE_THREADS // 2
    while step > 0:
        if t < step and beats(partial[t + step], partial[t], True):
            partial[t] = partial[t + step]
        cuda.syncthreads()
        step //= 2


def _sum_kernel(accumulator):
    """The sum/mean kernel accumulating in `accumulator` (np.float64 or np.int64): the shared
    array's dtype must be a constant of the kernel, so each accumulator is a kernel of its own."""

    @cuda.jit
    def kernel(x, out, kept_sizes, kept_strides, sizes, strides, count, divide):
        partial = cuda.shared.array(REDUCE_THREADS, accumulator)
        t = cuda.threadIdx.x
        cell = cuda.blockIdx.x
        while cell < out.size:
            base = _offset(cell, kept_sizes, kept_strides)
            total = accumulator(0)
            j = t
            while j < count:
                total += x[base + _offset(j, sizes, strides)]
                j += REDUCE_THREADS
            partial[t] = total
            tree_sum(partial, t)
            if t == 0:
                if divide:
                    out[cell] = partial[0] / count
                else:
                    out[cell] = partial[0]
            cuda.syncthreads()
            cell += cuda.gridDim.x

    return kernel


_SUM_FLOAT = _sum_kernel(np.float64)
_SUM_INTEGER = _sum_kernel(np.int64)


@cuda.jit(cache=True)
def _extremum_kernel(x, out, kept_sizes, kept_strides, sizes, strides, count, maximum, position):
    """out[cell] = the max (maximum) or min of the cell's elements, or with `position` the
    index of the first one along the reduced extent."""
    best = cuda.shared.array(REDUCE_THREADS, int64)        # a position, or -1 for none
    t = cuda.threadIdx.x
    cell = cuda.blockIdx.x
    while cell < out.size:
        base = _offset(cell, kept_sizes, kept_strides)
        mine = -1
        j = t
        while j < count:                                     # ascending, so ties keep the first
            if mine < 0 or beats(x[base + _offset(j, sizes, strides)],
                                  x[base + _offset(mine, sizes, strides)], maximum):
                mine = j
            j += REDUCE_THREADS
        best[t] = mine
        cuda.syncthreads()
        step = REDUCE_THREADS // 2
        while step > 0:
            if t < step:
                a, b = best[t], best[t + step]
                if b >= 0 and a >= 0:
                    va = x[base + _offset(a, sizes, strides)]
                    vb = x[base + _offset(b, sizes, strides)]
                    tie = not beats(va, vb, maximum) and not beats(vb, va, maximum)
                    if beats(vb, va, maximum) or (tie and b < a):
                        best[t] = b
                elif b >= 0:
                    best[t] = b
            cuda.syncthreads()
            step //= 2
        if t == 0:
            if position:
                out[cell] = best[0]
            else:
                out[cell] = x[base + _offset(best[0], sizes, strides)]
        cuda.syncthreads()
        cell += cuda.gridDim.x


@cuda.jit(cache=True)
def _logsumexp_kernel(x, out, kept_sizes, kept_strides, sizes, strides, count):
    """out[cell] = max + log(sum(exp(x - max))) over the cell's elements, in float64; an
    infinite max is the result itself, a NaN gives NaN."""
    partial = cuda.shared.array(REDUCE_THREADS, float64)
    t = cuda.threadIdx.x
    cell = cuda.blockIdx.x
    while cell < out.size:
        base = _offset(cell, kept_sizes, kept_strides)
        top = -math.inf
        j = t
        while j < count:
            value = float64(x[base + _offset(j, sizes, strides)])
            if beats(value, top, True):
                top = value
            j += REDUCE_THREADS
        partial[t] = top
        tree_max(partial, t)
        top = partial[0]
        cuda.syncthreads()                  # everyone has read the max before partial is reused
        shift = top if math.isfinite(top) else 0.0
        total = 0.0
        j = t
        while j < count:
            total += math.exp(float64(x[base + _offset(j, sizes, strides)]) - shift)
            j += REDUCE_THREADS
        partial[t] = total
        tree_sum(partial, t)
        if t == 0:
            if math.isfinite(top):
                out[cell] = top + math.log(partial[0])
            else:
                out[cell] = top
        cuda.syncthreads()
        cell += cuda.gridDim.x


def _boxes(shape: tuple, axes: tuple) -> tuple[tuple, tuple, tuple, tuple, int]:
    """(kept sizes, kept strides, reduced sizes, reduced strides, reduced count) of a C-order
    array of `shape`; each tuple starts with a unit extent so that none is empty."""
    strides = [math.prod(shape[a + 1:]) for a in range(len(shape))]
    kept = [a for a in range(len(shape)) if a not in axes]
    return ((1, *(shape[a] for a in kept)), (0, *(strides[a] for a in kept)),
            (1, *(shape[a] for a in axes)), (0, *(strides[a] for a in axes)),
            math.prod(shape[a] for a in axes))


def _launch(kernel, x, out, axes, *extra) -> None:
    if out.size == 0:
        return
    boxes = _boxes(tuple(x.shape), axes)
    blocks, threads = reduce_grid(out.size, REDUCE_THREADS)
    kernel[blocks, threads](x.reshape(x.size), out.reshape(out.size), *boxes, *extra)


def reduce_sum(x, out, axes: tuple, divide: bool) -> None:
    """out = the sum (or with `divide` the mean) of x over `axes` (normalised, sorted)."""
    kernel = _SUM_FLOAT if np.dtype(out.dtype).kind == "f" else _SUM_INTEGER
    _launch(kernel, x, out, axes, divide)


def reduce_extremum(x, out, axes: tuple, maximum: bool, position: bool) -> None:
    """out = the max (or min) of x over `axes`, or with `position` its first index (argmax)."""
    _launch(_extremum_kernel, x, out, axes, maximum, position)


def reduce_logsumexp(x, out, axes: tuple) -> None:
    """out = log(sum(exp(x))) over `axes`, shifted by the maximum."""
    _launch(_logsumexp_kernel, x, out, axes)


def numel(x, out, axes: tuple) -> None:
    """out[()] = the number of elements of x in `axes` (x's run-time shape)."""
    out.copy_to_device(np.asarray(math.prod(x.shape[a] for a in axes), dtype=out.dtype))


def _axes(node, key: str = "axes") -> tuple:
    return reduced_axes(node.inputs[0].type, node.attrs.get(key))


@lowering("sum")
def lower_sum(ctx, node, ins, outs):
    return [f"{ctx.use(reduce_sum)}({ins[0]}, {outs[0]}, {_axes(node)!r}, False)"]


@lowering("mean")
def lower_mean(ctx, node, ins, outs):
    return [f"{ctx.use(reduce_sum)}({ins[0]}, {outs[0]}, {_axes(node)!r}, True)"]


@lowering("max")
def lower_max(ctx, node, ins, outs):
    return [f"{ctx.use(reduce_extremum)}({ins[0]}, {outs[0]}, {_axes(node)!r}, True, False)"]


@lowering("min")
def lower_min(ctx, node, ins, outs):
    return [f"{ctx.use(reduce_extremum)}({ins[0]}, {outs[0]}, {_axes(node)!r}, False, False)"]


@lowering("argmax")
def lower_argmax(ctx, node, ins, outs):
    axes = reduced_axes(node.inputs[0].type, (node.attrs.get("axis", -1),))
    return [f"{ctx.use(reduce_extremum)}({ins[0]}, {outs[0]}, {axes!r}, True, True)"]


@lowering("logsumexp")
def lower_logsumexp(ctx, node, ins, outs):
    return [f"{ctx.use(reduce_logsumexp)}({ins[0]}, {outs[0]}, {_axes(node)!r})"]


@lowering("numel")
def lower_numel(ctx, node, ins, outs):
    return [f"{ctx.use(numel)}({ins[0]}, {outs[0]}, {_axes(node)!r})"]
