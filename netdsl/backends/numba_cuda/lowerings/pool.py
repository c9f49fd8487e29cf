"""CUDA lowerings of max and average pooling and their gradients (netdsl/ops/pool.py).

One thread per result element, in grid-stride loops, no atomics:
* max_pool2d and max_pool2d_gather: per output element, its window's first maximum;
* max_pool2d_grad and avg_pool2d_grad: per INPUT element, a gather over the output windows
  that contain it (in row-major order, summed in float64), so overlapping windows need no
  atomic scatter and a result is the same on every run;
* avg_pool2d: per output element, the window's sum in float64 over the divisor.

The first maximum is the reference rule's exactly: the window is scanned row-major over the
PADDED image, a padding cell counting as -inf, and a later cell wins only when strictly
greater (or when it is the first NaN, as np.argmax).  So a window of -inf values picks its
first cell even when that is padding: its gradient is dropped, its gather reads 0.
"""
from __future__ import annotations

import math

from numba import cuda

from ....ops.pool import window
from ..device import launch
from . import lowering


@cuda.jit(device=True)
def _window_argmax(x, n, c, oy, ox, kh, kw, sh, sw, ph, pw):
    """(row, col) in x's coordinates (possibly in the padding) of the window's first maximum."""
    height, width = x.shape[2], x.shape[3]
    top, left = oy * sh - ph, ox * sw - pw
    best = -math.inf
    best_y, best_x = top, left
    for ky in range(kh):
        iy = top + ky
        for kx in range(kw):
            ix = left + kx
            if iy >= 0 and iy < height and ix >= 0 and ix < width:
                value = x[n, c, iy, ix]
                if value > best or (value != value and best == best):
                    best = value
                    best_y, best_x = iy, ix
    return best_y, best_x


@cuda.jit(device=True)
def _inside(iy, ix, height, width):
    return iy >= 0 and iy < height and ix >= 0 and ix < width


@cuda.jit(device=True)
def _covering(position, pad, size, stride, outputs):
    """[first, last + 1) of the output positions whose window covers input `position`."""
    low = position + pad - size + 1
    first = 0 if low <= 0 else (low + stride - 1) // stride
    last = min((position + pad) // stride, outputs - 1)
    return first, last + 1


@cuda.jit(cache=True)
def _max_pool_kernel(x, v, out, kh, kw, sh, sw, ph, pw, gather):
    """out [N, C, Ho, Wo] = x (max_pool2d) or v (gather) at each window's first maximum of x."""
    channels, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    height, width = x.shape[2], x.shape[3]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        ox = i % wo
        rest = i // wo
        oy = rest % ho
        rest //= ho
        c = rest % channels
        n = rest // channels
        by, bx = _window_argmax(x, n, c, oy, ox, kh, kw, sh, sw, ph, pw)
        source = v if gather else x
        if _inside(by, bx, height, width):
            out[n, c, oy, ox] = source[n, c, by, bx]
        else:
            out[n, c, oy, ox] = 0.0 if gather else -math.inf
        i += step


@cuda.jit(cache=True)
def _max_pool_grad_kernel(x, g, out, kh, kw, sh, sw, ph, pw):
    """out [N, C, H, W] = the sum of g over the windows whose first maximum is this element,
    in row-major window order (the reference's np.add.at order, in float64 too)."""
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    ho, wo = g.shape[2], g.shape[3]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        ix = i % width
        rest = i // width
        iy = rest % height
        rest //= height
        c = rest % channels
        n = rest // channels
        y0, y1 = _covering(iy, ph, kh, sh, ho)
        x0, x1 = _covering(ix, pw, kw, sw, wo)
        total = 0.0
        for oy in range(y0, y1):
            for ox in range(x0, x1):
                by, bx = _window_argmax(x, n, c, oy, ox, kh, kw, sh, sw, ph, pw)
                if by == iy and bx == ix:
                    total += float(g[n, c, oy, ox])
        out[n, c, iy, ix] = total
        i += step


@cuda.jit(device=True)
def _divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width, include_pad):
    """The window's cell count, or with include_pad=False its cells inside the image."""
    if include_pad:
        return kh * kw
    top, left = oy * sh - ph, ox * sw - pw
    rows = min(top + kh, height) - max(top, 0)
    cols = min(left + kw, width) - max(left, 0)
    return rows * cols


@cuda.jit(cache=True)
def _avg_pool_kernel(x, out, kh, kw, sh, sw, ph, pw, include_pad):
    channels, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    height, width = x.shape[2], x.shape[3]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        ox = i % wo
        rest = i // wo
        oy = rest % ho
        rest //= ho
        c = rest % channels
        n = rest // channels
        top, left = oy * sh - ph, ox * sw - pw
        total = 0.0
        for iy in range(max(top, 0), min(top + kh, height)):
            for ix in range(max(left, 0), min(left + kw, width)):
                total += float(x[n, c, iy, ix])
        out[n, c, oy, ox] = total / _divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width,
                                             include_pad)
        i += step


@cuda.jit(cache=True)
def _avg_pool_grad_kernel(g, out, kh, kw, sh, sw, ph, pw, include_pad):
    """out [N, C, H, W] = the sum of g / divisor over the windows containing the element."""
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    ho, wo = g.shape[2], g.shape[3]
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        ix = i % width
        rest = i // width
        iy = rest % height
        rest //= height
        c = rest % channels
        n = rest // channels
        y0, y1 = _covering(iy, ph, kh, sh, ho)
        x0, x1 = _covering(ix, pw, kw, sw, wo)
        total = 0.0
        for oy in range(y0, y1):
            for ox in range(x0, x1):
                total += float(g[n, c, oy, ox]) / _divisor(oy, ox, kh, kw, sh, sw, ph, pw,
                                                           height, width, include_pad)
        out[n, c, iy, ix] = total
        i += step


def max_pool2d(x, out, kh, kw, sh, sw, ph, pw):
    """out = the maximum of each window of x (NaN when the window holds one)."""
    if out.size:
        blocks, threads = launch(out.size)
        _max_pool_kernel[blocks, threads](x, x, out, kh, kw, sh, sw, ph, pw, False)


def max_pool2d_gather(x, v, out, kh, kw, sh, sw, ph, pw):
    """out (pooled) = v (shaped like x) at each window's first maximum of x."""
    if out.size:
        blocks, threads = launch(out.size)
        _max_pool_kernel[blocks, threads](x, v, out, kh, kw, sh, sw, ph, pw, True)


def max_pool2d_grad(x, g, out, kh, kw, sh, sw, ph, pw):
    """out (like x) = each pooled g sent to its window's first maximum, summed on overlaps."""
    if out.size:
        blocks, threads = launch(out.size)
        _max_pool_grad_kernel[blocks, threads](x, g, out, kh, kw, sh, sw, ph, pw)


def avg_pool2d(x, out, kh, kw, sh, sw, ph, pw, include_pad):
    """out = the mean of each window of x (padding counted as zeros when include_pad)."""
    if out.size:
        blocks, threads = launch(out.size)
        _avg_pool_kernel[blocks, threads](x, out, kh, kw, sh, sw, ph, pw, include_pad)


def avg_pool2d_grad(g, out, kh, kw, sh, sw, ph, pw, include_pad):
    """out (like x) = each pooled g spread evenly over its window."""
    if out.size:
        blocks, threads = launch(out.size)
        _avg_pool_grad_kernel[blocks, threads](g, out, kh, kw, sh, sw, ph, pw, include_pad)


def _geometry_args(attrs) -> str:
    (kh, kw), (sh, sw), (ph, pw) = window("pool", attrs.get("size"), attrs.get("stride"),
                                          attrs.get("padding", 0))
    return f"{kh}, {kw}, {sh}, {sw}, {ph}, {pw}"


def _include_pad(attrs) -> bool:
    return bool(attrs.get("count_include_pad", True))


@lowering("max_pool2d")
def lower_max_pool2d(ctx, node, ins, outs):
    return [f"{ctx.use(max_pool2d)}({ins[0]}, {outs[0]}, {_geometry_args(node.attrs)})"]


@lowering("max_pool2d_grad")
def lower_max_pool2d_grad(ctx, node, ins, outs):
    return [f"{ctx.use(max_pool2d_grad)}({ins[0]}, {ins[1]}, {outs[0]}, "
            f"{_geometry_args(node.attrs)})"]


@lowering("max_pool2d_gather")
def lower_max_pool2d_gather(ctx, node, ins, outs):
    return [f"{ctx.use(max_pool2d_gather)}({ins[0]}, {ins[1]}, {outs[0]}, "
            f"{_geometry_args(node.attrs)})"]


@lowering("avg_pool2d")
def lower_avg_pool2d(ctx, node, ins, outs):
    return [f"{ctx.use(avg_pool2d)}({ins[0]}, {outs[0]}, {_geometry_args(node.attrs)}, "
            f"{_include_pad(node.attrs)})"]


@lowering("avg_pool2d_grad")
def lower_avg_pool2d_grad(ctx, node, ins, outs):
    # Inputs (x, g): x gives only the shape, which the preallocated output already has.
    return [f"{ctx.use(avg_pool2d_grad)}({ins[1]}, {outs[0]}, {_geometry_args(node.attrs)}, "
            f"{_include_pad(node.attrs)})"]
