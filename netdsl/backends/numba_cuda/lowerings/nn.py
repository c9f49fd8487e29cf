"""CUDA lowerings of log_softmax and softmax cross-entropy with its gradient (netdsl/ops/nn.py).

One thread per row (a line along the softmax axis) in a grid-stride loop: the row's maximum,
then the sum of exp(x - max) in float64, then the row's results.  A row is read three times by
one thread; for the class counts of classifiers and language models (10 to a few thousand) the
rows, not the classes, are what fills the device.  (A block per row with a shared-memory tree
would be the step for very long rows.)

Labels outside [0, classes) give NaN losses and NaN gradient rows, as on the cpu target (the
reference raises; the runtime checks the labels it is fed before a step).
"""
from __future__ import annotations

import math

from numba import cuda

from ....ir.types import normalize_axis
from ..device import launch
from . import lowering


@cuda.jit(device=True)
def _line_max_and_sum(x3, o, k):
    """(max, sum of exp(x - max)) of the line x3[o, :, k], both float64.

    Every element is read through float(): Numba widens f32 to float64 anyway, but the
    simulator's NumPy scalars would keep f32 arithmetic (a Python float is 'weak' to them)."""
    top = -math.inf
    for j in range(x3.shape[1]):
        top = max(top, float(x3[o, j, k]))
    total = 0.0
    for j in range(x3.shape[1]):
        total += math.exp(float(x3[o, j, k]) - top)
    return top, total


@cuda.jit(cache=True)
def _log_softmax_kernel(x3, out3):
    """log_softmax along axis 1 of [outer, n, inner] views: a thread per (outer, inner) line."""
    inner = x3.shape[2]
    task = cuda.grid(1)
    stride = cuda.gridsize(1)
    while task < x3.shape[0] * inner:
        o = task // inner
        k = task % inner
        top, total = _line_max_and_sum(x3, o, k)
        log_total = math.log(total)
        for j in range(x3.shape[1]):                 # (x - max) - log(sum), the reference's order
            out3[o, j, k] = (float(x3[o, j, k]) - top) - log_total
        task += stride


@cuda.jit(cache=True)
def _cross_entropy_kernel(logits3, labels, out, gradient):
    """Per row r of [rows, classes, 1] logits: out[r] = logsumexp - logits[label] (gradient
    False), or out [rows, classes] = softmax - one_hot(label) (gradient True)."""
    classes = logits3.shape[1]
    r = cuda.grid(1)
    stride = cuda.gridsize(1)
    while r < logits3.shape[0]:
        top, total = _line_max_and_sum(logits3, r, 0)
        label = labels[r]
        valid = label >= 0 and label < classes
        if gradient:
            for j in range(classes):
                if valid:
                    hot = 1.0 if j == label else 0.0
                    out[r, j] = math.exp(float(logits3[r, j, 0]) - top) / total - hot
                else:
                    out[r, j] = math.nan
        elif valid:
            out[r, 0] = math.log(total) - (float(logits3[r, label, 0]) - top)
        else:
            out[r, 0] = math.nan
        r += stride


def _lines_around(shape: tuple, axis: int) -> tuple[int, int, int]:
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def log_softmax(x, out, axis: int) -> None:
    """out = log_softmax(x) along `axis` (device arrays of one shape)."""
    if x.size == 0:
        return
    outer, n, inner = _lines_around(x.shape, axis)
    blocks, threads = launch(outer * inner)
    _log_softmax_kernel[blocks, threads](x.reshape(outer, n, inner), out.reshape(outer, n, inner))


def softmax_cross_entropy(logits, labels, out, gradient: bool) -> None:
    """out [...] = per-row loss, or with `gradient` out (logits' shape) = softmax - one_hot."""
    *leading, classes = logits.shape           # (the simulator's shapes refuse shape[-1])
    rows = math.prod(leading)
    if rows == 0:
        return
    blocks, threads = launch(rows)
    result = out.reshape(rows, classes) if gradient else out.reshape(rows, 1)
    _cross_entropy_kernel[blocks, threads](logits.reshape(rows, classes, 1), labels.reshape(rows),
                                           result, gradient)


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
