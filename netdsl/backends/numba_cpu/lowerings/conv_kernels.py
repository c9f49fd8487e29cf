"""Numba kernels of conv2d and its gradients: im2col unfolding plus one gemm per chunk (BLAS
through linalg.matmul_2d, with its thread policy by size, or loops for few output channels).

Kept apart from the lowerings in conv.py so each file stays readable; they call these through
`ctx.use`.  BLAS is never called inside a parallel region: the `_parallel`
variants unfold a chunk's images with `prange`, then multiply outside it.
"""
from __future__ import annotations

import numpy as np
from numba import prange
from numba import uint64 as u64

from ..jit import njit
from ..separate import separately
from .linalg import matmul_2d


@njit(cache=True, fastmath=True)
def im2col(padded, cols, col0, kh, kw, sh, sw, dh, dw, ho, wo, transpose):
    """cols[(c, i, j), col0 + (y, x)] = padded[c, y*sh + i*dh, x*sw + j*dw], or with
    `transpose` (col2im) padded[...] += cols[...].

    Reading a zero-padded copy keeps the inner loop free of bounds tests, and whole-array
    indexing (Numba builds per-row slices slowly) made this 10x faster.  Inner indices are
    unsigned (`u64`) so Numba emits no negative-index wraparound test and LLVM vectorises the
    copy (4x); callers pass literal 1s for unit stride/dilation (1.5x more).  The other kernels
    use `u64` in their inner loops for the same reason."""
    row = 0
    for c in range(padded.shape[0]):
        for i in range(kh):
            for j in range(kw):
                for y in range(ho):
                    source, base = y * sh + i * dh, col0 + y * wo
                    if transpose:
                        for xx in range(wo):
                            padded[c, source, u64(xx * sw + j * dw)] += cols[row, u64(base + xx)]
                    else:
                        for xx in range(wo):
                            cols[row, u64(base + xx)] = padded[c, source, u64(xx * sw + j * dw)]
                row += 1


@njit(cache=True, fastmath=True)
def unfold(image, n, c0, padded, cols, col0, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, back):
    """im2col of image n's channel group c0.. via the interior of `padded` (rows/columns no
    window reaches are dropped; the border is zeroed by the caller), or with `back` col2im into
    `padded` and its interior written to the image (pixels no window reaches get 0)."""
    if back:
        padded[:] = 0
    else:
        for c in range(padded.shape[0]):
            for y in range(min(image.shape[2], padded.shape[1] - pt)):
                for xx in range(min(image.shape[3], padded.shape[2] - pl)):
                    padded[c, pt + y, u64(pl + xx)] = image[n, c0 + c, y, xx]
    if sh == 1 and sw == 1 and dh == 1 and dw == 1:
        im2col(padded, cols, col0, kh, kw, 1, 1, 1, 1, ho, wo, back)
    else:
        im2col(padded, cols, col0, kh, kw, sh, sw, dh, dw, ho, wo, back)
    if back:
        for c in range(padded.shape[0]):
            for y in range(image.shape[2]):
                for xx in range(image.shape[3]):
                    inside = pt + y < padded.shape[1] and pl + xx < padded.shape[2]
                    image[n, c0 + c, y, xx] = padded[c, pt + y, u64(pl + xx)] if inside else 0.0


@njit(cache=True, inline="always")
def images_per_chunk(n_images, column_elements):
    """Images whose columns share one gemm: enough for an efficient product, few enough for
    the column buffer (~1 MB) to stay in cache and for at least 8 chunks to run in parallel."""
    return max(1, min(262144 // max(1, column_elements), (n_images + 7) // 8))


@njit(cache=True, fastmath=True)
def side_by_side(a3, first, count, o0, chunk, gather):
    """chunk[o, i*P + q] = a3[first + i, o0 + o, q] (gather) or the reverse assignment: a chunk
    of images' [O, P] planes side by side, as one gemm operand or result."""
    p = a3.shape[2]
    for i in range(count):
        for o in range(chunk.shape[0]):
            for q in range(p):
                if gather:
                    chunk[o, u64(i * p + q)] = a3[first + i, o0 + o, q]
                else:
                    a3[first + i, o0 + o, q] = chunk[o, u64(i * p + q)]


# The products of a convolution with few output channels per group (LeNet's 6 and 16) run in
# the loops below instead of BLAS: OpenBLAS packs the whole column operand for a product with
# 6 result rows, and measured on one core the loops took half the time ([6, 25] @ [25, 6272]:
# 74 -> 37 us; [16, 150] @ [150, 800]: 72 -> 50 us) and a third for the weight gradient's
# a @ bᵀ ([6, 6272] @ [6272, 25]: 99 -> 33 us).  From 32 rows on BLAS is faster (106 against
# 122 us at [32, 150] @ [150, 800]).  They also keep these products off BLAS's threads, whose
# hand-over made a 2-thread conv1 forward 11 ms against 0.8 ms on one on a busy machine.
SMALL_ROWS = 16
_LOOP_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}   # as generated code (codegen.py)


@njit(cache=True, fastmath=_LOOP_FASTMATH)
def product(a, b, out):
    """out = a @ b: loops over the rows of `out` when it has at most SMALL_ROWS, else BLAS."""
    if a.shape[0] > SMALL_ROWS:
        _matmul_2d(a, b, out, False, False)
        return
    for i in range(a.shape[0]):
        for q in range(b.shape[1]):
            out[i, q] = 0.0
        for k in range(a.shape[1]):
            scale = a[i, k]
            for q in range(b.shape[1]):
                out[i, q] += scale * b[k, q]


@njit(cache=True, fastmath=_LOOP_FASTMATH)
def product_transposed(a, b, out):
    """out = a @ bᵀ: a dot product of rows per element when `out` has at most SMALL_ROWS rows
    (the sum over the long axis vectorises), else BLAS."""
    if a.shape[0] > SMALL_ROWS:
        _matmul_2d(a, b, out, False, True)
        return
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            total = a[i, 0] * b[j, 0]          # typed like the operands; the axis is not empty
            for q in range(1, a.shape[1]):
                total += a[i, q] * b[j, q]
            out[i, j] = total


# The kernels call their loop helpers separately (numba_cpu/separate.py): each helper is compiled
# once, not again inside each of the four kernels that call it (a cold LeNet compile spent ~3 s
# compiling these helpers' code into their callers).  A call costs nanoseconds; an unfold or a
# product, microseconds.
_unfold, _side_by_side, _product, _product_transposed, _matmul_2d = map(
    separately, (unfold, side_by_side, product, product_transposed, matmul_2d))

# Two variants of each convolution kernel, with the same chunks and the same gemms (so the same
# numbers): a serial one, and a `_parallel` one whose im2col / col2im and scatter loops run in
# prange over the images of a chunk.  BLAS is always called outside the parallel regions
# (OpenBLAS runs its own threads; called inside prange it warned "Detect OpenMP Loop and this
# application may hang" and oversubscribed the cores).  The code generator picks the parallel
# variant only for large tensors (EmitContext.large); on two busy cores the barriers of small
# parallel regions cost more than they save, and a parallel kernel is slow to compile.

@njit(cache=True, fastmath=True, inline="always")
def _padded(cg, ho, wo, kh, kw, sh, sw, dh, dw, dtype):
    return np.zeros((cg, (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1),
                    dtype=dtype)


@njit(cache=True, fastmath=True)
def conv2d_kernel(images, w, planes, sh, sw, pt, pl, dh, dw, groups, back):
    """Forward (back=False): planes = conv2d(images, w), per chunk of images im2col side by side
    then one gemm per group.  Input gradient (back=True): images = wᵀ @ planes per chunk in one
    gemm, then col2im."""
    n_images = images.shape[0]
    o_total, cg, kh, kw = w.shape
    og = o_total // groups
    ho, wo = planes.shape[2], planes.shape[3]
    k, p = cg * kh * kw, ho * wo
    w2 = w.reshape(o_total, k)
    planes3 = planes.reshape(n_images, o_total, p)
    per = images_per_chunk(n_images, k * p)
    padded = _padded(cg, ho, wo, kh, kw, sh, sw, dh, dw, planes.dtype)
    for t in range((n_images + per - 1) // per):
        first = t * per
        count = min(per, n_images - first)
        cols = np.empty((k, count * p), dtype=planes.dtype)
        chunk = np.empty((og, count * p), dtype=planes.dtype)
        for grp in range(groups):
            if back:
                _side_by_side(planes3, first, count, grp * og, chunk, True)
                _matmul_2d(w2[grp * og:(grp + 1) * og], chunk, cols, True, False)
            for i in range(count):
                _unfold(images, first + i, grp * cg, padded, cols, i * p,
                        kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, back)
            if not back:
                _product(w2[grp * og:(grp + 1) * og], cols, chunk)
                _side_by_side(planes3, first, count, grp * og, chunk, False)


@njit(cache=True, fastmath=True)
def _side_by_side_one(a3, first, i, o0, chunk, gather):
    """side_by_side for image i of the chunk only (the parallel kernels' loop body)."""
    p = a3.shape[2]
    for o in range(chunk.shape[0]):
        for q in range(p):
            if gather:
                chunk[o, u64(i * p + q)] = a3[first + i, o0 + o, q]
            else:
                a3[first + i, o0 + o, q] = chunk[o, u64(i * p + q)]


@njit(cache=True, parallel=True, fastmath=True)
def conv2d_kernel_parallel(images, w, planes, sh, sw, pt, pl, dh, dw, groups, back):
    """conv2d_kernel with each chunk's im2col/col2im and scatter in parallel over its images;
    the gemms (the same as conv2d_kernel's) between the parallel regions."""
    n_images = images.shape[0]
    o_total, cg, kh, kw = w.shape
    og = o_total // groups
    ho, wo = planes.shape[2], planes.shape[3]
    k, p = cg * kh * kw, ho * wo
    w2 = w.reshape(o_total, k)
    planes3 = planes.reshape(n_images, o_total, p)
    per = images_per_chunk(n_images, k * p)
    for t in range((n_images + per - 1) // per):
        first = t * per
        count = min(per, n_images - first)
        cols = np.empty((k, count * p), dtype=planes.dtype)
        chunk = np.empty((og, count * p), dtype=planes.dtype)
        for grp in range(groups):
            if back:
                for i in prange(count):
                    _side_by_side_one(planes3, first, np.int64(i), grp * og, chunk, True)
                _matmul_2d(w2[grp * og:(grp + 1) * og], chunk, cols, True, False)
            for i in prange(count):
                padded = _padded(cg, ho, wo, kh, kw, sh, sw, dh, dw, planes.dtype)
                _unfold(images, first + np.int64(i), grp * cg, padded, cols, np.int64(i) * p,
                        kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, back)
            if not back:
                _product(w2[grp * og:(grp + 1) * og], cols, chunk)
                for i in prange(count):
                    _side_by_side_one(planes3, first, np.int64(i), grp * og, chunk, False)


@njit(cache=True, fastmath=True, inline="always")
def _workers(n_images, o_total, k, p):
    """(images per chunk, chunks, workers): chunk t adds into partial sum t % workers.  A fixed
    count (get_num_threads() would stop Numba caching the kernels), bounded so the partial sums
    stay small; the serial and parallel kernels share it, so their sums are the same."""
    per = images_per_chunk(n_images, k * p)
    chunks = (n_images + per - 1) // per
    workers = max(1, min(chunks, 16, 4_000_000 // max(1, o_total * k)))
    return per, chunks, workers


@njit(cache=True, fastmath=True)
def _accumulate(partial, worker, o0, values):
    """partial[worker, o0:o0 + O] += values, in loops: slice assignment would compile Numba's
    shape-error formatting (seconds; see numba_cpu/support.assign)."""
    for o in range(values.shape[0]):
        for j in range(values.shape[1]):
            partial[worker, o0 + o, j] += values[o, j]


@njit(cache=True, fastmath=True)
def _sum_partials(partial, dw_out):
    """dw_out = partial[0] + partial[1] + ... (in that order)."""
    o_total, k = partial.shape[1], partial.shape[2]
    flat = dw_out.reshape(o_total, k)
    for o in range(o_total):
        for j in range(k):
            flat[o, j] = partial[0, o, j]
    for worker in range(1, partial.shape[0]):
        for o in range(o_total):
            for j in range(k):
                flat[o, j] += partial[worker, o, j]


@njit(cache=True, fastmath=True)
def conv2d_backward_weight(x, g, dw_out, sh, sw, pt, pl, dh, dw, groups):
    """dw = Σ_chunks g_chunk @ im2col(x_chunk)ᵀ: per-worker partial sums, then their sum."""
    n_images = x.shape[0]
    o_total, cg, kh, kw = dw_out.shape
    og = o_total // groups
    ho, wo = g.shape[2], g.shape[3]
    k, p = cg * kh * kw, ho * wo
    g3 = g.reshape(n_images, o_total, p)
    per, chunks, workers = _workers(n_images, o_total, k, p)
    partial = np.zeros((workers, o_total, k), dtype=x.dtype)
    padded = _padded(cg, ho, wo, kh, kw, sh, sw, dh, dw, x.dtype)
    result = np.empty((og, k), dtype=x.dtype)
    for worker in range(workers):
        for t in range(worker, chunks, workers):
            first = t * per
            count = min(per, n_images - first)
            gathered = np.empty((og, count * p), dtype=x.dtype)
            cols = np.empty((k, count * p), dtype=x.dtype)
            for grp in range(groups):
                _side_by_side(g3, first, count, grp * og, gathered, True)
                for i in range(count):
                    _unfold(x, first + i, grp * cg, padded, cols, i * p,
                            kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, np.bool_(False))
                _product_transposed(gathered, cols, result)
                _accumulate(partial, worker, grp * og, result)
    _sum_partials(partial, dw_out)


@njit(cache=True, parallel=True, fastmath=True)
def conv2d_backward_weight_parallel(x, g, dw_out, sh, sw, pt, pl, dh, dw, groups):
    """conv2d_backward_weight with each chunk's gather and im2col in parallel over its images;
    the same gemms and partial sums, between the parallel regions."""
    n_images = x.shape[0]
    o_total, cg, kh, kw = dw_out.shape
    og = o_total // groups
    ho, wo = g.shape[2], g.shape[3]
    k, p = cg * kh * kw, ho * wo
    g3 = g.reshape(n_images, o_total, p)
    per, chunks, workers = _workers(n_images, o_total, k, p)
    partial = np.zeros((workers, o_total, k), dtype=x.dtype)
    result = np.empty((og, k), dtype=x.dtype)
    for worker in range(workers):
        for t in range(worker, chunks, workers):
            first = t * per
            count = min(per, n_images - first)
            gathered = np.empty((og, count * p), dtype=x.dtype)
            cols = np.empty((k, count * p), dtype=x.dtype)
            for grp in range(groups):
                for i in prange(count):
                    _side_by_side_one(g3, first, np.int64(i), grp * og, gathered, True)
                    padded = _padded(cg, ho, wo, kh, kw, sh, sw, dh, dw, x.dtype)
                    _unfold(x, first + np.int64(i), grp * cg, padded, cols, np.int64(i) * p,
                            kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, np.bool_(False))
                _product_transposed(gathered, cols, result)
                _accumulate(partial, worker, grp * og, result)
    _sum_partials(partial, dw_out)


# ---------------------------------------------------------------------------------------------
# The ops
