"""Reductions: sum, mean, max, min, logsumexp over axes, argmax along one axis, and numel.

Attrs `axes`: `None` (the default) reduces every axis; a tuple of axes (negative ones count from
the end) reduces those; the empty tuple reduces nothing, as in NumPy, so that generic code (e.g.
un-broadcasting) that computes an empty axis list gets the identity rather than a total.
`keepdims=True` keeps each reduced axis with length 1.

VJPs restore the reduced axes with `expand_dims` and broadcast against the input, so they hold
no symbolic shapes in attributes.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.types import DType, ShapeError, TensorType, dim_prod
from ._common import NAN_MAX, NAN_MIN
from .registry import ReductionRule, op


def reduced_axes(t: TensorType, axes) -> tuple[int, ...]:
    """Normalised, sorted reduced axes of `t` (ShapeError for out-of-range or repeated axes)."""
    if axes is None:
        return tuple(range(t.rank))
    if isinstance(axes, int):
        axes = (axes,)
    result = []
    for axis in axes:
        if not -t.rank <= axis < t.rank:
            raise ShapeError(f"axis {axis} is out of range for {t} (rank {t.rank})")
        result.append(axis % t.rank)
    if len(set(result)) != len(result):
        raise ShapeError(f"repeated axis in {tuple(axes)} for {t}")
    return tuple(sorted(result))


def reduced_type(t: TensorType, axes, keepdims: bool, dtype: DType | None = None) -> TensorType:
    """The type of reducing `t` over `axes`."""
    chosen = reduced_axes(t, axes)
    shape = tuple((1 if keepdims else None) if i in chosen else d for i, d in enumerate(t.shape))
    return TensorType(dtype or t.dtype, tuple(d for d in shape if d is not None))


def _nonempty(t: TensorType, axes, name: str) -> None:
    """max/min/argmax/logsumexp of an empty extent has no value."""
    for axis in reduced_axes(t, axes):
        if t.shape[axis] == 0:
            raise ShapeError(f"{name} over axis {axis} of {t}, which is empty")


def _float(t: TensorType, name: str) -> None:
    if not t.dtype.is_float:
        raise ShapeError(f"{name} expects a floating-point tensor, got {t}",
                         hint="convert first: cast(x, f32)")


def _keep(b, grad, x, axes, keepdims: bool):
    """`grad` (the reduction's gradient) with the reduced axes back as length-1 axes."""
    chosen = reduced_axes(x.type, axes)
    if keepdims or not chosen:
        return grad
    return b.op("expand_dims", grad, axes=chosen)


def _lowest(dtype: DType):
    return -math.inf if dtype.is_float else int(np.iinfo(dtype.numpy).min)


def _highest(dtype: DType):
    return math.inf if dtype.is_float else int(np.iinfo(dtype.numpy).max)


def _examples(**options):
    f32 = DType.f32
    return [((TensorType(f32, (3, 4, 5)),), {"axes": (1,), "keepdims": False}, options),
            ((TensorType(f32, (3, 4, 5)),), {"axes": (0, -1), "keepdims": True}, options),
            ((TensorType(f32, (3, 4)),), {"axes": None, "keepdims": False}, options),
            ((TensorType(f32, (2, 6)),), {"axes": -1, "keepdims": False}, options)]


@op("sum")
class Sum:
    """Sum over `axes` (None: all); boolean inputs count as i64."""
    traits = {"reduction", "pure"}
    reduction = ReductionRule(identity=lambda dtype: 0, combine="{0} + {1}")
    examples = staticmethod(_examples)

    def infer(a, axes=None, keepdims: bool = False):
        dtype = DType.i64 if a.dtype is DType.bool else a.dtype
        return reduced_type(a, axes, keepdims, dtype)

    def reference(a, axes=None, keepdims: bool = False):
        dtype = np.int64 if a.dtype == np.bool_ else a.dtype
        return np.sum(a, axis=axes, keepdims=keepdims, dtype=dtype)

    def vjp(b, grads, inputs, outputs, axes=None, keepdims: bool = False):
        x = inputs[0]
        g = _keep(b, grads[0], x, axes, keepdims)
        return (b.op("broadcast_to", g, x),)


@op("mean")
class Mean:
    """Arithmetic mean over `axes` (None: all) of a float tensor."""
    traits = {"reduction", "pure"}
    reduction = ReductionRule(identity=lambda dtype: 0, combine="{0} + {1}",
                              finish="{0} / {count}")
    examples = staticmethod(_examples)

    def infer(a, axes=None, keepdims: bool = False):
        _float(a, "mean")
        return reduced_type(a, axes, keepdims)

    def reference(a, axes=None, keepdims: bool = False):
        return np.mean(a, axis=axes, keepdims=keepdims, dtype=a.dtype)

    def vjp(b, grads, inputs, outputs, axes=None, keepdims: bool = False):
        x = inputs[0]
        g = b.op("broadcast_to", _keep(b, grads[0], x, axes, keepdims), x)
        count = dim_prod(x.shape[axis] for axis in reduced_axes(x.type, axes))
        # A symbolic count (the batch B) is only known at run time: numel reads it off x.
        divisor = b.constant(count, x.dtype) if isinstance(count, int) else \
            b.op("numel", x, axes=axes, dtype=x.dtype)
        return (b.op("div", g, divisor),)


def _extremum_vjp(b, grads, inputs, outputs, axes, keepdims):
    """Gradient of max/min: shared equally by every position that attains the extremum."""
    x = inputs[0]
    hit = b.op("cast", b.op("equal", x, _keep(b, outputs[0], x, axes, keepdims)), dtype=x.dtype)
    ties = b.op("sum", hit, axes=axes, keepdims=True)
    return (b.op("mul", b.op("div", hit, ties), _keep(b, grads[0], x, axes, keepdims)),)


@op("max")
class Max:
    """Maximum over `axes` (None: all); ties share the gradient equally."""
    traits = {"reduction", "pure"}
    reduction = ReductionRule(identity=_lowest, combine=NAN_MAX)     # NaN wins and stays
    examples = staticmethod(_examples)

    def infer(a, axes=None, keepdims: bool = False):
        _nonempty(a, axes, "max")
        return reduced_type(a, axes, keepdims)

    def reference(a, axes=None, keepdims: bool = False):
        return np.max(a, axis=axes, keepdims=keepdims)

    def vjp(b, grads, inputs, outputs, axes=None, keepdims: bool = False):
        return _extremum_vjp(b, grads, inputs, outputs, axes, keepdims)


@op("min")
class Min:
    """Minimum over `axes` (None: all); ties share the gradient equally."""
    traits = {"reduction", "pure"}
    reduction = ReductionRule(identity=_highest, combine=NAN_MIN)
    examples = staticmethod(_examples)

    def infer(a, axes=None, keepdims: bool = False):
        _nonempty(a, axes, "min")
        return reduced_type(a, axes, keepdims)

    def reference(a, axes=None, keepdims: bool = False):
        return np.min(a, axis=axes, keepdims=keepdims)

    def vjp(b, grads, inputs, outputs, axes=None, keepdims: bool = False):
        return _extremum_vjp(b, grads, inputs, outputs, axes, keepdims)


@op("logsumexp")
class LogSumExp:
    """log(sum(exp(x))) over `axes`, shifted by the maximum so it never overflows."""
    traits = {"reduction", "pure"}

    def infer(a, axes=None, keepdims: bool = False):
        _float(a, "logsumexp")
        _nonempty(a, axes, "logsumexp")
        return reduced_type(a, axes, keepdims)

    def reference(a, axes=None, keepdims: bool = False):
        top = np.max(a, axis=axes, keepdims=True)
        top = np.where(np.isfinite(top), top, 0)    # all -inf rows give -inf, not nan
        with np.errstate(divide="ignore"):
            total = np.log(np.sum(np.exp(a - top), axis=axes, keepdims=True)) + top
        return (total if keepdims else np.squeeze(total, axis=axes)).astype(a.dtype)

    def vjp(b, grads, inputs, outputs, axes=None, keepdims: bool = False):
        # The gradient is the softmax over the reduced axes.
        x = inputs[0]
        softmax = b.op("exp", b.op("sub", x, _keep(b, outputs[0], x, axes, keepdims)))
        return (b.op("mul", softmax, _keep(b, grads[0], x, axes, keepdims)),)

    def examples():
        f32 = DType.f32
        wide = {"inputs": lambda rng, types: [rng.uniform(-50, 50, (3, 4)).astype(np.float32)]}
        return _examples() + [((TensorType(f32, (3, 4)),), {"axes": (1,)}, wide)]


@op("argmax")
class ArgMax:
    """Index of the maximum along `axis` (i64; the first one on ties)."""
    traits = {"reduction", "pure", "no_grad"}
    vjp = None

    def infer(a, axis: int = -1, keepdims: bool = False):
        _nonempty(a, (axis,), "argmax")
        return reduced_type(a, (axis,), keepdims, DType.i64)

    def reference(a, axis: int = -1, keepdims: bool = False):
        return np.argmax(a, axis=axis, keepdims=keepdims).astype(np.int64)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (3, 5)),), {"axis": -1}),
                ((TensorType(f32, (3, 5, 2)),), {"axis": 1, "keepdims": True}),
                ((TensorType(DType.i64, (4, 6)),), {"axis": 0}, {"int_high": 3})]


@op("numel")
class Numel:
    """The number of elements in `axes` of x (None: all) as a rank-0 tensor of `dtype`.

    Reads only x's shape.  It is how a mean over a symbolic axis (the batch B) gets its divisor.
    """
    traits = {"pure", "no_grad"}
    shape_inputs = (0,)
    vjp = None

    def infer(a, axes=None, dtype: DType = DType.f32):
        reduced_axes(a, axes)
        return TensorType(dtype, ())

    def reference(a, axes=None, dtype: DType = DType.f32):
        chosen = range(a.ndim) if axes is None else np.atleast_1d(axes)
        return np.asarray(int(np.prod([a.shape[axis] for axis in chosen])), dtype=dtype.numpy)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (3, 4, 5)),), {"axes": (0, 2)}),
                ((TensorType(f32, (3, 4)),), {}),
                ((TensorType(f32, (3, 4)),), {"axes": -1, "dtype": DType.i64})]
