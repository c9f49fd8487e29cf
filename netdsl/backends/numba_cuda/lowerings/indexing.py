"""CUDA lowerings of take, take_grad and one_hot (netdsl/ops/indexing.py); slice and slice_grad
are the shape family's (lowerings/shape.py).

No float atomics, so a result is the same on every run:
* take: a thread per result element, out[o, j, m] = x[o, ids[j], m] over [outer, n, inner] views;
* take_grad: the positions of the ids grouped by id first (a counting sort, below), then a
  thread per result element sums its id's g[o, j, m] in ascending j (float64), the order of
  the reference's np.add.at;
* one_hot: a thread per result element, out[j, c] = (ids[j] == c), so an id outside [0, depth)
  is a row of zeros.

The grouping (_positions_by_id) counts each id with integer atomics, turns the counts into
bucket starts (one block, a chunk per thread), drops each position into its id's bucket with an
atomic cursor (an order that varies from run to run), and then writes each position at its rank
among its bucket's positions, which any order gives alike: buckets sorted without a sort.  Its
work is len(ids) + n + the sum of the squared bucket sizes (a rank scans its own bucket), and
the sums outer * inner * (n + len(ids)); a thread per table row scanning every id would be
outer * n * inner * len(ids), 3e11 compares for a 50,000-word vocabulary and 8,192 ids.

take and take_grad check their ids first, in a kernel of their own that sets a flag on the
device; the launcher copies the flag back (one small transfer, a synchronisation) and raises
IndexError(INDEX_ERROR) before anything reads or writes through a bad id, as the cpu target does.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, int64

from ....ir.types import normalize_axis
from ....ops.indexing import INDEX_ERROR
from ..device import launch
from . import lowering
from .reduce import REDUCE_THREADS


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
def _zero_kernel(a):
    """a[...] = 0 (the counters of _positions_by_id, without a host-to-device copy)."""
    i = cuda.grid(1)
    while i < a.size:
        a[i] = 0
        i += cuda.gridsize(1)


@cuda.jit(cache=True)
def _count_kernel(ids, counts):
    j = cuda.grid(1)
    while j < ids.size:
        cuda.atomic.add(counts, ids[j], 1)
        j += cuda.gridsize(1)


@cuda.jit(cache=True)
def _starts_kernel(counts, starts):
    """starts[r] = sum(counts[:r]) for r in [0, n]: one block, each thread a chunk of counts."""
    partial = cuda.shared.array(REDUCE_THREADS, int64)
    t = cuda.threadIdx.x
    n = counts.size
    chunk = (n + REDUCE_THREADS - 1) // REDUCE_THREADS
    low = min(t * chunk, n)
    high = min(low + chunk, n)
    total = 0
    for r in range(low, high):
        total += counts[r]
    partial[t] = total
    cuda.syncthreads()
    if t == 0:                                 # the chunks' starts: REDUCE_THREADS additions
        running = 0
        for u in range(REDUCE_THREADS):
            here = partial[u]
            partial[u] = running
            running += here
        starts[n] = running
    cuda.syncthreads()
    running = partial[t]
    for r in range(low, high):
        starts[r] = running
        running += counts[r]


@cuda.jit(cache=True)
def _bucket_kernel(ids, starts, cursor, bucket):
    """Each position j into its id's bucket, at a slot an atomic cursor hands out."""
    j = cuda.grid(1)
    while j < ids.size:
        r = ids[j]
        bucket[starts[r] + cuda.atomic.add(cursor, r, 1)] = j
        j += cuda.gridsize(1)


@cuda.jit(cache=True)
def _order_kernel(ids, starts, bucket, order):
    """order = each bucket's positions ascending: j goes after the positions below it."""
    j = cuda.grid(1)
    while j < ids.size:
        r = ids[j]
        rank = 0
        for k in range(starts[r], starts[r + 1]):
            if bucket[k] < j:
                rank += 1
        order[starts[r] + rank] = j
        j += cuda.gridsize(1)


def _positions_by_id(ids, n: int):
    """(starts [n + 1], order [len(ids)]) for in-range ids: order[starts[r]:starts[r + 1]] are
    the positions of id r, ascending."""
    counters = cuda.device_array(2 * n, np.int64)
    _zero_kernel[launch(2 * n)](counters)
    counts, cursor = counters[:n], counters[n:]
    starts = cuda.device_array(n + 1, np.int64)
    order = cuda.device_array(max(ids.size, 1), np.int64)
    if ids.size:
        _count_kernel[launch(ids.size)](ids, counts)
    _starts_kernel[1, REDUCE_THREADS](counts, starts)
    if ids.size:
        bucket = cuda.device_array(ids.size, np.int64)
        _bucket_kernel[launch(ids.size)](ids, starts, cursor, bucket)
        _order_kernel[launch(ids.size)](ids, starts, bucket, order)
    return starts, order


@cuda.jit(cache=True)
def _take_grad_kernel(g, starts, order, out):
    """out [outer, n, inner] = g [outer, len(ids), inner] summed over each id's positions."""
    rows, inner = out.shape[1], out.shape[2]
    e = cuda.grid(1)
    stride = cuda.gridsize(1)
    while e < out.size:
        m = e % inner
        r = (e // inner) % rows
        o = e // (inner * rows)
        total = 0.0
        for k in range(starts[r], starts[r + 1]):
            total += float(g[o, order[k], m])      # float64 (also in the simulator)
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
        starts, order = _positions_by_id(ids.reshape(ids.size), n)
        blocks, threads = launch(out.size)
        _take_grad_kernel[blocks, threads](g.reshape(outer, ids.size, inner), starts, order,
                                           out.reshape(outer, n, inner))


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
