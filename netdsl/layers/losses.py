"""Losses and regularisers: each reduces to a scalar (the mean over examples, as PyTorch does).

`cross_entropy`, `bce_logits` and `focal` go through fused, numerically stable primitives
(log-softmax, the logits form of BCE) rather than `log(softmax(x))`, which underflows.
"""
from __future__ import annotations

from ..ir.graph import Value
from .base import Tensor, function


def _same_shape(ctx, name: str, a: Value, b: Value,
                what: tuple[str, str] = ("predictions", "targets")) -> None:
    if tuple(a.shape) != tuple(b.shape):
        ctx.error(f"{name}: {what[0]} {a.type} and {what[1]} {b.type} have different shapes",
                  hint="both arguments must have the same shape (use reshape if one is [B] "
                       "and the other [B, 1])")


def _floating(ctx, name: str, what: str, x: Value) -> Value:
    """x, which must be a floating-point tensor (probabilities or logits): an integer tensor
    there is a mistake (swapped arguments, labels passed as predictions), not a conversion."""
    if not x.dtype.is_float:
        ctx.error(f"{name}: the {what} must be a floating-point tensor, got {x.type}",
                  hint=f"{name}'s first argument is the model's {what}, its second the "
                       f"targets; convert with cast(x, \"f32\") if this is meant")
    return x


def _mean_all(ctx, x: Value) -> Value:
    return ctx.op("mean", x, axes=tuple(range(x.rank)), keepdims=False)


def _as_float(ctx, x: Value, like: Value) -> Value:
    return x if x.dtype == like.dtype else ctx.op("cast", x, dtype=like.dtype)


@function("mse")
def mse(ctx, prediction: Tensor, target: Tensor):
    """Mean squared error over all elements."""
    prediction = ctx.floating(prediction)
    _same_shape(ctx, "mse", prediction, target)
    diff = ctx.op("sub", prediction, _as_float(ctx, target, prediction))
    return _mean_all(ctx, ctx.op("mul", diff, diff))


@function("bce")
def bce(ctx, probability: Tensor, target: Tensor):
    """Binary cross-entropy on probabilities; log is clamped at -100 like torch's BCELoss."""
    probability = _floating(ctx, "bce", "probabilities", probability)
    _same_shape(ctx, "bce", probability, target)
    target = _as_float(ctx, target, probability)
    floor = ctx.const(-100.0, probability)
    one = ctx.const(1.0, probability)
    log_p = ctx.op("maximum", ctx.op("log", probability), floor)
    log_q = ctx.op("maximum", ctx.op("log", ctx.op("sub", one, probability)), floor)
    per_element = ctx.op("add", ctx.op("mul", target, log_p),
                         ctx.op("mul", ctx.op("sub", one, target), log_q))
    return ctx.op("neg", _mean_all(ctx, per_element))


@function("bce_logits")
def bce_logits(ctx, logits: Tensor, target: Tensor):
    """Binary cross-entropy on logits: max(x, 0) - x*t + log(1 + exp(-|x|)), averaged."""
    logits = _floating(ctx, "bce_logits", "logits", logits)
    _same_shape(ctx, "bce_logits", logits, target)
    target = _as_float(ctx, target, logits)
    return _mean_all(ctx, ctx.op("sigmoid_bce_logits", logits, target))


def _class_weights(ctx, weights, logits: Value) -> Value | None:
    """`weights=[1.0, 2.0, 8.0]` (or a tensor) as a float tensor [C] matching the logits."""
    if weights is None:
        return None
    classes = logits.shape[-1]
    if isinstance(weights, (list, tuple)):
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
            ctx.error("cross_entropy: weights must be a list of numbers, one per class")
        if isinstance(classes, int) and len(weights) != classes:
            ctx.error(f"cross_entropy: {len(weights)} weights for {classes} classes "
                      f"(logits {logits.type})", hint="give one weight per class")
        with ctx.lowerer.builder.at(ctx.span):
            return ctx.lowerer.builder.constant([float(w) for w in weights], logits.dtype)
    if weights.rank != 1 or weights.shape[0] != classes:
        ctx.error(f"cross_entropy: weights {weights.type} must be one per class "
                  f"([{classes}]) for logits {logits.type}")
    return _as_float(ctx, weights, logits)


@function("cross_entropy")
def cross_entropy(ctx, logits: Tensor, labels: Tensor, weights: (Tensor, list) = None,
                  ignore_index: int = None):
    """Softmax cross-entropy over the last axis; labels are class indices or one-hot/probabilities.

    With integer labels of shape logits.shape[:-1] it is torch's CrossEntropyLoss (class axis
    last, so [B, T, V] logits with [B, T] labels work for sequence models); `weights` [C] weighs
    each class and the mean is divided by the summed weights, as in torch.  `ignore_index=0`
    leaves out the positions with that label (padding): the mean is over the others, as torch's
    reduction='mean' with ignore_index.
    """
    if not logits.dtype.is_float and labels.dtype.is_float:
        # The classic slip: cross_entropy(labels, logits).  Say so, with both real types,
        # rather than only that the "logits" are not floating point.
        ctx.error(f"cross_entropy(logits, labels): got an integer tensor {logits.type} as logits "
                  f"and {labels.type} as labels; the arguments look swapped",
                  hint="swap them: the model's floating-point logits first, then the integer "
                       "class labels")
    logits = _floating(ctx, "cross_entropy", "logits", logits)
    if logits.rank < 1:
        ctx.error(f"cross_entropy: the logits must have a class axis, got {logits.type}")
    weights = _class_weights(ctx, weights, logits)
    if labels.dtype.is_int:
        if tuple(labels.shape) != tuple(logits.shape[:-1]):
            ctx.error(f"cross_entropy: labels {labels.type} do not match logits {logits.type}",
                      hint=f"integer labels need shape [{', '.join(map(str, logits.shape[:-1]))}]"
                           " (one class index per row of logits)")
        keep = None
        if ignore_index is not None:
            ctx.ignore_label(labels, ignore_index)
            # Ignored positions get label 0 (any valid class) and weight 0.
            keep = ctx.op("not_equal", labels, ctx.const(ignore_index, labels))
            labels = ctx.op("mul", labels, ctx.op("cast", keep, dtype=labels.dtype))
            keep = ctx.op("cast", keep, dtype=logits.dtype)
        per_example = ctx.op("softmax_cross_entropy", logits, labels)
        if weights is None and keep is None:
            return _mean_all(ctx, per_example)
        picked = keep
        if weights is not None:
            picked = ctx.op("sum", ctx.op("mul", ctx.op("one_hot", labels,
                                                         depth=logits.shape[-1]), weights),
                            axes=(labels.rank,), keepdims=False)
            picked = picked if keep is None else ctx.op("mul", picked, keep)
        axes = tuple(range(labels.rank))
        total = ctx.op("sum", ctx.op("mul", per_example, picked), axes=axes, keepdims=False)
        return ctx.op("div", total, ctx.op("sum", picked, axes=axes, keepdims=False))
    if ignore_index is not None:
        ctx.error(f"cross_entropy: ignore_index needs integer class labels, got {labels.type}",
                  hint="with one-hot or probability labels, give the padding rows all zeros")
    _same_shape(ctx, "cross_entropy", logits, labels)
    log_p = ctx.op("log_softmax", logits, axis=logits.rank - 1)
    terms = ctx.op("mul", _as_float(ctx, labels, logits), log_p)
    if weights is not None:
        terms = ctx.op("mul", terms, weights)
    per_example = ctx.op("sum", terms, axes=(logits.rank - 1,), keepdims=False)
    return ctx.op("neg", _mean_all(ctx, per_example))


@function("focal")
def focal(ctx, logits: Tensor, labels: Tensor, gamma: float = 2.0):
    """Focal loss (Lin et al.): -(1 - p_t)^gamma log p_t, averaged over examples."""
    logits = _floating(ctx, "focal", "logits", logits)
    if gamma < 0:
        ctx.error(f"focal: gamma must be at least 0, got {gamma:g}",
                  hint="gamma = 0 is cross-entropy; the paper uses 2")
    if logits.rank < 1:
        ctx.error(f"focal: the logits must have a class axis, got {logits.type}")
    if labels.dtype.is_int:
        if tuple(labels.shape) != tuple(logits.shape[:-1]):
            ctx.error(f"focal: labels {labels.type} do not match logits {logits.type}",
                      hint=f"integer labels need shape [{', '.join(map(str, logits.shape[:-1]))}]"
                           " (one class index per row of logits)")
        target = ctx.op("one_hot", labels, depth=logits.shape[-1])
    else:
        _same_shape(ctx, "focal", logits, labels, ("logits", "labels"))
        target = _as_float(ctx, labels, logits)
    log_p = ctx.op("log_softmax", logits, axis=logits.rank - 1)
    log_pt = ctx.op("sum", ctx.op("mul", target, log_p), axes=(logits.rank - 1,), keepdims=False)
    one_minus = ctx.op("sub", ctx.const(1.0, logits), ctx.op("exp", log_pt))
    weight = ctx.op("pow", ctx.op("maximum", one_minus, ctx.const(0.0, logits)),
                    ctx.const(gamma, logits))
    return ctx.op("neg", _mean_all(ctx, ctx.op("mul", weight, log_pt)))


@function("kl_normal")
def kl_normal(ctx, mu: Tensor, logvar: Tensor):
    """KL(N(mu, exp(logvar)) || N(0, 1)), summed over latent axes and averaged over the batch."""
    _same_shape(ctx, "kl_normal", mu, logvar, ("mu", "logvar"))
    one = ctx.const(1.0, mu)
    inner = ctx.op("sub", ctx.op("sub", ctx.op("add", one, logvar), ctx.op("mul", mu, mu)),
                   ctx.op("exp", logvar))
    per_example = ctx.op("sum", inner, axes=tuple(range(1, mu.rank)), keepdims=False) \
        if mu.rank > 1 else inner
    return ctx.op("mul", ctx.const(-0.5, mu), _mean_all(ctx, per_example))


@function("l1")
def l1(ctx, weight: Tensor):
    """Sum of absolute values (add `lambda * l1(w)` to a loss)."""
    return ctx.op("sum", ctx.op("abs", weight), axes=tuple(range(weight.rank)), keepdims=False)


@function("l2")
def l2(ctx, weight: Tensor):
    """Sum of squares (Keras' l2; PyTorch's weight_decay is the train-section key instead)."""
    return ctx.op("sum", ctx.op("mul", weight, weight), axes=tuple(range(weight.rank)),
                  keepdims=False)

