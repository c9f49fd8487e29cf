"""CUDA lowering of matmul (netdsl/ops/linalg.py): a tiled shared-memory kernel.

Each block computes a TILE x TILE tile of one output matrix, stepping along K one tile pair at
a time through shared memory (each input element is read from global memory once per tile
instead of once per multiply); the blocks stride over tiles and over the batch of matrices,
so any grid is correct.  Products accumulate in f64 for f64 data and f32 otherwise.
Transposes are flags (strides chosen in the kernel), not copies.  Batch axes broadcast: an
operand with extent 1 on a batch axis has stride 0 along it.

This is the portable fallback the issue asks for; cuBLAS (through CuPy or nvmath-python) for
large products on a real GPU is not wired yet: there was no GPU to measure it on.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64

from ..device import launch, simulating
from . import lowering

TILE = 16


@cuda.jit(device=True)
def _matrix_bases(matrix, batch, a_strides, b_strides, a_size, b_size):
    """Where output matrix `matrix` reads a and b: the batch index unravelled over out's batch
    axes, each operand's stride 0 along an axis it broadcasts, times its matrix size."""
    ia = 0
    ib = 0
    rest = matrix
    for d in range(len(batch) - 1, -1, -1):
        index = rest % batch[d]
        rest //= batch[d]
        ia += index * a_strides[d]
        ib += index * b_strides[d]
    return ia * a_size, ib * b_size


def _make_kernel(tile: int, accumulate):
    @cuda.jit(cache=True)
    def kernel(a, b, out, m, n, k, transpose_a, transpose_b, batch, a_strides, b_strides,
               count, a_rows, a_cols, b_rows, b_cols):
        a_tile = cuda.shared.array((tile, tile), accumulate)
        b_tile = cuda.shared.array((tile, tile), accumulate)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        tiles_m = (m + tile - 1) // tile
        tiles_n = (n + tile - 1) // tile
        work = count * tiles_m * tiles_n
        job = cuda.blockIdx.x
        while job < work:
            matrix = job // (tiles_m * tiles_n)
            rest = job % (tiles_m * tiles_n)
            row = (rest // tiles_n) * tile + ty
            col = (rest % tiles_n) * tile + tx
            a_base, b_base = _matrix_bases(matrix, batch, a_strides, b_strides,
                                           a_rows * a_cols, b_rows * b_cols)
            total = accumulate(0)
            for step in range((k + tile - 1) // tile):
                kk = step * tile + tx
                if row < m and kk < k:
                    if transpose_a:
                        a_tile[ty, tx] = a[a_base + kk * a_cols + row]
                    else:
                        a_tile[ty, tx] = a[a_base + row * a_cols + kk]
                else:
                    a_tile[ty, tx] = 0
                kk = step * tile + ty
                if col < n and kk < k:
                    if transpose_b:
                        b_tile[ty, tx] = b[b_base + col * b_cols + kk]
                    else:
                        b_tile[ty, tx] = b[b_base + kk * b_cols + col]
                else:
                    b_tile[ty, tx] = 0
                cuda.syncthreads()
                for j in range(tile):
                    total += a_tile[ty, j] * b_tile[j, tx]
                cuda.syncthreads()
            if row < m and col < n:
                out[matrix * m * n + row * n + col] = total
            job += cuda.gridDim.x
    return kernel


@cuda.jit(cache=True)
def _simple_kernel(a, b, out, m, n, k, transpose_a, transpose_b, batch, a_strides, b_strides,
                   count, a_rows, a_cols, b_rows, b_cols):
    """A thread per output element, no shared memory: the simulator's form for all but tiny
    products (each barrier of the tiled kernel costs milliseconds of Python there)."""
    g = cuda.grid(1)
    stride = cuda.gridsize(1)
    while g < count * m * n:
        matrix = g // (m * n)
        row = (g % (m * n)) // n
        col = g % n
        a_base, b_base = _matrix_bases(matrix, batch, a_strides, b_strides, a_rows * a_cols,
                                       b_rows * b_cols)
        total = 0.0
        for j in range(k):
            x = a[a_base + j * a_cols + row] if transpose_a else a[a_base + row * a_cols + j]
            y = b[b_base + col * b_cols + j] if transpose_b else b[b_base + j * b_cols + col]
            total += x * y
        out[g] = total
        g += stride


# Products of at most this many multiply-adds use the tiled kernel in the simulator too, so
# that the tests exercise it.
SIMULATOR_TILED_WORK = 4096

_KERNELS = {}


def _kernel(dtype):
    key = np.dtype(dtype).name
    if key not in _KERNELS:
        _KERNELS[key] = _make_kernel(_tile(), float64 if key == "float64" else float32)
    return _KERNELS[key]


def _tile() -> int:
    return 4 if simulating() else TILE      # the simulator pays per thread: small blocks


def matmul(a, b, out, transpose_a: bool, transpose_b: bool) -> None:
    """out = op(a) @ op(b) over equal-rank (>= 2) device arrays whose batch axes are 1 or
    out's extent (the lowering gives vectors and missing batch axes extent 1)."""
    rank = len(out.shape)
    m, n = out.shape[rank - 2], out.shape[rank - 1]
    a_rows, a_cols = a.shape[rank - 2], a.shape[rank - 1]
    b_rows, b_cols = b.shape[rank - 2], b.shape[rank - 1]
    k = a_rows if transpose_a else a_cols
    batch = tuple(int(d) for d in out.shape[:rank - 2]) or (1,)
    count = int(np.prod(batch, dtype=np.int64))
    if out.size == 0:
        return
    arguments = (a.reshape(a.size), b.reshape(b.size), out.reshape(out.size), m, n, k,
                 bool(transpose_a), bool(transpose_b), batch, _batch_strides(a.shape, batch),
                 _batch_strides(b.shape, batch), count, a_rows, a_cols, b_rows, b_cols)
    if simulating() and count * m * n * k > SIMULATOR_TILED_WORK:
        blocks, threads = launch(out.size)
        _simple_kernel[blocks, threads](*arguments)
        return
    tile = _tile()
    blocks = count * (-(-m // tile)) * (-(-n // tile))
    blocks = min(blocks, 2 if simulating() else 65535)
    _kernel(out.dtype)[blocks, (tile, tile)](*arguments)


def _batch_strides(shape, batch) -> tuple[int, ...]:
    """Matrix-index strides of an operand along out's batch axes (0 where it broadcasts)."""
    own = tuple(int(d) for d in shape[:len(shape) - 2]) or (1,)
    strides, step = [], 1
    for extent, target in zip(reversed(own), reversed(batch)):
        strides.append(0 if extent == 1 and target != 1 else step)
        step *= extent
    return tuple(reversed(strides))


@lowering("matmul")
def lower_matmul(ctx, node, ins, outs):
    a_type, b_type = (v.type for v in node.inputs)
    ta = bool(node.attrs.get("transpose_a", False))
    tb = bool(node.attrs.get("transpose_b", False))
    ra, rb, ro = a_type.rank, b_type.rank, node.outputs[0].rank
    rank = max(ra, rb, 2)
    a_dims = [f"{ins[0]}.shape[{d}]" for d in range(ra)] if ra > 1 else \
        ["1", f"{ins[0]}.shape[0]"]
    b_dims = [f"{ins[1]}.shape[{d}]" for d in range(rb)] if rb > 1 else \
        [f"{ins[1]}.shape[0]", "1"]
    rows = "1" if ra == 1 else f"{outs[0]}.shape[{ro - 1 - (rb > 1)}]"
    cols = "1" if rb == 1 else f"{outs[0]}.shape[{ro - 1}]"
    out_batch = [f"{outs[0]}.shape[{d}]" for d in range(ro - (ra > 1) - (rb > 1))]
    pad = lambda dims: ["1"] * (rank - len(dims)) + dims
    out_dims = pad(out_batch + [rows, cols])

    def shaped(name, dims):
        return f"{name}.reshape(({', '.join(dims)},))"

    return [f"{ctx.use(matmul)}({shaped(ins[0], pad(a_dims))}, {shaped(ins[1], pad(b_dims))}, "
            f"{shaped(outs[0], out_dims)}, {ta}, {tb})"]
