"""CUDA lowerings of take, take_grad and one_hot (netdsl/ops/indexing.py); slice and slice_grad
are the shape family's (lowerings/shape.py).

Every kernel is one thread per result element in a grid-stride loop, with no atomics, so a result
is the same on every run:
* take: out[o, j, m] = x[o, ids[j], m] over [outer, n, inner] views;
* take_grad: out[o, r, m] = the sum over the positions j with ids[j] == r of g[o, j, m], each
  thread scanning all the ids in order (float64 sum).  That costs outer * n * inner * len(ids)
  compares: cheap for the vocabularies of the examples (58 characters, 2,048 ids and 64 features
  are 7.6M), quadratic for a large vocabulary, where a sort of the ids (segments of equal ids,
  summed per row) would be the next step;
* one_hot: out[j, c] = (ids[j] == c), so an id outside [0, depth) is a row of zeros.

take and take_grad check their ids first, in a kernel of their own that sets a flag on the
device; the launcher copies the flag back (one small transfer, a synchronisation) and raises
IndexError(INDEX_ERROR) before anything reads or writes through a bad id, as the cpu target does.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ....ir.types import normalize_axis
from ....ops.indexing import INDEX_ERROR
from ..device import launch
from . import lowering


@cuda.jit(cache=True)
def _check_ids_kernel(ids, n, flag):
    """flag[0] = 1 when some id lies outside [0, n) (every writer writes the same 1)."""
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < ids.size:
        if ids[i] < 0 or ids[i] >= n:
            flag[0] = 1
        i += stride


def check_ids(ids, n: int) -> None:
    """IndexError(INDEX_ERROR) when a device array of ids holds one outside [0, n)."""
    if ids.size == 0:
        return
    flag = cuda.to_device(np.zeros(1, dtype=np.int32))
    blocks, threads = launch(ids.size)
    _check_ids_kernel[blocks, threads](ids.reshape(ids.size), n, flag)
    if flag.copy_to_host()[0]:
        raise IndexError(INDEX_ERROR)


@cuda.jit(cache=True)
def _take_kernel(x, ids, out):
    """out [outer, len(ids), inner] = x [outer, n, inner] at ids along the middle axis."""
    count, inner = out.shape[1], out.shape[2]
    e = cuda.grid(1)
    stride = cuda.gridsize(1)
    while e < out.size:
        m = e % inner
        j = (e // inner) % count
        o = e // (inner * count)
        out[o, j, m] = x[o, ids[j], m]
        e += stride


@cuda.jit(cache=True)
def _take_grad_kernel(g, ids, out):
    """out [outer, n, inner] = g [outer, len(ids), inner] summed over the positions of each id."""
    rows, inner = out.shape[1], out.shape[2]
    e = cuda.grid(1)
    stride = cuda.gridsize(1)
    while e < out.size:
        m = e % inner
        r = (e // inner) % rows
        o = e // (inner * rows)
        total = 0.0
        for j in range(ids.size):
            if ids[j] == r:
                total += float(g[o, j, m])      # float64 (also in the simulator)
        out[o, r, m] = total
        e += stride


@cuda.jit(cache=True)
def _one_hot_kernel(ids, out):
    """out [len(ids), depth] = 1 where the column is the id, else 0."""
    depth = out.shape[1]
    e = cuda.grid(1)
    stride = cuda.gridsize(1)
    while e < out.size:
        j = e // depth
        out[j, e % depth] = 1 if ids[j] == e % depth else 0
        e += stride


def _around(shape: tuple, axis: int) -> tuple[int, int, int]:
    """(outer, n, inner): the extents before, at and after `axis`."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def take(x, ids, out, axis: int) -> None:
    """out = np.take(x, ids, axis) for device arrays, ids in [0, x.shape[axis])."""
    outer, n, inner = _around(x.shape, axis)
    check_ids(ids, n)
    if out.size:
        blocks, threads = launch(out.size)
        _take_kernel[blocks, threads](x.reshape(outer, n, inner), ids.reshape(ids.size),
                                      out.reshape(outer, ids.size, inner))


def take_grad(g, ids, out, axis: int) -> None:
    """out (x's shape) = zeros with g added at ids along `axis` (repeated ids add up)."""
    outer, n, inner = _around(out.shape, axis)
    check_ids(ids, n)
    if out.size:
        blocks, threads = launch(out.size)
        _take_grad_kernel[blocks, threads](g.reshape(outer, ids.size, inner),
                                           ids.reshape(ids.size), out.reshape(outer, n, inner))


def one_hot(ids, out) -> None:
    """out [..., depth] = 1 at each id, 0 elsewhere (a row of zeros for an id out of range)."""
    if out.size:
        depth = tuple(out.shape)[-1]     # the simulator's shapes refuse negative indices
        blocks, threads = launch(out.size)
        _one_hot_kernel[blocks, threads](ids.reshape(ids.size), out.reshape(ids.size, depth))


@lowering("take")
def lower_take(ctx, node, ins, outs):
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[0].rank)
    return [f"{ctx.use(take)}({ins[0]}, {ins[1]}, {outs[0]}, {axis})"]


@lowering("take_grad")
def lower_take_grad(ctx, node, ins, outs):
    # Inputs (g, ids, x): x gives only the shape, which the preallocated output already has.
    axis = normalize_axis(node.attrs.get("axis", 0), node.inputs[2].rank)
    return [f"{ctx.use(take_grad)}({ins[0]}, {ins[1]}, {outs[0]}, {axis})"]


@lowering("one_hot")
def lower_one_hot(ctx, node, ins, outs):
    return [f"{ctx.use(one_hot)}({ins[0]}, {outs[0]})"]
