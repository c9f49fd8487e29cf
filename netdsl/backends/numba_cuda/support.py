"""Helpers the generated CUDA modules import: device views over the arenas, launch grids,
flat views for kernels, device copies, and device functions the kernels call."""
from __future__ import annotations

import math

from numba import cuda

from .device import launch, simulating


def view(arena, offset: int, shape: tuple):
    """A C-contiguous device array of `shape` starting `offset` elements into `arena`."""
    size = math.prod(shape)
    if len(arena.shape) != 1:
        arena = arena.reshape(arena.size)
    return arena[offset:offset + size].reshape(shape)


def flat(array):
    """The array as one flat 1-D device array (every kernel indexes flat arrays)."""
    return array.reshape(array.size)


def grid(elements: int) -> tuple[int, int]:
    """(blocks, threads) of a grid-stride elementwise kernel over `elements` items."""
    return launch(elements)


def reduce_grid(cells: int, threads: int) -> tuple[int, int]:
    """(blocks, threads) of a reduction kernel: one block per output cell, grid-striding."""
    cap = 2 if simulating() else 65535
    return max(min(int(cells), cap), 1), threads


@cuda.jit(cache=True)
def _copy_kernel(target, source):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < target.size:
        target[i] = source[i]
        i += stride


def copy(target, source) -> None:
    """target[...] = source for two device arrays of one size."""
    if target.size:
        blocks, threads = launch(target.size)
        _copy_kernel[blocks, threads](flat(target), flat(source))


def take_step(whole, t: int, part) -> None:
    """part[p, q] = whole[p, t, q]: one step of a (P, T, Q) sequence into a (P, Q) buffer."""
    from .lowerings.shape import strided_copy
    steps, width = whole.shape[1], whole.shape[2]
    strided_copy(part, 0, (width, 1), whole, t * width, (steps * width, 1), part.shape)


def put_step(part, whole, t: int) -> None:
    """whole[p, t, q] = part[p, q]: one step's (P, Q) buffer into a (P, T, Q) output."""
    from .lowerings.shape import strided_copy
    steps, width = whole.shape[1], whole.shape[2]
    strided_copy(whole, t * width, (steps * width, 1), part, 0, (width, 1), part.shape)


@cuda.jit(device=True)
def _sign(x):
    """np.sign of a scalar: -1, 0 or 1 in x's type, nan for nan."""
    if x > 0:
        return x - x + 1
    if x < 0:
        return x - x - 1
    return x - x + x


__all__ = ["copy", "flat", "grid", "put_step", "reduce_grid", "take_step", "view"]
