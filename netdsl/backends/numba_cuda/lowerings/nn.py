"""CUDA lowerings of log_softmax and softmax cross-entropy with its gradient (netdsl/ops/nn.py).

Per line (a row along the softmax axis): its maximum, the sum of exp(x - max) in float64, then
the line's results as (x - max) - log(sum), the reference's order.  Lines shorter than a block
(REDUCE_THREADS: 256 on a GPU, 32 in the simulator) get a thread each, in a grid-stride loop;
longer ones (a language model's vocabulary) a block each, its threads striding along the line
and combining their maxima and sums in reduce.py's shared-memory trees, so a row of 50,000
logits is read by 256 threads in step rather than by one.

Labels outside [0, classes) give NaN losses and NaN gradient rows, as on the cpu target (the
reference raises; the runtime checks the labels it is fed before a step).
"""
from __future__ import annotations

import math

from numba import cuda, float64

from ....ir.types import normalize_axis
from ..device import launch
from ..support import reduce_grid
from . import lowering
from .reduce import REDUCE_THREADS, beats, tree_max, tree_sum


# Elements are read through float(): Numba widens f32 to float64 anyway, but the simulator's
# NumPy scalars would keep f32 arithmetic (a Python float is 'weak' to them).
@cuda.jit(device=True)
def _line_max(x3, o, k, first, step):
    """The maximum (NaN if any) of x3[o, j, k] for j = first, first + step, ..."""
    top = -math.inf
    for j in range(first, x3.shape[1], step):
        value = float(x3[o, j, k])
        if beats(value, top, True):
            top = value
    return top


@cuda.jit(device=True)
def _line_sum(x3, o, k, top, first, step):
    """The float64 sum of exp(x3[o, j, k] - top) for j = first, first + step, ..."""
    total = 0.0
    for j in range(first, x3.shape[1], step):
        total += math.exp(float(x3[o, j, k]) - top)
    return total


@cuda.jit(device=True)
def _block_max_and_sum(x3, o, k, partial, t):
    """(max, sum of exp(x - max)) of the line x3[o, :, k], by the whole block."""
    partial[t] = _line_max(x3, o, k, t, REDUCE_THREADS)
    tree_max(partial, t)
    top = partial[0]
    cuda.syncthreads()                      # every thread has read the max before reuse
    partial[t] = _line_sum(x3, o, k, top, t, REDUCE_THREADS)
    tree_sum(partial, t)
    total = partial[0]
    cuda.syncthreads()
    return top, total


@cuda.jit(device=True)
def _write_log_softmax(x3, out3, o, k, top, total, first, step):
    log_total = math.log(total)
    for j in range(first, x3.shape[1], step):
        out3[o, j, k] = (float(x3[o, j, k]) - top) - log_total


@cuda.jit(device=True)
def _write_cross_entropy(logits3, label, out, r, top, total, gradient, first, step):
    """Row r's loss (written by the thread with first == 0) or its gradient row."""
    classes = logits3.shape[1]
    valid = label >= 0 and label < classes
    if gradient:
        for j in range(first, classes, step):
            if valid:
                hot = 1.0 if j == label else 0.0
                out[r, j] = math.exp(float(logits3[r, j, 0]) - top) / total - hot
            else:
                out[r, j] = math.nan
    elif first == 0:
        if valid:
            out[r, 0] = math.log(total) - (float(logits3[r, label, 0]) - top)
        else:
            out[r, 0] = math.nan


@cuda.jit(cache=True)
def _log_softmax_kernel(x3, out3):
    """log_softmax along axis 1 of [outer, n, inner] views: a thread per (outer, inner) line."""
    inner = x3.shape[2]
    line = cuda.grid(1)
    while line < x3.shape[0] * inner:
        o, k = line // inner, line % inner
        top = _line_max(x3, o, k, 0, 1)
        _write_log_softmax(x3, out3, o, k, top, _line_sum(x3, o, k, top, 0, 1), 0, 1)
        line += cuda.gridsize(1)


@cuda.jit(cache=True)
def _log_softmax_block_kernel(x3, out3):
    """_log_softmax_kernel with a block per line."""
    partial = cuda.shared.array(REDUCE_THREADS, float64)
    t = cuda.threadIdx.x
    inner = x3.shape[2]
    line = cuda.blockIdx.x
    while line < x3.shape[0] * inner:
        o, k = line // inner, line % inner
        top, total = _block_max_and_sum(x3, o, k, partial, t)
        _write_log_softmax(x3, out3, o, k, top, total, t, REDUCE_THREADS)
        line += cuda.gridDim.x


@cuda.jit(cache=True)
def _cross_entropy_kernel(logits3, labels, out, gradient):
    """Per row r of [rows, classes, 1] logits: out[r, 0] = logsumexp - logits[label] (gradient
    False), or out [rows, classes] = softmax - one_hot(label) (gradient True); a thread a row."""
    r = cuda.grid(1)
    while r < logits3.shape[0]:
        top = _line_max(logits3, r, 0, 0, 1)
        total = _line_sum(logits3, r, 0, top, 0, 1)
        _write_cross_entropy(logits3, labels[r], out, r, top, total, gradient, 0, 1)
        r += cuda.gridsize(1)


@cuda.jit(cache=True)
def _cross_entropy_block_kernel(logits3, labels, out, gradient):
    """_cross_entropy_kernel with a block per row."""
    partial = cuda.shared.array(REDUCE_THREADS, float64)
    t = cuda.threadIdx.x
    r = cuda.blockIdx.x
    while r < logits3.shape[0]:
        top, total = _block_max_and_sum(logits3, r, 0, partial, t)
        _write_cross_entropy(logits3, labels[r], out, r, top, total, gradient, t,
                             REDUCE_THREADS)
        r += cuda.gridDim.x


def _by_block(length: int) -> bool:
    """Whether lines of `length` get a block each (else a thread each)."""
    return length >= REDUCE_THREADS


def log_softmax(x, out, axis: int) -> None:
    """out = log_softmax(x) along `axis` (device arrays of one shape)."""
    if x.size == 0:
        return
    shape = tuple(x.shape)
    outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    views = x.reshape(outer, n, inner), out.reshape(outer, n, inner)
    if _by_block(n):
        _log_softmax_block_kernel[reduce_grid(outer * inner, REDUCE_THREADS)](*views)
    else:
        _log_softmax_kernel[launch(outer * inner)](*views)


def softmax_cross_entropy(logits, labels, out, gradient: bool) -> None:
    """out [...] = per-row loss, or with `gradient` out (logits' shape) = softmax - one_hot."""
    *leading, classes = logits.shape           # (the simulator's shapes refuse shape[-1])
    rows = math.prod(leading)
    if rows == 0:
        return
    args = (logits.reshape(rows, classes, 1), labels.reshape(rows),
            out.reshape(rows, classes) if gradient else out.reshape(rows, 1), gradient)
    if _by_block(classes):
        _cross_entropy_block_kernel[reduce_grid(rows, REDUCE_THREADS)](*args)
    else:
        _cross_entropy_kernel[launch(rows)](*args)


@lowering("log_softmax")
def lower_log_softmax(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", -1), node.inputs[0].rank)
    return [f"{ctx.use(log_softmax)}({ins[0]}, {outs[0]}, {axis})"]


@lowering("softmax_cross_entropy")
def lower_softmax_cross_entropy(ctx, node, ins, outs):
    return [f"{ctx.use(softmax_cross_entropy)}({ins[0]}, {ins[1]}, {outs[0]}, False)"]


@lowering("softmax_cross_entropy_grad")
def lower_softmax_cross_entropy_grad(ctx, node, ins, outs):
    return [f"{ctx.use(softmax_cross_entropy)}({ins[0]}, {ins[1]}, {outs[0]}, True)"]
