"""Batched matmul for the CPU target: small matrices in a compiled kernel over the batch in
parallel (linalg.matmul_batched_parallel calls it; larger matrices there get one BLAS gemm each).

small_batched computes out[i] = op(a[ia]) @ op(b[ib]) for every matrix of a batch whose axes
broadcast (extent 1), in a `prange` over the batch (Numba's pool, NUMBA_NUM_THREADS threads),
each matrix with i-k-j loops whose innermost loop runs along a row of out and of op(b),
contiguous, so it vectorises; a transposed b is first packed into a [K, N] scratch (one copy per
matrix), a transposed a is read in place (one scalar per (i, k)).

Measured (benchmarks/batched_matmul.py, AVX-512 EPYC, OpenBLAS 0.3.31): on one core this kernel
runs at 0.4-1.0x of one OpenBLAS gemm per matrix on attention's shapes (OpenBLAS's small-matrix
path makes even an 8 x 8 x 8 call ~60 ns), so it pays only where the batch's second core is
free; compiled steps therefore keep one gemm per matrix (linalg.lower_matmul).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..builtins_inline import empty
from ..jit import kernel

# Multiply-adds per matrix (M * N * K) up to which matmul_batched_parallel uses the kernel here:
# up to 64^3 OpenBLAS runs each gemm on one core (2 threads were no faster than 1), so the
# batch's parallelism is all the second core gets; above, BLAS threads each gemm itself.
# Measured with benchmarks/batched_matmul.py --sweep (AVX-512 EPYC, OpenBLAS 0.3.31).
SMALL_WORK = 1 << 18


@kernel(cache=True)
def batch_index(i, a_shape, b_shape, out_shape):
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


@kernel(cache=True, inline="always")
def _at(a, i, kk, transpose_a):
    """op(a)[i, kk]."""
    return a[kk, i] if transpose_a else a[i, kk]


@kernel(cache=True, fastmath={"contract"})
def small_gemm(a, b, out, transpose_a, transpose_b, pack):
    """out = op(a) @ op(b) for small C-contiguous 2-D arrays; `pack` is a [K, N] scratch that
    receives bᵀ when transpose_b (unused otherwise).  Shapes are checked by the caller.

    i-k-j order in blocks of 4 rows and 4 k: the innermost loop runs along rows of out and of
    op(b) (contiguous, vectorised) and does 16 multiply-adds per 4 loads of b and 4 loads and
    stores of out, where one row and one k did 1 per 2 loads and a store, and its set-up (alias
    checks) is paid once per 16 rows of work.  Each out element still sums its k terms in
    order, one fused multiply-add each (`contract`, as BLAS does)."""
    m, n = out.shape[0], out.shape[1]
    k = a.shape[0] if transpose_a else a.shape[1]
    rows = b
    if transpose_b:
        for kk in range(k):
            for j in range(n):
                pack[kk, j] = b[j, kk]
        rows = pack
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
    m4 = m - m % 4
    k4 = k - k % 4
    for i in range(0, m4, 4):
        for kk in range(0, k4, 4):
            s0, s1 = _at(a, i, kk, transpose_a), _at(a, i, kk + 1, transpose_a)
            s2, s3 = _at(a, i, kk + 2, transpose_a), _at(a, i, kk + 3, transpose_a)
            t0, t1 = _at(a, i + 1, kk, transpose_a), _at(a, i + 1, kk + 1, transpose_a)
            t2, t3 = _at(a, i + 1, kk + 2, transpose_a), _at(a, i + 1, kk + 3, transpose_a)
            u0, u1 = _at(a, i + 2, kk, transpose_a), _at(a, i + 2, kk + 1, transpose_a)
            u2, u3 = _at(a, i + 2, kk + 2, transpose_a), _at(a, i + 2, kk + 3, transpose_a)
            v0, v1 = _at(a, i + 3, kk, transpose_a), _at(a, i + 3, kk + 1, transpose_a)
            v2, v3 = _at(a, i + 3, kk + 2, transpose_a), _at(a, i + 3, kk + 3, transpose_a)
            for j in range(n):
                b0, b1, b2, b3 = rows[kk, j], rows[kk + 1, j], rows[kk + 2, j], rows[kk + 3, j]
                out[i, j] = out[i, j] + s0 * b0 + s1 * b1 + s2 * b2 + s3 * b3
                out[i + 1, j] = out[i + 1, j] + t0 * b0 + t1 * b1 + t2 * b2 + t3 * b3
                out[i + 2, j] = out[i + 2, j] + u0 * b0 + u1 * b1 + u2 * b2 + u3 * b3
                out[i + 3, j] = out[i + 3, j] + v0 * b0 + v1 * b1 + v2 * b2 + v3 * b3
        for r in range(i, i + 4):
            _row_tail(a, rows, out, r, k4, k, transpose_a)
    for r in range(m4, m):
        _row_tail(a, rows, out, r, 0, k, transpose_a)


@kernel(cache=True, fastmath={"contract"})
def _row_tail(a, rows, out, i, k0, k1, transpose_a):
    """out[i] += op(a)[i, k0:k1] @ rows[k0:k1] (rows and k left over by the 4 x 4 blocks)."""
    for kk in range(k0, k1):
        scale = _at(a, i, kk, transpose_a)
        for j in range(out.shape[1]):
            out[i, j] += scale * rows[kk, j]


@kernel(cache=True)
def _small_one(a3, b3, out3, a_shape, b_shape, out_shape, i, transpose_a, transpose_b):
    """Output matrix i of the batch by small_gemm, with its own packing scratch."""
    index_a, index_b = batch_index(i, a_shape, b_shape, out_shape)
    k = a3.shape[1] if transpose_a else a3.shape[2]
    pack = empty((k if transpose_b else 0, out3.shape[2] if transpose_b else 0), out3.dtype)
    small_gemm(a3[index_a], b3[index_b], out3[i], transpose_a, transpose_b, pack)


@kernel(cache=True, parallel=True)
def small_batched(a3, b3, out3, a_shape, b_shape, out_shape, transpose_a, transpose_b):
    """out3[i] = op(a3[ia]) @ op(b3[ib]) for every output matrix i by small_gemm, in a prange
    over the batch (Numba's pool: NUMBA_NUM_THREADS threads, the runtime's setting)."""
    for i in prange(out3.shape[0]):
        _small_one(a3, b3, out3, a_shape, b_shape, out_shape, np.int64(i), transpose_a,
                   transpose_b)
