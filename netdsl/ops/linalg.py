"""Matrix products: `matmul` with NumPy semantics and optional transposed operands.

`matmul(a, b, transpose_a=False, transpose_b=False)` multiplies the last two axes of `a` and `b`
(each optionally transposed, so that `x @ wᵀ` needs no transposed copy of `w`), broadcasting the
leading batch axes like `np.matmul`; a 1-D operand is a row (left) or column (right) vector whose
axis is dropped from the result.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import ShapeError, TensorType, broadcast_shapes
from .registry import op


def _describe(t: TensorType, transposed: bool) -> str:
    return f"{t}ᵀ" if transposed else str(t)


def _operands(a: TensorType, b: TensorType, transpose_a: bool, transpose_b: bool):
    """Check operand types; return (batch_a, m, k, batch_b, k2, n) with transposes applied."""
    text = f"{_describe(a, transpose_a)} @ {_describe(b, transpose_b)}"
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"matmul needs operands of rank 1 or more: {text}",
                         hint="use `*` to multiply by a scalar")
    if not (a.dtype.is_float and b.dtype.is_float):
        raise ShapeError(f"matmul expects floating-point operands: {text}",
                         hint="convert first: cast(x, f32)")
    if a.dtype != b.dtype:
        raise ShapeError(f"matmul: element types differ: {text}", hint="cast one operand")
    if (transpose_a and a.rank == 1) or (transpose_b and b.rank == 1):
        raise ShapeError(f"matmul: a vector cannot be transposed: {text}")
    m, k = (1, a.shape[0]) if a.rank == 1 else a.shape[-2:]
    k2, n = (b.shape[0], 1) if b.rank == 1 else b.shape[-2:]
    if transpose_a:
        m, k = k, m
    if transpose_b:
        k2, n = n, k2
    if k != k2:
        raise ShapeError(f"matmul: inner dimensions differ: {text} ({k} vs {k2})",
                         hint="the last axis of the left operand must equal the "
                              "second-to-last axis of the right operand")
    return a.shape[:-2], m, k, b.shape[:-2], n, text


def _matmul_vjp_core(b, g, a2, b2, transpose_a, transpose_b):
    """Gradients of g = op(a2) @ op(b2) for operands of rank >= 2 (not yet un-broadcast)."""
    mm = lambda x, y, ta=False, tb=False: b.op("matmul", x, y, transpose_a=ta, transpose_b=tb)
    if not transpose_a:
        ga = mm(g, b2) if transpose_b else mm(g, b2, tb=True)
    elif not transpose_b:
        ga = mm(b2, g, tb=True)
    else:
        ga = mm(b2, g, ta=True, tb=True)
    if b2.rank == 2 and a2.rank > 2 and not transpose_a and \
            isinstance(a2.shape[-1], int) and isinstance(g.shape[-1], int):
        # [..., M, K] @ [K, N]: the weight gradient is one (P, K)ᵀ @ (P, N) product over all
        # batch rows instead of a batched product followed by a sum over the batch.
        a_flat = b.op("reshape", a2, shape=(-1, a2.shape[-1]))
        g_flat = b.op("reshape", g, shape=(-1, g.shape[-1]))
        gb = mm(g_flat, a_flat, ta=True) if transpose_b else mm(a_flat, g_flat, ta=True)
    elif not transpose_a:
        gb = mm(g, a2, ta=True) if transpose_b else mm(a2, g, ta=True)
    else:
        gb = mm(g, a2, ta=True, tb=True) if transpose_b else mm(a2, g)
    return ga, gb


def _sum_to(b, grad, promoted, value):
    """Sum a gradient over the batch axes broadcasting added or stretched (shape of `promoted`,
    the operand as a matrix), then reshape it to `value` (the `like` form of reshape, so no
    symbolic dims end up in attributes)."""
    extra = grad.rank - promoted.rank
    axes = tuple(range(extra)) + tuple(extra + i for i, d in enumerate(promoted.shape)
                                       if d == 1 and grad.shape[extra + i] != 1)
    if axes:
        grad = b.op("sum", grad, axes=axes, keepdims=False)
    if tuple(grad.shape) != tuple(value.shape):
        grad = b.op("reshape", grad, value)
    return grad


@op("matmul")
class MatMul:
    """Matrix product with NumPy's matmul broadcasting; attrs transpose_a/transpose_b (bool)
    transpose the last two axes of an operand without copying it."""
    traits = {"matmul", "pure"}

    def infer(a, b, transpose_a=False, transpose_b=False):
        batch_a, m, _, batch_b, n, text = _operands(a, b, transpose_a, transpose_b)
        try:
            batch = broadcast_shapes(batch_a, batch_b)
        except ShapeError:
            raise ShapeError(f"matmul: batch dimensions do not broadcast: {text}",
                             hint="leading axes must be equal or 1") from None
        shape = tuple(batch) + ((m,) if a.rank > 1 else ()) + ((n,) if b.rank > 1 else ())
        return TensorType(a.dtype, shape)

    def reference(a, b, transpose_a=False, transpose_b=False):
        if transpose_a:
            a = np.swapaxes(a, -1, -2)
        if transpose_b:
            b = np.swapaxes(b, -1, -2)
        return np.matmul(a, b)

    def vjp(b, grads, inputs, outputs, transpose_a=False, transpose_b=False):
        g = grads[0]
        if g is None:
            return None, None
        x, y = inputs
        # Vectors become [1, K] / [K, 1] matrices so that one rule covers every rank.
        x2 = x if x.rank >= 2 else b.op("expand_dims", x, axes=(0,))
        y2 = y if y.rank >= 2 else b.op("expand_dims", y, axes=(1,))
        if x.rank == 1 or y.rank == 1:
            rank = max(x2.rank, y2.rank)
            axes = ((rank - 2,) if x.rank == 1 else ()) + ((rank - 1,) if y.rank == 1 else ())
            g = b.op("expand_dims", g, axes=axes)
        ga, gb = _matmul_vjp_core(b, g, x2, y2, transpose_a, transpose_b)
        return _sum_to(b, ga, x2, x), _sum_to(b, gb, y2, y)

    def examples():
        from ..ir.types import DType
        f32 = DType.f32
        T = lambda *shape: TensorType(f32, shape)
        return [
            ((T(3, 4), T(4, 5)), {}),
            ((T(2, 3, 4), T(4, 5)), {}),
            ((T(2, 3, 4), T(5, 4)), {"transpose_b": True}),
            ((T(4, 3), T(4, 5)), {"transpose_a": True}),
            ((T(2, 1, 3, 4), T(3, 5, 4)), {"transpose_b": True}),
            ((T(2, 4, 3), T(2, 5, 4)), {"transpose_a": True, "transpose_b": True}),
            ((T(4,), T(4, 5)), {}),
            ((T(2, 3, 4), T(4,)), {}),
            ((T(4,), T(4,)), {}),
        ]
