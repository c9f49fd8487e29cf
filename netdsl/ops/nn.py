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

import numpy as np

from ..ir.types import DType, ShapeError, TensorType, normalize_axis, promote
from ._common import elementwise_type, float_type, unbroadcast
from .registry import op


def _log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


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
