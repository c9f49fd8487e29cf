"""CUDA lowerings of conv2d and its gradients (netdsl/ops/conv.py): direct implicit-GEMM kernels.

Every sum is in float64 and in a fixed order (no atomics), so a result is the same on every
run and every grid:
* conv2d: one thread per output element (grid-stride) sums over its group's C/groups input
  channels and the kh x kw window;
* conv2d_grad_input: one thread per input element gathers, over its group's output channels
  and the kernel taps, the output positions whose window read it (where stride and dilation
  land on it);
* conv2d_grad_weight: a weight has few elements (150 for a 6x1x5x5 filter bank), each a sum
  of N * Ho * Wo terms, so a thread per element would leave a GPU nearly idle: one thread per
  (chunk of the terms, weight element) writes a float64 partial sum, and a second kernel adds
  each element's partials in chunk order.  (A block per element with a shared-memory tree
  needs a cuda.syncthreads per level, which costs ~10 ms each in the simulator.)
The geometry (stride, the top/left padding, dilation, groups) is baked into the host line as
numbers; the sizes come from the arrays, so one compiled kernel serves every geometry.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ....ops.conv import geometry
from ..device import launch
from . import lowering


@cuda.jit(cache=True)
def _conv2d_kernel(x, w, out, sh, sw, pt, pl, dh, dw, groups):
    out_channels, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    group_channels, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    height, width = x.shape[2], x.shape[3]
    group_outputs = out_channels // groups
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        ox = i % wo
        rest = i // wo
        oy = rest % ho
        rest //= ho
        o = rest % out_channels
        n = rest // out_channels
        first_channel = (o // group_outputs) * group_channels
        total = 0.0
        for c in range(group_channels):
            for ky in range(kh):
                iy = oy * sh - pt + ky * dh
                if iy < 0 or iy >= height:
                    continue
                for kx in range(kw):
                    ix = ox * sw - pl + kx * dw
                    if ix >= 0 and ix < width:
                        total += float(x[n, first_channel + c, iy, ix]) * float(w[o, c, ky, kx])
        out[n, o, oy, ox] = total
        i += step


@cuda.jit(cache=True)
def _conv2d_grad_input_kernel(g, w, out, sh, sw, pt, pl, dh, dw, groups):
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    out_channels, ho, wo = g.shape[1], g.shape[2], g.shape[3]
    group_channels, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    group_outputs = out_channels // groups
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        ix = i % width
        rest = i // width
        iy = rest % height
        rest //= height
        c = rest % channels
        n = rest // channels
        first_output = (c // group_channels) * group_outputs
        c_in_group = c % group_channels
        total = 0.0
        for ky in range(kh):
            # The output row whose window puts tap ky on input row iy, if stride lands there.
            ty = iy + pt - ky * dh
            if ty < 0 or ty % sh != 0 or ty // sh >= ho:
                continue
            oy = ty // sh
            for kx in range(kw):
                tx = ix + pl - kx * dw
                if tx < 0 or tx % sw != 0 or tx // sw >= wo:
                    continue
                ox = tx // sw
                for o in range(first_output, first_output + group_outputs):
                    total += float(g[n, o, oy, ox]) * float(w[o, c_in_group, ky, kx])
        out[n, c, iy, ix] = total
        i += step


@cuda.jit(cache=True)
def _grad_weight_chunks_kernel(x, g, partials, chunk, sh, sw, pt, pl, dh, dw, groups):
    """partials [chunks, O, C/groups, kh, kw]: each weight element's sum over chunk k of its
    N * Ho * Wo terms (positions k * chunk up to (k + 1) * chunk), one thread per entry."""
    chunks, out_channels, group_channels = partials.shape[0], partials.shape[1], partials.shape[2]
    kh, kw = partials.shape[3], partials.shape[4]
    height, width = x.shape[2], x.shape[3]
    ho, wo = g.shape[2], g.shape[3]
    terms = x.shape[0] * ho * wo
    group_outputs = out_channels // groups
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < partials.size:
        kx = i % kw
        rest = i // kw
        ky = rest % kh
        rest //= kh
        c_in_group = rest % group_channels
        rest //= group_channels
        o = rest % out_channels
        k = rest // out_channels
        c = (o // group_outputs) * group_channels + c_in_group
        total = 0.0
        for j in range(k * chunk, min((k + 1) * chunk, terms)):
            ox = j % wo
            rest = j // wo
            oy = rest % ho
            n = rest // ho
            iy = oy * sh - pt + ky * dh
            ix = ox * sw - pl + kx * dw
            if iy >= 0 and iy < height and ix >= 0 and ix < width:
                total += float(x[n, c, iy, ix]) * float(g[n, o, oy, ox])
        partials[k, o, c_in_group, ky, kx] = total
        i += step


@cuda.jit(cache=True)
def _sum_chunks_kernel(partials, out):
    """out[i] = partials[0, i] + partials[1, i] + ..., in that order (flat views)."""
    i = cuda.grid(1)
    step = cuda.gridsize(1)
    while i < out.size:
        total = 0.0
        for k in range(partials.shape[0]):
            total += partials[k, i]
        out[i] = total
        i += step


# conv2d_grad_weight splits each weight element's N * Ho * Wo terms into chunks of about
# sqrt(terms) (at least MIN_CHUNK), so that a small filter bank still gives the GPU
# thousands of threads, while at most MAX_PARTIALS float64 partial sums are stored.
MIN_CHUNK = 32
MAX_PARTIALS = 1 << 20      # 8 MB of float64: a million threads in the first pass


def _chunking(terms: int, cells: int) -> tuple[int, int]:
    """(chunks, chunk): how conv2d_grad_weight splits its sums; shapes alone decide it, so
    the result is the same on every run."""
    chunk = max(MIN_CHUNK, math.isqrt(terms))
    chunks = max(1, min(-(-terms // chunk), MAX_PARTIALS // max(cells, 1)))
    return chunks, max(1, -(-terms // chunks))


def conv2d(x, w, out, sh, sw, pt, pl, dh, dw, groups):
    """out [N, O, Ho, Wo] = the cross-correlation of x [N, C, H, W] with w [O, C/groups, kh, kw]."""
    if out.size:
        blocks, threads = launch(out.size)
        _conv2d_kernel[blocks, threads](x, w, out, sh, sw, pt, pl, dh, dw, groups)


def conv2d_grad_input(g, w, out, sh, sw, pt, pl, dh, dw, groups):
    """out [N, C, H, W] (x's shape) = the gradient of conv2d's input from its output's g."""
    if out.size:
        blocks, threads = launch(out.size)
        _conv2d_grad_input_kernel[blocks, threads](g, w, out, sh, sw, pt, pl, dh, dw, groups)


def conv2d_grad_weight(x, g, out, sh, sw, pt, pl, dh, dw, groups):
    """out [O, C/groups, kh, kw] = the gradient of conv2d's weight from x and the output's g."""
    if not out.size:
        return
    chunks, chunk = _chunking(x.shape[0] * g.shape[2] * g.shape[3], out.size)
    if chunks == 1:            # a single chunk is the sum itself: no partials, no second pass
        partials = out.reshape((1,) + out.shape)
    else:
        partials = cuda.device_array((chunks,) + out.shape, dtype=np.float64)
    blocks, threads = launch(partials.size)
    _grad_weight_chunks_kernel[blocks, threads](x, g, partials, chunk, sh, sw, pt, pl, dh, dw,
                                                groups)
    if chunks > 1:
        blocks, threads = launch(out.size)
        _sum_chunks_kernel[blocks, threads](partials.reshape((chunks, out.size)),
                                            out.reshape(out.size))


def _geometry_args(attrs, kernel) -> str:
    """sh, sw, top, left, dh, dw, groups as the launchers' literal arguments (the bottom and
    right padding follow from the arrays' sizes)."""
    (sh, sw), (pt, _, pl, _), (dh, dw) = geometry(
        tuple(kernel), attrs.get("stride", 1), attrs.get("padding", 0), attrs.get("dilation", 1))
    return ", ".join(str(int(v)) for v in (sh, sw, pt, pl, dh, dw, attrs.get("groups", 1)))


@lowering("conv2d")
def lower_conv2d(ctx, node, ins, outs):
    args = _geometry_args(node.attrs, node.inputs[1].shape[2:])
    return [f"{ctx.use(conv2d)}({ins[0]}, {ins[1]}, {outs[0]}, {args})"]


@lowering("conv2d_grad_input")
def lower_conv2d_grad_input(ctx, node, ins, outs):
    # Inputs (g, w, x): x gives only the shape, which the preallocated output already has.
    args = _geometry_args(node.attrs, node.inputs[1].shape[2:])
    return [f"{ctx.use(conv2d_grad_input)}({ins[0]}, {ins[1]}, {outs[0]}, {args})"]


@lowering("conv2d_grad_weight")
def lower_conv2d_grad_weight(ctx, node, ins, outs):
    args = _geometry_args(node.attrs, node.attrs["kernel_size"])
    return [f"{ctx.use(conv2d_grad_weight)}({ins[0]}, {ins[1]}, {outs[0]}, {args})"]
