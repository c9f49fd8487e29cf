"""Fused primitives kept only where numerics demand it: log-softmax and the two logit losses.

Composites would lose precision: `log(softmax(x))` underflows to log(0) = -inf for very negative
logits and `exp` overflows for large ones, and `bce(sigmoid(x))` rounds sigmoid to exactly 0 or 1.
Each op below subtracts the maximum (log-sum-exp) or uses the log1p form, and its gradient is the
short closed form (softmax - one_hot, sigmoid - t) rather than a chain through exp and log.
`softmax` itself is exp(log_softmax(x)) in the library: stable, with a cheap gradient.

* `log_softmax(x, axis=-1)`
* `softmax_cross_entropy(logits [..., K], labels [...] int)` -> per-example loss [...]
  (the library takes the mean); its gradient op `softmax_cross_entropy_grad(logits, labels)`
  = softmax(logits) - one_hot(labels)
* `sigmoid_bce_logits(logits, targets)`: elementwise max(x, 0) - x*t + log1p(exp(-|x|))
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..ir.types import DType, ShapeError, TensorType, normalize_axis, promote
from ._common import elementwise_type, float_type, unbroadcast
from .registry import op


def _log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


@njit(cache=True, inline="always")
def _log_softmax_task(x3, out3, task):
    """log_softmax of one (outer, inner) line of [outer, n, inner] views; sum in float64."""
    outer, n, inner = x3.shape
    o = task // inner
    k = task % inner
    top = -np.inf
    for j in range(n):
        top = max(top, x3[o, j, k])
    total = 0.0
    for j in range(n):
        total += math.exp(x3[o, j, k] - top)
    log_total = top + math.log(total)
    for j in range(n):
        out3[o, j, k] = x3[o, j, k] - log_total


# Each kernel below has a serial variant and a `parallel=True` one (`_parallel` suffix).  The
# code generator calls the parallel one only for tensors of at least CodegenOptions.
# parallel_min elements (ctx.large): a prange over a [128, 10] batch cost a thread-pool barrier
# per call, slow on busy cores, and a parallel kernel takes ~1 s to compile against ~0.1 s.
@njit(cache=True)
def log_softmax_kernel(x3, out3):
    """log_softmax over axis 1 of [outer, n, inner] views; sums accumulate in float64."""
    for task in range(x3.shape[0] * x3.shape[2]):
        _log_softmax_task(x3, out3, task)


@njit(cache=True, parallel=True)
def log_softmax_kernel_parallel(x3, out3):
    """log_softmax_kernel with the lines in parallel."""
    for task in prange(x3.shape[0] * x3.shape[2]):
        _log_softmax_task(x3, out3, np.int64(task))


def _product(name: str, dims: range) -> str:
    return " * ".join(f"{name}.shape[{d}]" for d in dims) or "1"


@op("log_softmax")
class LogSoftmax:
    """log(softmax(x)) along `axis`, computed as x - max - log(sum(exp(x - max)))."""
    traits = {"pure"}

    def infer(x, axis=-1):
        float_type(x, "log_softmax")
        normalize_axis(axis, x.rank)
        return x

    def reference(x, axis=-1):
        return _log_softmax(x, axis).astype(x.dtype)

    def vjp(b, grads, inputs, outputs, axis=-1):
        g = grads[0]
        if g is None:
            return (None,)
        axis = normalize_axis(axis, inputs[0].rank)
        total = b.op("sum", g, axes=(axis,), keepdims=True)
        return (b.op("sub", g, b.op("mul", b.op("exp", outputs[0]), total)),)

    def emit_numba(ctx, node, ins, outs):
        rank = node.inputs[0].rank
        axis = normalize_axis(node.attrs.get("axis", -1), rank)
        dims = f"{_product(ins[0], range(axis))}, {ins[0]}.shape[{axis}], " \
               f"{_product(ins[0], range(axis + 1, rank))}"
        kernel = log_softmax_kernel_parallel if ctx.large(node.inputs[0].type) else \
            log_softmax_kernel
        return [f"{ctx.use(kernel)}({ins[0]}.reshape({dims}), "
                f"{outs[0]}.reshape({dims}))"]

    def examples():
        T = lambda *shape: TensorType(DType.f32, shape)
        return [((T(3, 5),), {"axis": -1}), ((T(2, 4, 3),), {"axis": 1}), ((T(6,),), {"axis": 0})]


# ---------------------------------------------------------------------------------------------
# Softmax cross-entropy with integer labels (class axis last)

def _ce_types(name: str, logits: TensorType, labels: TensorType) -> None:
    float_type(logits, name)
    if logits.rank < 1:
        raise ShapeError(f"{name} expects logits with a class axis, got {logits}")
    if not labels.dtype.is_int:
        raise ShapeError(f"{name} expects integer class labels, got {labels}",
                         hint="one-hot targets go through cross_entropy's one-hot form")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ShapeError(f"{name}: labels {labels} must have the shape of logits {logits} "
                         f"without its class axis ([{', '.join(map(str, logits.shape[:-1]))}])")


def _check_labels(labels, classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"class labels must be in [0, {classes}), got values from "
                         f"{labels.min()} to {labels.max()}")


@njit(cache=True, inline="always")
def _row_max_and_sum(logits2, r):
    """(max, sum of exp(logit - max)) of row r, the sum in float64."""
    top = -np.inf
    for j in range(logits2.shape[1]):
        top = max(top, logits2[r, j])
    total = 0.0
    for j in range(logits2.shape[1]):
        total += math.exp(logits2[r, j] - top)
    return top, total


@njit(cache=True, inline="always")
def _cross_entropy_row(logits2, labels1, out1, r):
    top, total = _row_max_and_sum(logits2, r)
    label = labels1[r]
    if 0 <= label < logits2.shape[1]:
        out1[r] = top + math.log(total) - logits2[r, label]
    else:
        out1[r] = np.nan


@njit(cache=True)
def cross_entropy_kernel(logits2, labels1, out1):
    """out1[r] = logsumexp(row r) - logits2[r, label]; a label out of range gives NaN."""
    for r in range(logits2.shape[0]):
        _cross_entropy_row(logits2, labels1, out1, r)


@njit(cache=True, parallel=True)
def cross_entropy_kernel_parallel(logits2, labels1, out1):
    """cross_entropy_kernel with the rows in parallel."""
    for r in prange(logits2.shape[0]):
        _cross_entropy_row(logits2, labels1, out1, np.int64(r))


@njit(cache=True, inline="always")
def _cross_entropy_grad_row(logits2, labels1, out2, r):
    top, total = _row_max_and_sum(logits2, r)
    label = labels1[r]
    valid = 0 <= label < logits2.shape[1]
    for j in range(logits2.shape[1]):
        hot = 1.0 if j == label else 0.0
        out2[r, j] = math.exp(logits2[r, j] - top) / total - hot if valid else np.nan


@njit(cache=True)
def cross_entropy_grad_kernel(logits2, labels1, out2):
    """out2[r] = softmax(row r) - one_hot(label); a label out of range gives NaNs."""
    for r in range(logits2.shape[0]):
        _cross_entropy_grad_row(logits2, labels1, out2, r)


@njit(cache=True, parallel=True)
def cross_entropy_grad_kernel_parallel(logits2, labels1, out2):
    """cross_entropy_grad_kernel with the rows in parallel."""
    for r in prange(logits2.shape[0]):
        _cross_entropy_grad_row(logits2, labels1, out2, np.int64(r))


def _ce_emit(ctx, node, ins, outs, gradient: bool) -> list[str]:
    rank = node.inputs[0].rank
    rows = _product(ins[0], range(rank - 1))
    classes = f"{ins[0]}.shape[{rank - 1}]"
    if ctx.large(node.inputs[0].type):
        kernel = cross_entropy_grad_kernel_parallel if gradient else cross_entropy_kernel_parallel
    else:
        kernel = cross_entropy_grad_kernel if gradient else cross_entropy_kernel
    kernel = ctx.use(kernel)
    out = f"{outs[0]}.reshape({rows}, {classes})" if gradient else f"{outs[0]}.reshape({rows})"
    return [f"{kernel}({ins[0]}.reshape({rows}, {classes}), {ins[1]}.reshape({rows}), {out})"]


def _ce_examples():
    f32, i64 = DType.f32, DType.i64
    return [((TensorType(f32, (4, 5)), TensorType(i64, (4,))), {}, {"int_high": 5}),
            ((TensorType(f32, (2, 3, 4)), TensorType(i64, (2, 3))), {}, {"int_high": 4}),
            ((TensorType(f32, (3,)), TensorType(i64, ())), {}, {"int_high": 3})]


@op("softmax_cross_entropy")
class SoftmaxCrossEntropy:
    """Per-example -log softmax(logits)[label] for integer labels, classes on the last axis."""
    traits = {"pure"}

    def infer(logits, labels):
        _ce_types("softmax_cross_entropy", logits, labels)
        return TensorType(logits.dtype, logits.shape[:-1])

    def reference(logits, labels):
        _check_labels(labels, logits.shape[-1])
        log_p = _log_softmax(logits.astype(np.float64), -1)
        picked = np.take_along_axis(log_p, labels[..., None].astype(np.int64), axis=-1)
        return (-picked[..., 0]).astype(logits.dtype)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        if g is None:
            return None, None
        logits, labels = inputs
        direction = b.op("softmax_cross_entropy_grad", logits, labels)
        return b.op("mul", direction, b.op("expand_dims", g, axes=(logits.rank - 1,))), None

    def emit_numba(ctx, node, ins, outs):
        return _ce_emit(ctx, node, ins, outs, gradient=False)

    examples = staticmethod(_ce_examples)


@op("softmax_cross_entropy_grad")
class SoftmaxCrossEntropyGrad:
    """softmax(logits) - one_hot(labels): the gradient of softmax_cross_entropy for g = 1."""
    traits = {"pure"}

    def infer(logits, labels):
        _ce_types("softmax_cross_entropy_grad", logits, labels)
        return logits

    def reference(logits, labels):
        _check_labels(labels, logits.shape[-1])
        p = np.exp(_log_softmax(logits.astype(np.float64), -1))
        hot = np.arange(logits.shape[-1]) == labels[..., None]
        return (p - hot).astype(logits.dtype)

    def vjp(b, grads, inputs, outputs):
        gg = grads[0]
        if gg is None:
            return None, None
        logits = inputs[0]
        # The softmax Jacobian (symmetric) applied to gg: p * (gg - sum(gg * p)).
        axis = logits.rank - 1
        p = b.op("exp", b.op("log_softmax", logits, axis=axis))
        total = b.op("sum", b.op("mul", gg, p), axes=(axis,), keepdims=True)
        return b.op("mul", p, b.op("sub", gg, total)), None

    def emit_numba(ctx, node, ins, outs):
        return _ce_emit(ctx, node, ins, outs, gradient=True)

    examples = staticmethod(_ce_examples)


# ---------------------------------------------------------------------------------------------

@op("sigmoid_bce_logits")
class SigmoidBCELogits:
    """Binary cross-entropy of sigmoid(logits) against targets, elementwise, in the stable form
    max(x, 0) - x*t + log1p(exp(-|x|)) (never forms sigmoid(x) itself)."""
    traits = {"elementwise", "pure"}
    kernel = "(max({0}, 0.0) - {0} * {1} + np.log1p(np.exp(-abs({0}))))"

    def infer(logits, targets):
        float_type(logits, "sigmoid_bce_logits")
        return elementwise_type(logits, targets)

    def reference(logits, targets):
        dtype = promote(DType.from_numpy(logits.dtype), DType.from_numpy(targets.dtype))
        x = logits.astype(np.float64)
        loss = np.maximum(x, 0) - x * targets + np.log1p(np.exp(-np.abs(x)))
        return loss.astype(dtype.numpy)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        if g is None:
            return None, None
        x, t = inputs
        if t.dtype != x.dtype:
            t = b.op("cast", t, dtype=x.dtype)
        gx = b.op("mul", g, b.op("sub", b.op("sigmoid", x), t))
        gt = b.op("neg", b.op("mul", g, x)) if inputs[1].dtype.is_float else None
        return unbroadcast(b, gx, x.type), unbroadcast(b, gt, inputs[1].type)

    def examples():
        T = lambda *shape: TensorType(DType.f32, shape)
        return [((T(3, 4), T(3, 4)), {}),
                ((T(2, 3), T(3)), {}),
                ((T(5,), TensorType(DType.i64, (5,))), {}, {"int_high": 2})]
