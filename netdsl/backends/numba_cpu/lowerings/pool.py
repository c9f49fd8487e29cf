"""CPU lowerings of pooling and its gradients (netdsl/ops/pool.py).

The kernels loop over image planes (in parallel for large tensors only), with unsigned (`u64`)
indices so that Numba emits no negative-index wraparound tests (2.7x faster).
"""
from __future__ import annotations

import numpy as np
from numba import prange
from numba import uint64 as u64

from ....ops.pool import window
from ..builtins_inline import max2, min2
from ..jit import kernel
from ..separate import separately
from ..support import view as _view
from . import lowering


@kernel(cache=True, inline="always")
def _span(position, stride, pad, size, length):
    start = position * stride - pad
    return max2(start, 0), min2(start + size, length)


@kernel(cache=True, inline="always")
def _plane_has_nan(x3, plane):
    """Does image plane `plane` hold a NaN?  One pass that LLVM vectorises (a compare and an
    or per element), so the general window loops below keep no NaN test of their own: with a
    branch on one in the loop, the 2x2 routing ran 5x slower (188 -> 1,050 us; it now tests
    with selects, max_pool2d_route_2x2) and the 3x3 pooling 28%."""
    flat = _view(x3, plane * x3.shape[1] * x3.shape[2], (x3.shape[1] * x3.shape[2],))
    seen = False
    for i in range(flat.shape[0]):
        seen |= flat[i] != flat[i]
    return seen


@kernel(cache=True)
def _max_pool_plane(x3, out3, plane, kh, kw, sh, sw, ph, pw):
    height, width = x3.shape[1], x3.shape[2]
    careful = _plane_has_nan(x3, plane)        # then a NaN in a window is its maximum
    for y in range(out3.shape[1]):
        y0, y1 = _span(y, sh, ph, kh, height)
        for xx in range(out3.shape[2]):
            x0, x1 = _span(xx, sw, pw, kw, width)
            best = -np.inf
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    best = max2(best, x3[plane, u64(iy), u64(ix)])
            if careful:
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        if x3[plane, u64(iy), u64(ix)] != x3[plane, u64(iy), u64(ix)]:
                            best = np.nan
            out3[plane, y, xx] = best


@kernel(cache=True)
def max_pool2d_2x2_kernel(x, out):
    """max_pool2d_kernel for 2x2 windows at stride 2 without padding (LeNet's, VGG's, most
    CNNs'), unrolled: 3.4x faster on LeNet's first pooling (0.30 -> 0.09 ms at b64).  The
    maxima are taken in the general loop's order, so ties come out the same, and a NaN in a
    window gives NaN, as the reference and torch give.  A kernel of its own, picked when the
    code is generated, so that a model compiles only the loops it runs (both, behind a test at
    run time, with the gradient's two: a cold LeNet in 6.3 s against 5.9).  The maxima in the
    input's type: from a float64 -inf (the general loop's start) LLVM widened every element
    to float64, 4 lanes instead of 8, and LeNet-5's first pooling at batch 64 took 405 us
    against 66 (the AMD EPYC Zen 3 of 2026-12-07, AVX2, one thread; the same maxima: a NaN
    is handled by the select below, and a window of -infs gives -inf either way)."""
    n, c, height, width = x.shape
    x3 = _view(x, 0, (n * c, height, width))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    for plane in range(n * c):
        for y in range(out3.shape[1]):
            top, bottom = u64(2 * y), u64(2 * y + 1)
            for xx in range(out3.shape[2]):
                left, right = u64(2 * xx), u64(2 * xx + 1)
                a, b = x3[plane, top, left], x3[plane, top, right]
                c, d = x3[plane, bottom, left], x3[plane, bottom, right]
                best = max2(max2(max2(a, b), c), d)
                # max2 keeps its first operand over a NaN; a NaN in the window is the max
                # (np.max, torch).  A select after the maxima, no branch: 84.6 -> 39-41 us
                # on LeNet's first pooling at batch 64, one thread.
                out3[plane, y, xx] = best if (a == a) & (b == b) & (c == c) & (d == d) \
                    else np.nan


@kernel(cache=True)
def max_pool2d_kernel(x, out, kh, kw, sh, sw, ph, pw):
    """out = the maximum of each window of x."""
    n, c, height, width = x.shape
    x3 = _view(x, 0, (n * c, height, width))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    for plane in range(n * c):
        separate_max_pool_plane(x3, out3, plane, kh, kw, sh, sw, ph, pw)


@kernel(cache=True, parallel=True)
def max_pool2d_kernel_parallel(x, out, kh, kw, sh, sw, ph, pw):
    """max_pool2d_kernel, planes in parallel."""
    n, c, height, width = x.shape
    x3 = _view(x, 0, (n * c, height, width))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    for plane in prange(n * c):
        separate_max_pool_plane(x3, out3, np.int64(plane), kh, kw, sh, sw, ph, pw)


@kernel(cache=True, inline="always")
def _window_argmax(x3, plane, y0, y1, x0, x1, careful):
    """The window's first maximum in row-major order (strict >); `careful` (its plane holds a
    NaN): its first NaN where it has one, as np.argmax (the reference) takes it."""
    best, by, bx = -np.inf, y0, x0
    for iy in range(y0, y1):
        for ix in range(x0, x1):
            if x3[plane, u64(iy), u64(ix)] > best:
                best, by, bx = x3[plane, u64(iy), u64(ix)], iy, ix
    if careful:
        for iy in range(y1 - 1, y0 - 1, -1):          # backwards: the first NaN is found last
            for ix in range(x1 - 1, x0 - 1, -1):
                if x3[plane, u64(iy), u64(ix)] != x3[plane, u64(iy), u64(ix)]:
                    by, bx = iy, ix
    return by, bx


@kernel(cache=True)
def _max_route_plane(x3, v3, out3, plane, kh, kw, sh, sw, ph, pw, gather):
    height, width = x3.shape[1], x3.shape[2]
    pooled = out3 if gather else v3
    if not gather:
        out3[plane] = 0
    careful = _plane_has_nan(x3, plane)
    for y in range(pooled.shape[1]):
        y0, y1 = _span(y, sh, ph, kh, height)
        for xx in range(pooled.shape[2]):
            x0, x1 = _span(xx, sw, pw, kw, width)
            by, bx = _window_argmax(x3, plane, y0, y1, x0, x1, careful)
            if gather:
                out3[plane, y, xx] = v3[plane, u64(by), u64(bx)]
            else:
                out3[plane, u64(by), u64(bx)] += v3[plane, y, xx]


@kernel(cache=True)
def max_pool2d_route_2x2(x, v, out, gather):
    """max_pool2d_route for 2x2 windows at stride 2 without padding, unrolled (the windows do
    not overlap, so the scatter writes each covered pixel once).  The first maximum in
    row-major order, by strict >, as in the general loop.  Picked when the code is generated,
    as max_pool2d_2x2_kernel, and so is `gather`: None to scatter (the gradient), np.bool_(True)
    to gather.  Numba compiles only the branch a None leaves (`gather is None` is a constant
    for its type), so a training step compiles the scatter alone.  NaN windows take the same
    loop (selects, see below) rather than a plane loop of their own behind a test for NaN in
    the plane: the kernel compiles cold in 0.32 against 0.61 s, and routes LeNet-5's first
    pooling at batch 64 in 193-196 against 202-206 us (one thread).

    The scatter zeroes `out` and writes each window's value once, where its maximum is, the
    row and column found by arithmetic on the tests (`top + u64(...)`), not by selects.  On
    an AVX2 processor (the AMD EPYC Zen 3 of 2026-12-07) LLVM did not vectorise the loop, and
    its x86 pass that turns conditional moves on a loop's critical path into branches
    (X86CmovConverter) made the selects branches on random data: LeNet-5's first pooling at
    batch 64 routed in 1,040-1,110 us (four select-stores a window) and gathered in 990-1,040,
    against 224-228 and 198 us now, one thread; with that pass off (an LLVM option, for the
    whole process) the select form ran as fast, which is how the numbers above came out on
    AVX-512 machines, where the loop vectorised."""
    n, c, height, width = x.shape
    x3 = _view(x, 0, (n * c, height, width))
    v3 = _view(v, 0, (n * c, v.shape[2], v.shape[3]))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    rows, columns = (v3.shape[1], v3.shape[2]) if gather is None else \
        (out3.shape[1], out3.shape[2])
    if gather is None:          # every pixel but each window's maximum, and any row or column
        flat = _view(out, 0, (out.size,))           # no window covers: 0 (a memset)
        for i in range(flat.shape[0]):
            flat[i] = 0
    for plane in range(n * c):
        for y in range(rows):
            top, bottom = u64(2 * y), u64(2 * y + 1)
            for xx in range(columns):
                left, right = u64(2 * xx), u64(2 * xx + 1)
                tl, tr = x3[plane, top, left], x3[plane, top, right]
                bl, br = x3[plane, bottom, left], x3[plane, bottom, right]
                # The window's first maximum in row-major order (strict >, as the general
                # loop), or its first NaN where it holds one (np.argmax, torch): tests, no
                # branch (see above).
                best = max2(max2(max2(tl, tr), bl), br)          # in float32: see above
                nan_tl, nan_tr, nan_bl, nan_br = tl != tl, tr != tr, bl != bl, br != br
                nan = nan_tl | nan_tr | nan_bl | nan_br
                at_tl = nan_tl if nan else tl == best
                at_tr = (nan_tr if nan else tr == best) & ~at_tl
                at_bl = (nan_bl if nan else bl == best) & ~(at_tl | at_tr)
                row = top + u64(not (at_tl | at_tr))          # exactly one at_ holds,
                column = left + u64(not (at_tl | at_bl))      # or the bottom right is it
                if gather is None:
                    out3[plane, row, column] = v3[plane, y, xx]
                else:
                    out3[plane, y, xx] = v3[plane, row, column]


@kernel(cache=True)
def max_pool2d_route(x, v, out, kh, kw, sh, sw, ph, pw, gather):
    """Through each window's first maximum of x (row-major; strict > keeps the first):
    gather, out (pooled) = v (like x) at the argmax; else out (like x) = v (pooled) scattered
    to the argmax, summed where windows overlap."""
    n, c, height, width = x.shape
    x3 = _view(x, 0, (n * c, height, width))
    v3 = _view(v, 0, (n * c, v.shape[2], v.shape[3]))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    for plane in range(n * c):
        separate_max_route_plane(x3, v3, out3, plane, kh, kw, sh, sw, ph, pw, gather)


@kernel(cache=True, parallel=True)
def max_pool2d_route_parallel(x, v, out, kh, kw, sh, sw, ph, pw, gather):
    """max_pool2d_route, planes in parallel."""
    n, c, height, width = x.shape
    x3 = _view(x, 0, (n * c, height, width))
    v3 = _view(v, 0, (n * c, v.shape[2], v.shape[3]))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    for plane in prange(n * c):
        separate_max_route_plane(x3, v3, out3, np.int64(plane), kh, kw, sh, sw, ph, pw, gather)


@kernel(cache=True, fastmath=True)
def _avg_pool_plane(s3, out3, plane, kh, kw, sh, sw, ph, pw, include_pad, backward):
    height, width = (out3.shape[1], out3.shape[2]) if backward else (s3.shape[1], s3.shape[2])
    ho, wo = (s3.shape[1], s3.shape[2]) if backward else (out3.shape[1], out3.shape[2])
    if backward:
        out3[plane] = 0
    for y in range(ho):
        y0, y1 = _span(y, sh, ph, kh, height)
        for xx in range(wo):
            x0, x1 = _span(xx, sw, pw, kw, width)
            divisor = kh * kw if include_pad else (y1 - y0) * (x1 - x0)
            if backward:
                share = s3[plane, y, xx] / divisor
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        out3[plane, u64(iy), u64(ix)] += share
            else:
                total = 0.0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        total += s3[plane, u64(iy), u64(ix)]
                out3[plane, y, xx] = total / divisor


@kernel(cache=True, fastmath=True)
def avg_pool2d_kernel(source, out, kh, kw, sh, sw, ph, pw, include_pad, backward):
    """Forward: out = window means of source.  Backward: out (shaped like x) = the pooled
    gradient `source` spread evenly over each window."""
    n, c = source.shape[0], source.shape[1]
    s3 = _view(source, 0, (n * c, source.shape[2], source.shape[3]))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    for plane in range(n * c):
        separate_avg_pool_plane(s3, out3, plane, kh, kw, sh, sw, ph, pw, include_pad, backward)


@kernel(cache=True, parallel=True, fastmath=True)
def avg_pool2d_kernel_parallel(source, out, kh, kw, sh, sw, ph, pw, include_pad, backward):
    """avg_pool2d_kernel, planes in parallel."""
    n, c = source.shape[0], source.shape[1]
    s3 = _view(source, 0, (n * c, source.shape[2], source.shape[3]))
    out3 = _view(out, 0, (n * c, out.shape[2], out.shape[3]))
    for plane in prange(n * c):
        separate_avg_pool_plane(s3, out3, np.int64(plane), kh, kw, sh, sw, ph, pw, include_pad,
                        backward)


# The kernels call the plane loops separately (numba_cpu/separate.py): each is compiled once,
# not again inside each kernel that calls it (nor optimised again inside it by LLVM).
separate_max_pool_plane, separate_max_route_plane, separate_avg_pool_plane = map(
    separately, (_max_pool_plane, _max_route_plane, _avg_pool_plane))


def _pick(ctx, serial, parallel, type_):
    """The kernel variant for an op over `type_` (see above), imported into the module."""
    return ctx.use(parallel if ctx.large(type_) else serial)


def _geometry(attrs) -> tuple[int, ...]:
    (kh, kw), (sh, sw), (ph, pw) = window("pool", attrs.get("size"), attrs.get("stride"),
                                          attrs.get("padding", 0))
    return kh, kw, sh, sw, ph, pw


def _geometry_args(attrs) -> str:
    return ", ".join(str(v) for v in _geometry(attrs))


def _unrolled(ctx, node) -> bool:
    """Whether a max pooling takes the unrolled 2x2 kernels: 2x2 windows at stride 2 without
    padding, on the serial path (the parallel kernels run the general loops)."""
    return _geometry(node.attrs) == (2, 2, 2, 2, 0, 0) and not ctx.large(node.inputs[0].type)


@lowering('max_pool2d')
def lower_max_pool2d(ctx, node, ins, outs):
    if _unrolled(ctx, node):
        return [f"{ctx.use(max_pool2d_2x2_kernel)}({ins[0]}, {outs[0]})"]
    args = _geometry_args(node.attrs)
    kernel = _pick(ctx, max_pool2d_kernel, max_pool2d_kernel_parallel, node.inputs[0].type)
    return [f"{kernel}({ins[0]}, {outs[0]}, {args})"]


def _lower_route(ctx, node, ins, outs, gather: bool) -> list[str]:
    if _unrolled(ctx, node):
        flag = "np.bool_(True)" if gather else "None"      # see max_pool2d_route_2x2
        return [f"{ctx.use(max_pool2d_route_2x2)}({ins[0]}, {ins[1]}, {outs[0]}, {flag})"]
    kernel = _pick(ctx, max_pool2d_route, max_pool2d_route_parallel, node.inputs[0].type)
    return [f"{kernel}({ins[0]}, {ins[1]}, {outs[0]}, "
            f"{_geometry_args(node.attrs)}, {gather})"]


@lowering('max_pool2d_grad')
def lower_max_pool2d_grad(ctx, node, ins, outs):
    return _lower_route(ctx, node, ins, outs, False)


@lowering('max_pool2d_gather')
def lower_max_pool2d_gather(ctx, node, ins, outs):
    return _lower_route(ctx, node, ins, outs, True)


@lowering('avg_pool2d')
def lower_avg_pool2d(ctx, node, ins, outs):
    include = bool(node.attrs.get("count_include_pad", True))
    kernel = _pick(ctx, avg_pool2d_kernel, avg_pool2d_kernel_parallel, node.inputs[0].type)
    return [f"{kernel}({ins[0]}, {outs[0]}, "
            f"{_geometry_args(node.attrs)}, {include}, False)"]


@lowering('avg_pool2d_grad')
def lower_avg_pool2d_grad(ctx, node, ins, outs):
    include = bool(node.attrs.get("count_include_pad", True))
    kernel = _pick(ctx, avg_pool2d_kernel, avg_pool2d_kernel_parallel, node.outputs[0].type)
    return [f"{kernel}({ins[1]}, {outs[0]}, "
            f"{_geometry_args(node.attrs)}, {include}, True)"]
