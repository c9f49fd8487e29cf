"""CPU lowerings of log_softmax and softmax cross-entropy: row kernels, parallel for large
tensors (netdsl/ops/nn.py)."""
from __future__ import annotations

import math

import numpy as np
from numba.np.ufunc.parallel import _iget_num_threads

from ....ir.types import normalize_axis
from ..builtins_inline import max2, min2
from ..jit import kernel
from ..parallel_calls import in_parallel
from . import lowering


@kernel(cache=True, inline="always")
def _log_softmax_task(x3, out3, task):
    """log_softmax of one (outer, inner) line of [outer, n, inner] views; sum in float64."""
    outer, n, inner = x3.shape
    o = task // inner
    k = task % inner
    top = -np.inf
    for j in range(n):
        top = max2(top, x3[o, j, k])
    total = 0.0
    for j in range(n):
        total += math.exp(x3[o, j, k] - top)
    log_total = top + math.log(total)
    for j in range(n):
        out3[o, j, k] = x3[o, j, k] - log_total


# Each kernel below has a serial variant and a parallel one (`_parallel` suffix: its lines in
# one part per thread, parallel_calls.py; as a prange it took ~0.4 s more to compile).  The
# code generator calls the parallel one only for tensors of at least CodegenOptions.
# parallel_min elements (ctx.large): a prange over a [128, 10] batch cost a thread-pool barrier
# per call, slow on busy cores.
@kernel(cache=True)
def log_softmax_kernel(x3, out3):
    """log_softmax over axis 1 of [outer, n, inner] views; sums accumulate in float64."""
    for task in range(x3.shape[0] * x3.shape[2]):
        _log_softmax_task(x3, out3, task)


@kernel(cache=True)
def _log_softmax_part(part, parts, x3, out3):
    """Part `part` of `parts` of log_softmax_kernel's lines, in order."""
    tasks = x3.shape[0] * x3.shape[2]
    for task in range(part * tasks // parts, (part + 1) * tasks // parts):
        _log_softmax_task(x3, out3, task)


_log_softmax_parts = in_parallel(_log_softmax_part)


@kernel(cache=True)
def log_softmax_kernel_parallel(x3, out3):
    """log_softmax_kernel with its lines in one part per thread (parallel_calls.py)."""
    parts = min2(_iget_num_threads(), x3.shape[0] * x3.shape[2])
    _log_softmax_parts(parts, parts, x3, out3)


def _product(name: str, dims: range) -> str:
    return " * ".join(f"{name}.shape[{d}]" for d in dims) or "1"


@kernel(cache=True, inline="always")
def _row_max_and_sum(logits2, r):
    """(max, sum of exp(logit - max)) of row r, the sum in float64."""
    top = -np.inf
    for j in range(logits2.shape[1]):
        top = max2(top, logits2[r, j])
    total = 0.0
    for j in range(logits2.shape[1]):
        total += math.exp(logits2[r, j] - top)
    return top, total


@kernel(cache=True, inline="always")
def _cross_entropy_row(logits2, labels1, loss1, grad2, r, gradient):
    top, total = _row_max_and_sum(logits2, r)
    label = labels1[r]
    valid = 0 <= label < logits2.shape[1]
    if gradient:
        for j in range(logits2.shape[1]):
            hot = 1.0 if j == label else 0.0
            grad2[r, j] = math.exp(logits2[r, j] - top) / total - hot if valid else np.nan
    elif valid:
        loss1[r] = top + math.log(total) - logits2[r, label]
    else:
        loss1[r] = np.nan


# The loss and its gradient are one kernel with a flag, so a training step compiles one
# function for both (0.1 s of a cold compile each): the forward call passes the logits as the
# gradient it does not write, the gradient's call a flat view of its output as the loss.
@kernel(cache=True)
def cross_entropy_kernel(logits2, labels1, loss1, grad2, gradient):
    """loss1[r] = logsumexp(row r) - logits2[r, label], or with `gradient`
    grad2[r] = softmax(row r) - one_hot(label); a label out of range gives NaN(s)."""
    for r in range(logits2.shape[0]):
        _cross_entropy_row(logits2, labels1, loss1, grad2, r, gradient)


@kernel(cache=True)
def _cross_entropy_part(part, parts, logits2, labels1, loss1, grad2, gradient):
    """Part `part` of `parts` of cross_entropy_kernel's rows, in order."""
    rows = logits2.shape[0]
    for r in range(part * rows // parts, (part + 1) * rows // parts):
        _cross_entropy_row(logits2, labels1, loss1, grad2, r, gradient)


_cross_entropy_parts = in_parallel(_cross_entropy_part)


@kernel(cache=True)
def cross_entropy_kernel_parallel(logits2, labels1, loss1, grad2, gradient):
    """cross_entropy_kernel with its rows in one part per thread (parallel_calls.py)."""
    parts = min2(_iget_num_threads(), logits2.shape[0])
    _cross_entropy_parts(parts, parts, logits2, labels1, loss1, grad2, gradient)


def _ce_emit(ctx, node, ins, outs, gradient: bool) -> list[str]:
    rank = node.inputs[0].rank
    rows = _product(ins[0], range(rank - 1))
    classes = f"{ins[0]}.shape[{rank - 1}]"
    kernel = ctx.use(cross_entropy_kernel_parallel if ctx.large(node.inputs[0].type) else
                     cross_entropy_kernel)
    logits = f"{ins[0]}.reshape({rows}, {classes})"
    if gradient:
        # The loss argument, which the gradient's call never writes: its output flat, all of
        # it, which line_rewrites makes a view.  `.reshape(-1)` it was: Numba's reshape with
        # an inferred dimension, ~0.15-0.4 s of the MLP step's cold compile (single process).
        outputs = f"{outs[0]}.reshape({rows} * {classes}), " \
            f"{outs[0]}.reshape({rows}, {classes}), True"
    else:
        outputs = f"{outs[0]}.reshape({rows}), {logits}, False"
    return [f"{kernel}({logits}, {ins[1]}.reshape({rows}), {outputs})"]


@lowering('log_softmax')
def lower_log_softmax(ctx, node, ins, outs):
    rank = node.inputs[0].rank
    axis = normalize_axis(node.attrs.get("axis", -1), rank)
    dims = f"{_product(ins[0], range(axis))}, {ins[0]}.shape[{axis}], " \
           f"{_product(ins[0], range(axis + 1, rank))}"
    kernel = log_softmax_kernel_parallel if ctx.large(node.inputs[0].type) else \
        log_softmax_kernel
    return [f"{ctx.use(kernel)}({ins[0]}.reshape({dims}), "
            f"{outs[0]}.reshape({dims}))"]


@lowering('softmax_cross_entropy')
def lower_softmax_cross_entropy(ctx, node, ins, outs):
    return _ce_emit(ctx, node, ins, outs, gradient=False)


@lowering('softmax_cross_entropy_grad')
def lower_softmax_cross_entropy_grad(ctx, node, ins, outs):
    return _ce_emit(ctx, node, ins, outs, gradient=True)
