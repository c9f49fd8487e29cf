"""netdsl's own float32 product out = a @ bᵀ, for processors whose BLAS runs here without the
vector width the processor has (blas_library.own_sgemm: an AVX-512 processor, the BLAS on AVX2
kernels).

a @ bᵀ, with a [M, K] and b [N, K] both contiguous along K, is what a dense layer's forward
computes (x @ Wᵀ, W stored [out, in]) and a recurrent step's h @ W_hhᵀ.  Every output element
is a dot product of two contiguous rows, so the kernel takes 4 rows of a and 4 of b at a time
and sums their 16 products along K in one loop, which LLVM vectorises along K at the
processor's width (16 float32 lanes with AVX-512, `reassoc`: partial sums per lane, added at
the end).  On the AMD EPYC (Zen 5) of 2026-12-05, whose environment held OpenBLAS to its
Haswell kernels and where MKL runs AVX2 kernels, one thread: [128, 784] @ [256, 784]ᵀ 265 us
against MKL's 502 (194 against 102 GFLOP/s), [128, 256] @ [256, 256]ᵀ 90 against 167 us,
[32, 128] @ [512, 128]ᵀ (an LSTM step's) 29 against 47 us; OpenBLAS's own AVX-512 (SkylakeX)
kernels ran the first 266 us.

The sums differ from BLAS's in rounding only (each element is the same K products, summed in
16 partial sums instead of one running sum), and do not depend on the thread count: a block of
rows or columns (matmul_2d_parallel) sums each element exactly as the whole product does.
"""
from __future__ import annotations

import numpy as np
from numba import carray, cfunc, types

from .jit import kernel

# Reassociation lets LLVM keep a vector of partial sums per dot product; contraction makes each
# multiply-add one fused instruction.  No assumption about NaN or infinity: they propagate.
_FLAGS = {"reassoc", "contract"}


@kernel(cache=True, fastmath=_FLAGS, inline="always")
def _dot(a, i, b, j, k):
    """a[i] · b[j] over the first k elements."""
    total = np.float32(0)
    for kk in range(k):
        total += a[i, kk] * b[j, kk]
    return total


@kernel(cache=True, fastmath=_FLAGS)
def gemm_nt(a, b, out, m0, m1, n0, n1):
    """out[m0:m1, n0:n1] = a[m0:m1] @ b[n0:n1]ᵀ for C-contiguous float32 a [M, K], b [N, K]
    and out [M, N] (shapes checked by the caller): tiles of 4 x 4 outputs, the rows and
    columns left over one dot product each."""
    k = a.shape[1]
    i = m0
    while i + 4 <= m1:
        j = n0
        while j + 4 <= n1:
            s00 = s01 = s02 = s03 = np.float32(0)
            s10 = s11 = s12 = s13 = np.float32(0)
            s20 = s21 = s22 = s23 = np.float32(0)
            s30 = s31 = s32 = s33 = np.float32(0)
            for kk in range(k):
                a0, a1, a2, a3 = a[i, kk], a[i + 1, kk], a[i + 2, kk], a[i + 3, kk]
                b0, b1, b2, b3 = b[j, kk], b[j + 1, kk], b[j + 2, kk], b[j + 3, kk]
                s00 += a0 * b0
                s01 += a0 * b1
                s02 += a0 * b2
                s03 += a0 * b3
                s10 += a1 * b0
                s11 += a1 * b1
                s12 += a1 * b2
                s13 += a1 * b3
                s20 += a2 * b0
                s21 += a2 * b1
                s22 += a2 * b2
                s23 += a2 * b3
                s30 += a3 * b0
                s31 += a3 * b1
                s32 += a3 * b2
                s33 += a3 * b3
            out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s00, s01, s02, s03
            out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3] = \
                s10, s11, s12, s13
            out[i + 2, j], out[i + 2, j + 1], out[i + 2, j + 2], out[i + 2, j + 3] = \
                s20, s21, s22, s23
            out[i + 3, j], out[i + 3, j + 1], out[i + 3, j + 2], out[i + 3, j + 3] = \
                s30, s31, s32, s33
            j += 4
        for r in range(i, i + 4):
            for jj in range(j, n1):
                out[r, jj] = _dot(a, r, b, jj, k)
        i += 4
    for r in range(i, m1):
        for jj in range(n0, n1):
            out[r, jj] = _dot(a, r, b, jj, k)



# What compiled products call (linalg._gemm_nt_own, by the symbol blas_library.GEMM_NT): a C
# function of pointers to the three C-contiguous arrays, their sizes and the block, bound by
# symbol like the BLAS's gemm, so that only a process that runs it compiles it (or loads it from
# Numba's cache): blas_library.bind imports this module where own_sgemm() holds, and every
# product's kernel calls the symbol without typing gemm_nt into its own compile.
SIGNATURE = types.void(types.CPointer(types.float32), types.CPointer(types.float32),
                       types.CPointer(types.float32), types.int64, types.int64, types.int64,
                       types.int64, types.int64, types.int64, types.int64)


@cfunc(SIGNATURE, cache=True, fastmath=_FLAGS)
def gemm_nt_c(a, b, out, m, n, k, m0, m1, n0, n1):
    """gemm_nt of a [m, k], b [n, k] and out [m, n] given by their first elements."""
    gemm_nt(carray(a, (m, k)), carray(b, (n, k)), carray(out, (m, n)), m0, m1, n0, n1)


__all__ = ["SIGNATURE", "gemm_nt", "gemm_nt_c"]
