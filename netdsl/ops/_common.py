"""Helpers shared by op families: elementwise type rules, un-broadcasting of gradients, and
the NaN-keeping max and min templates."""
from __future__ import annotations

from ..ir.types import DType, ShapeError, TensorType, broadcast_shapes, promote

# The larger (smaller) of {0} and {1} as kernel templates, where a NaN in either wins, as in
# np.maximum and np.max (`x != x` holds for NaN alone): maximum and minimum, and the max and
# min reductions' combine rule.  `a if a >= b else b`, and Python's max, dropped a NaN in b.
NAN_MAX = "({0} if ({0} >= {1} or {0} != {0}) else {1})"
NAN_MIN = "({0} if ({0} <= {1} or {0} != {0}) else {1})"


def elementwise_type(*types: TensorType, dtype: DType | None = None) -> TensorType:
    """The broadcast result type of an elementwise op (dtype promoted unless given)."""
    shape = broadcast_shapes(*(t.shape for t in types))
    if dtype is None:
        dtype = types[0].dtype
        for t in types[1:]:
            dtype = promote(dtype, t.dtype)
    return TensorType(dtype, shape)


def float_type(t: TensorType, name: str) -> TensorType:
    """Unary float ops (exp, log, tanh...) reject integer inputs with a clear message."""
    if not t.dtype.is_float:
        raise ShapeError(f"{name} expects a floating-point tensor, got {t}",
                         hint=f"convert first: cast(x, f32)")
    return t


def unbroadcast(b, grad, target: TensorType):
    """Sum `grad` over the axes that broadcasting added or stretched, back to `target`'s shape.

    This is the one place where the gradient of NumPy broadcasting is written: every
    elementwise VJP calls it, so fan-in through a broadcast is summed exactly once.
    """
    if grad is None:
        return None
    shape = grad.type.shape
    extra = len(shape) - len(target.shape)
    axes = list(range(extra))
    for i, d in enumerate(target.shape):
        if d == 1 and shape[extra + i] != 1:
            axes.append(extra + i)
    if axes:
        grad = b.op("sum", grad, axes=tuple(axes), keepdims=False)
    if tuple(grad.type.shape) != tuple(target.shape):
        grad = b.op("reshape", grad, shape=tuple(target.shape))
    if grad.type.dtype != target.dtype:
        grad = b.op("cast", grad, dtype=target.dtype)
    return grad
