"""Numba kernels of conv2d and its gradients: im2col unfolding plus one BLAS gemm per chunk of
images (through linalg.matmul_2d, with its thread policy by size).

Kept apart from the lowerings in conv.py so each file stays readable; they call these through
`ctx.use`.  The `_parallel` variants run whole chunks on Numba's threads, with BLAS held at one
thread meanwhile (see the note above conv2d_kernel).
"""
from __future__ import annotations

import numpy as np
from numba import uint64 as u64

from ..blas_threads import blas_threads
from ..builtins_inline import empty, max2, min2, zeros
from ..jit import kernel
from ..parallel_calls import in_parallel
from ..separate import separately
from ..support import view as _view
from .linalg import matmul_2d


def _im2col_kernel(name: str, unit: bool):
    """The kernel `name`: cols[(c, i, j), col0 + (y, x)] = padded[c, y*sh + i*dh, x*sw + j*dw],
    or with `transpose` (col2im) padded[...] += cols[...]; `unit`: at unit stride and dilation,
    whatever `sh`, `sw`, `dh` and `dw` say.

    Reading a zero-padded copy keeps the inner loop free of bounds tests, and whole-array
    indexing (Numba builds per-row slices slowly) made this 10x faster.  Inner indices are
    unsigned (`u64`) so Numba emits no negative-index wraparound test and LLVM vectorises the
    copy (4x); the other kernels use `u64` in their inner loops for the same reason.  With
    constant 1s for unit stride and dilation the copy runs 1.5x faster still: `unit` is a
    closure constant, which Numba folds, so `im2col_unit` is the same loops with literal 1s.
    It used to call im2col with literal 1s, which compiled im2col as well (0.2 s of LeNet-5's
    cold compile, whose convolutions are all unit); taken in through Numba's IR instead
    (`inline="always"`) the loops ran slower, LeNet's second convolution's input gradient at
    batch 64 in 620 against 490 us (one thread)."""
    def loops(padded, cols, col0, kh, kw, sh, sw, dh, dw, ho, wo, transpose):
        if unit:
            sh, sw, dh, dw = 1, 1, 1, 1
        row = 0
        for c in range(padded.shape[0]):
            for i in range(kh):
                for j in range(kw):
                    for y in range(ho):
                        source, base = y * sh + i * dh, col0 + y * wo
                        if transpose:
                            for xx in range(wo):
                                padded[c, source, u64(xx * sw + j * dw)] += \
                                    cols[row, u64(base + xx)]
                        else:
                            for xx in range(wo):
                                cols[row, u64(base + xx)] = \
                                    padded[c, source, u64(xx * sw + j * dw)]
                    row += 1
    # Named for separate.py's symbols and locks and for Numba's cache files: two functions.
    loops.__name__ = loops.__qualname__ = name
    return kernel(cache=True, fastmath=True)(loops)


im2col = _im2col_kernel("im2col", unit=False)
im2col_unit = _im2col_kernel("im2col_unit", unit=True)


# unfold calls the copies separately: taken into unfold's own code (inlined beside its
# padding loops) the same copies ran slower, LeNet's second convolution at batch 64 in
# 520-540 us against 430-440 (forward; the weight gradient 740 against 625; one thread).
_im2col_unit, _im2col = separately(im2col_unit), separately(im2col)


@kernel(cache=True, fastmath=True)
def unfold(image, n, c0, padded, cols, col0, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, back,
           strided):
    """im2col of image n's channel group c0.. via the interior of `padded` (rows/columns no
    window reaches are dropped; the border is zeroed by the caller), or with `back` col2im into
    `padded` and its interior written to the image (pixels no window reaches get 0).
    `strided` is None for unit stride and dilation (see below), else np.bool_(True)."""
    if back:
        padded[:] = 0
    else:
        for c in range(padded.shape[0]):
            for y in range(min2(image.shape[2], padded.shape[1] - pt)):
                for xx in range(min2(image.shape[3], padded.shape[2] - pl)):
                    padded[c, pt + y, u64(pl + xx)] = image[n, c0 + c, y, xx]
    if strided is None:
        _im2col_unit(padded, cols, col0, kh, kw, 1, 1, 1, 1, ho, wo, back)
    else:
        _im2col(padded, cols, col0, kh, kw, sh, sw, dh, dw, ho, wo, back)
    if back:
        for c in range(padded.shape[0]):
            for y in range(image.shape[2]):
                for xx in range(image.shape[3]):
                    inside = pt + y < padded.shape[1] and pl + xx < padded.shape[2]
                    image[n, c0 + c, y, xx] = padded[c, pt + y, u64(pl + xx)] if inside else 0.0


@kernel(cache=True, inline="always")
def images_per_chunk(n_images, column_elements):
    """Images whose columns share one gemm: enough for an efficient product, few enough for
    the column buffer (~1 MB) to stay in cache and for at least 8 chunks to run in parallel."""
    return max2(1, min2(262144 // max2(1, column_elements), (n_images + 7) // 8))


@kernel(cache=True, fastmath=True)
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


# Every product of a convolution is one BLAS gemm.  Products with few result rows (LeNet's 6 and
# 16 channels) once ran in compiled loops, measured 2x faster than OpenBLAS on an AMD EPYC; on
# this Intel Xeon (Sapphire Rapids, OpenBLAS's SkylakeX kernels, one thread) BLAS is 2.5-4.5x
# faster than those loops on every LeNet shape ([6, 25] @ [25, 6272]: 14 against 61 us;
# [16, 150] @ [150, 800]: 50 against 140 us; a @ bᵀ [6, 6272] @ [6272, 25]: 25 against 68 us)
# and the LeNet step took 4.3-4.7 ms against 5.7, so the loops are gone.

# Unit stride and dilation (LeNet's convolutions, a ResNet's 3x3s) take im2col with literal 1s,
# 1.5x faster.  The lowering says which a convolution has: the kernels' last argument,
# `strided`, is None for unit stride and dilation and np.bool_(True) otherwise.  Numba compiles
# a specialisation per type and drops the branch a None rules out, so a model compiles only
# the im2col it runs (a test at run time compiled both: 0.26 s more of a cold LeNet).

# The kernels call their helpers separately (numba_cpu/separate.py): each helper is compiled
# once, not again inside each of the kernels that call it (a cold LeNet compile spent ~3 s
# compiling these helpers' code into their callers).  A call costs nanoseconds; an unfold or a
# product, microseconds.
_unfold, _side_by_side, _matmul_2d = map(separately, (unfold, side_by_side, matmul_2d))


@kernel(cache=True)
def _padded_shape(geometry):
    """The shape of one channel group's image as far as the windows reach, which unfold reads
    zero-padded (`geometry` as conv_chunk's)."""
    cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, groups = geometry
    return (cg, (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1)


@kernel(cache=True, fastmath=True)
def conv_chunk(t, images, w2, planes3, per, geometry, back, strided):
    """Chunk t of conv2d_kernel: `per` images from image t * per (fewer in the last).  Forward
    (back=False): im2col side by side, one gemm per group, the result scattered into planes3.
    Input gradient (back=True): the planes gathered side by side, wᵀ @ them in one gemm per
    group, col2im.  `geometry` is (cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, groups)."""
    cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, groups = geometry
    first = np.int64(t) * per
    count = min2(per, images.shape[0] - first)
    og = w2.shape[0] // groups
    p = ho * wo
    cols = empty((w2.shape[1], count * p), planes3.dtype)
    chunk = empty((og, count * p), planes3.dtype)
    padded = zeros(_padded_shape(geometry), planes3.dtype)
    for grp in range(groups):
        weights = w2[grp * og:(grp + 1) * og]
        if back:
            _side_by_side(planes3, first, count, grp * og, chunk, True)
            _matmul_2d(weights, chunk, cols, True, False)
        for i in range(count):
            _unfold(images, first + i, grp * cg, padded, cols, i * p,
                    kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, back, strided)
        if not back:
            _matmul_2d(weights, cols, chunk, False, False)
            _side_by_side(planes3, first, count, grp * og, chunk, False)


@kernel(cache=True, fastmath=True)
def weight_worker(worker, x, g3, partial, per, chunks, workers, geometry, strided):
    """conv2d_backward_weight's share of one worker: partial[worker] += g_chunk @ im2col(x_chunk)ᵀ
    over chunks worker, worker + workers, ...; `geometry` as conv_chunk's."""
    cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, groups = geometry
    padded = zeros(_padded_shape(geometry), x.dtype)
    og = partial.shape[1] // groups
    k, p = partial.shape[2], ho * wo
    result = empty((og, k), x.dtype)
    for t in range(np.int64(worker), chunks, workers):
        first = t * per
        count = min2(per, x.shape[0] - first)
        gathered = empty((og, count * p), x.dtype)
        cols = empty((k, count * p), x.dtype)
        for grp in range(groups):
            _side_by_side(g3, first, count, grp * og, gathered, True)
            for i in range(count):
                _unfold(x, first + i, grp * cg, padded, cols, i * p,
                        kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, np.bool_(False), strided)
            _matmul_2d(gathered, cols, result, False, True)
            _accumulate(partial, worker, grp * og, result)


_conv_chunk, _weight_worker = separately(conv_chunk), separately(weight_worker)
# The parallel variants run the same functions for every chunk (worker) index on Numba's
# threads (parallel_calls.py).  Each was a function of its own holding nothing but a prange
# around the call: Numba's parfor passes took 0.33-0.35 s of a cold compile for each (LeNet-5's
# two, on the AMD EPYC (Zen 3) of 2026-12-07).  Each chunk carves its own zero-padded image (a
# few kB).
_chunks_in_parallel, _workers_in_parallel = in_parallel(conv_chunk), in_parallel(weight_worker)

# Two variants of each convolution kernel with the same chunks and the same gemms, so the same
# numbers: a serial one, and a `_parallel` one running whole chunks (unfold, gemm, scatter) on
# Numba's threads, each calling BLAS with one thread of its own.  BLAS is held at one thread for
# the parallel loop (blas_threads): run on Numba's threads with its own threads too, OpenBLAS
# warned "Detect OpenMP Loop and this application may hang" and oversubscribed the cores.  (A
# BLAS without that control, not SciPy's OpenBLAS, keeps its own count.)  The parallel variant
# does not fall back to the serial one for a single chunk: calling it would compile it into the
# parallel kernel too (LeNet's cold compile 6.1 -> 7.4 s with the fallbacks).
# An earlier parallel variant ran only each chunk's unfold and scatter in prange and its
# gemms between the parallel regions: on two idle cores it made LeNet's step no faster
# (5.7 ms at one thread and at two).  Whole chunks on two threads: conv1's forward at batch
# 64, 504 -> 261 us, conv2's weight gradient 1,241 -> 644 us (with the loop products).


@kernel(cache=True, fastmath=True, inline="always")
def _layout(images, w, planes, sh, sw, pt, pl, dh, dw, groups):
    """(w as [O, K], planes as [N, O, P], images per chunk, chunks, geometry)."""
    n_images = images.shape[0]
    o_total, cg, kh, kw = w.shape
    ho, wo = planes.shape[2], planes.shape[3]
    k, p = cg * kh * kw, ho * wo
    per = images_per_chunk(n_images, k * p)
    return (_view(w, 0, (o_total, k)), _view(planes, 0, (n_images, o_total, p)), per,
            (n_images + per - 1) // per, (cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, groups))


@kernel(cache=True, fastmath=True)
def conv2d_kernel(images, w, planes, sh, sw, pt, pl, dh, dw, groups, back, strided):
    """Forward (back=False): planes = conv2d(images, w); input gradient (back=True):
    images = conv2d's transpose of planes.  Chunk by chunk (conv_chunk)."""
    w2, planes3, per, chunks, geometry = _layout(images, w, planes, sh, sw, pt, pl, dh, dw,
                                                 groups)
    for t in range(chunks):
        _conv_chunk(t, images, w2, planes3, per, geometry, back, strided)


@kernel(cache=True, fastmath=True)
def conv2d_kernel_parallel(images, w, planes, sh, sw, pt, pl, dh, dw, groups, back, strided):
    """conv2d_kernel with its chunks on Numba's threads (see above)."""
    w2, planes3, per, chunks, geometry = _layout(images, w, planes, sh, sw, pt, pl, dh, dw,
                                                 groups)
    before = blas_threads(np.int64(1))
    _chunks_in_parallel(chunks, images, w2, planes3, per, geometry, back, strided)
    if before > 1:
        blas_threads(before)


@kernel(cache=True, fastmath=True, inline="always")
def _workers(n_images, o_total, k, p):
    """(images per chunk, chunks, workers): chunk t adds into partial sum t % workers.  A fixed
    count (get_num_threads() would stop Numba caching the kernels), bounded so the partial sums
    stay small; the serial and parallel kernels share it, so their sums are the same."""
    per = images_per_chunk(n_images, k * p)
    chunks = (n_images + per - 1) // per
    workers = max2(1, min2(min2(chunks, 16), 4_000_000 // max2(1, o_total * k)))
    return per, chunks, workers


@kernel(cache=True, fastmath=True)
def _accumulate(partial, worker, o0, values):
    """partial[worker, o0:o0 + O] += values, in loops: slice assignment would compile Numba's
    shape-error formatting (seconds; see numba_cpu/support.assign)."""
    for o in range(values.shape[0]):
        for j in range(values.shape[1]):
            partial[worker, o0 + o, j] += values[o, j]


@kernel(cache=True, fastmath=True)
def _sum_partials(partial, dw_out):
    """dw_out = partial[0] + partial[1] + ... (in that order)."""
    o_total, k = partial.shape[1], partial.shape[2]
    flat = _view(dw_out, 0, (o_total, k))
    for o in range(o_total):
        for j in range(k):
            flat[o, j] = partial[0, o, j]
    for worker in range(1, partial.shape[0]):
        for o in range(o_total):
            for j in range(k):
                flat[o, j] += partial[worker, o, j]


@kernel(cache=True, fastmath=True, inline="always")
def _weight_layout(x, g, dw_out, sh, sw, pt, pl, dh, dw, groups):
    """(g as [N, O, P], images per chunk, chunks, workers, zeroed partial sums, geometry)."""
    o_total, cg, kh, kw = dw_out.shape
    ho, wo = g.shape[2], g.shape[3]
    k, p = cg * kh * kw, ho * wo
    per, chunks, workers = _workers(x.shape[0], o_total, k, p)
    return (_view(g, 0, (x.shape[0], o_total, p)), per, chunks, workers,
            zeros((workers, o_total, k), x.dtype),
            (cg, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, groups))


@kernel(cache=True, fastmath=True)
def conv2d_backward_weight(x, g, dw_out, sh, sw, pt, pl, dh, dw, groups, strided):
    """dw = Σ_chunks g_chunk @ im2col(x_chunk)ᵀ: per-worker partial sums, then their sum."""
    g3, per, chunks, workers, partial, geometry = _weight_layout(x, g, dw_out, sh, sw, pt, pl,
                                                                 dh, dw, groups)
    for worker in range(workers):
        _weight_worker(worker, x, g3, partial, per, chunks, workers, geometry, strided)
    _sum_partials(partial, dw_out)


@kernel(cache=True, fastmath=True)
def conv2d_backward_weight_parallel(x, g, dw_out, sh, sw, pt, pl, dh, dw, groups, strided):
    """conv2d_backward_weight with its workers on Numba's threads (the same partial sums,
    summed in the same order)."""
    g3, per, chunks, workers, partial, geometry = _weight_layout(x, g, dw_out, sh, sw, pt, pl,
                                                                 dh, dw, groups)
    before = blas_threads(np.int64(1))
    _workers_in_parallel(workers, x, g3, partial, per, chunks, workers, geometry, strided)
    _sum_partials(partial, dw_out)
    if before > 1:
        blas_threads(before)


# ---------------------------------------------------------------------------------------------
# The ops
