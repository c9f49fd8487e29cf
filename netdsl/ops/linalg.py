"""Matrix products: `matmul` with NumPy semantics and optional transposed operands.

`matmul(a, b, transpose_a=False, transpose_b=False)` multiplies the last two axes of `a` and `b`
(each optionally transposed, so that `x @ wᵀ` needs no transposed copy of `w`), broadcasting the
leading batch axes like `np.matmul`; a 1-D operand is a row (left) or column (right) vector whose
axis is dropped from the result.  The compiled CPU kernels call BLAS through `np.dot` in njit.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

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


@njit(cache=True)
def matmul_2d(a, b, out):
    """out = a @ b for 2-D operands (either may be a transposed view): one BLAS gemm."""
    np.dot(a, b, out)


@njit(cache=True)
def _batch_index(i, a_shape, b_shape, out_shape):
    """The a and b matrices of output matrix i (batch axes of extent 1 broadcast)."""
    rest = np.int64(i)      # prange indices may be unsigned; keep the arithmetic integral
    index_a = 0
    index_b = 0
    stride_a = 1
    stride_b = 1
    for d in range(len(out_shape) - 3, -1, -1):
        position = rest % out_shape[d]
        rest //= out_shape[d]
        if a_shape[d] != 1:
            index_a += position * stride_a
        if b_shape[d] != 1:
            index_b += position * stride_b
        stride_a *= a_shape[d]
        stride_b *= b_shape[d]
    return index_a, index_b


@njit(cache=True, parallel=True)
def matmul_batched(a, b, out, transpose_a, transpose_b):
    """Batched gemm; a, b, out have equal rank >= 3, batch axes of a/b are 1 or out's extent."""
    rank = out.ndim
    count_a = 1
    count_b = 1
    count = 1
    for d in range(rank - 2):
        count_a *= a.shape[d]
        count_b *= b.shape[d]
        count *= out.shape[d]
    a3 = a.reshape(count_a, a.shape[rank - 2], a.shape[rank - 1])
    b3 = b.reshape(count_b, b.shape[rank - 2], b.shape[rank - 1])
    out3 = out.reshape(count, out.shape[rank - 2], out.shape[rank - 1])
    for i in prange(count):
        index_a, index_b = _batch_index(i, a.shape, b.shape, out.shape)
        if transpose_a and transpose_b:
            np.dot(a3[index_a].T, b3[index_b].T, out3[i])
        elif transpose_a:
            np.dot(a3[index_a].T, b3[index_b], out3[i])
        elif transpose_b:
            np.dot(a3[index_a], b3[index_b].T, out3[i])
        else:
            np.dot(a3[index_a], b3[index_b], out3[i])


def _reshape_expr(name: str, dims: list[str]) -> str:
    return f"{name}.reshape({', '.join(dims)})"


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

    def emit_numba(ctx, node, ins, outs):
        a_type, b_type = (v.type for v in node.inputs)
        ta = bool(node.attrs.get("transpose_a", False))
        tb = bool(node.attrs.get("transpose_b", False))
        a, b, out = ins[0], ins[1], outs[0]
        ra, rb, ro = a_type.rank, b_type.rank, node.outputs[0].rank
        # Promote vectors to matrices (views, no copies).
        if ra == 1:
            a = _reshape_expr(a, ["1", f"{a}.shape[0]"])
        if rb == 1:
            b = _reshape_expr(b, [f"{b}.shape[0]", "1"])
        rows = "1" if ra == 1 else f"{out}.shape[{ro - 1 - (rb > 1)}]"
        cols = "1" if rb == 1 else f"{out}.shape[{ro - 1}]"
        t = lambda expr, flag: f"{expr}.T" if flag else expr
        if ra <= 2 and rb <= 2:
            out2 = out if ro == 2 else _reshape_expr(out, [rows, cols])
            return [f"{ctx.use(matmul_2d)}({t(a, ta)}, {t(b, tb)}, {out2})"]
        if rb <= 2 and not ta:
            # [..., M, K] @ [K, N]: all batch rows in one gemm on a (P, K) view.
            flat = " * ".join(f"{ins[0]}.shape[{d}]" for d in range(ra - 1))
            a2 = _reshape_expr(ins[0], [flat, f"{ins[0]}.shape[{ra - 1}]"])
            out2 = _reshape_expr(out, [flat, cols])
            return [f"{ctx.use(matmul_2d)}({a2}, {t(b, tb)}, {out2})"]
        # General batched case: give a, b and out the same rank with leading 1-axes.
        rank = max(ra, rb, 2)
        nbatch = rank - 2
        out_batch = [f"{out}.shape[{d}]" for d in range(ro - (ra > 1) - (rb > 1))]
        pad = lambda dims: ["1"] * (rank - len(dims)) + dims
        a_dims = pad([f"{ins[0]}.shape[{d}]" for d in range(ra)] if ra > 1
                     else ["1", f"{ins[0]}.shape[0]"])
        b_dims = pad([f"{ins[1]}.shape[{d}]" for d in range(rb)] if rb > 1
                     else [f"{ins[1]}.shape[0]", "1"])
        out_dims = ["1"] * (nbatch - len(out_batch)) + out_batch + [rows, cols]
        return [f"{ctx.use(matmul_batched)}({_reshape_expr(ins[0], a_dims)}, "
                f"{_reshape_expr(ins[1], b_dims)}, {_reshape_expr(out, out_dims)}, "
                f"{ta}, {tb})"]

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
