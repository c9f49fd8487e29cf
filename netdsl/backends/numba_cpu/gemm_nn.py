"""netdsl's own float32 product out = op(a) @ b, b [K, N] not transposed, for the processors
where gemm_nt.py's a @ bᵀ runs (blas_library.own_sgemm): the backward's products, a @ b (a
dense layer's input gradient, dy @ W) and aᵀ @ b (its weight gradient, dyᵀ @ x).

gemm_nt.py's a @ bᵀ runs here too, through b transposed (gemm_pack.py, own_gemm.py).

Here b's rows are contiguous along N, not K, so the kernel works in outer products: a tile of
8 rows by 32 columns of out is 16 vectors of 16 float32 held in registers through the loop
over K, each step two loads of b's row segments and 16 FMAs with broadcast elements of op(a).
LLVM does not build such a tile out of scalar code (128 scalar accumulators stayed scalar: 7
GFLOP/s), so `_tile` writes the loop in LLVM IR with <16 x float> values (`llvm.fma`); op(a)'s
elements are read through two strides, which covers a [M, K] and aᵀ alike.  Tiles of 4 rows
(8 vectors, two loads per 8 FMAs) ran at 109-219 GFLOP/s on the AMD EPYC (Zen 5) of
2026-12-06, those of 8 at 204-261: [512, 1024]ᵀ @ [1024, 128] (an LSTM's recurrent weight
gradient) 1,237 -> 657 us, [32, 512] @ [512, 128] 26 -> 16 us.  Rows left over by eights go
through a tile of 4, then tiles of one row (LeNet's 6 output channels: a loop over them ran its
[6, 25] @ [25, 3136] 4.7x slower than MKL, tiles 1.6x faster), columns left over by the
32-wide tiles through a 16-wide one, then through a loop over K and N that LLVM vectorises
along N (slow: out's row goes through memory at every K, so linalg._block gives such columns
to the BLAS and calls this kernel for whole 16-column tiles only).  Each element sums its K
products in order, one FMA each, as BLAS does.
"""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from .jit import kernel
from .support import view
from .tile_ir import WIDTH as _WIDTH
from .tile_ir import declared, open_loop, splat

_ROWS = 8                                     # rows of the tallest tile


def _tile_intrinsic(rows: int, vectors: int):
    """An intrinsic `tile(a, a0, a_row, a_k, b, b0, ldb, out, o0, ldo, k)` writing
    out[rows rows, vectors * 16 columns] = Σ_kk op(a)[r, kk] * b[kk, columns], where
    op(a)[r, kk] is a[a0 + r * a_row + kk * a_k] and b[kk, c] is b[b0 + kk * ldb + c] (flat
    element offsets); k >= 1."""
    @intrinsic
    def tile(typingctx, a, a0, a_row, a_k, b, b0, ldb, out, o0, ldo, k):
        if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.layout == "C"
                   for x in (a, b, out)):
            return None

        def codegen(context, builder, signature, args):
            from llvmlite import ir
            from numba.np.arrayobj import make_array
            float32, int64 = ir.FloatType(), ir.IntType(64)
            vector = ir.VectorType(float32, _WIDTH)
            fma = declared(builder.module, "llvm.fma.v16f32",
                           ir.FunctionType(vector, [vector] * 3))
            (a_v, a0_v, a_row_v, a_k_v, b_v, b0_v, ldb_v, out_v, o0_v, ldo_v, k_v) = args
            types_ = signature.args
            a_ptr = make_array(types_[0])(context, builder, a_v).data
            b_ptr = make_array(types_[4])(context, builder, b_v).data
            out_ptr = make_array(types_[7])(context, builder, out_v).data

            def i64(value, ty):
                return context.cast(builder, value, ty, types.int64)
            a0, a_row, a_k = i64(a0_v, types_[1]), i64(a_row_v, types_[2]), i64(a_k_v, types_[3])
            b0, ldb = i64(b0_v, types_[5]), i64(ldb_v, types_[6])
            o0, ldo, k = i64(o0_v, types_[8]), i64(ldo_v, types_[9]), i64(k_v, types_[10])

            def vector_at(pointer, offset):
                return builder.bitcast(builder.gep(pointer, [offset]), vector.as_pointer())

            _, loop, done, kk, sums = open_loop(builder, "tile", rows, vectors, vector)
            row_start = builder.add(b0, builder.mul(kk, ldb))
            segments = [builder.load(vector_at(b_ptr, builder.add(
                row_start, ir.Constant(int64, _WIDTH * c))), align=4) for c in range(vectors)]
            a_at_k = builder.add(a0, builder.mul(kk, a_k))
            after = []
            for r, row in enumerate(sums):
                offset = builder.add(a_at_k, builder.mul(a_row, ir.Constant(int64, r)))
                element = builder.load(builder.gep(a_ptr, [offset]), align=4)
                broadcast = splat(builder, element, vector)
                after.append([builder.call(fma, [broadcast, segments[c], value])
                              for c, value in enumerate(row)])
                for value, updated in zip(row, after[-1]):
                    value.add_incoming(updated, loop)
            following = builder.add(kk, ir.Constant(int64, 1))
            kk.add_incoming(following, loop)
            builder.cbranch(builder.icmp_signed("<", following, k), loop, done)
            builder.position_at_end(done)
            for r, row in enumerate(after):          # the sums after the last step
                row_offset = builder.add(o0, builder.mul(ldo, ir.Constant(int64, r)))
                for c, value in enumerate(row):
                    builder.store(value, vector_at(out_ptr, builder.add(
                        row_offset, ir.Constant(int64, _WIDTH * c))), align=4)
            return context.get_dummy_value()

        return types.none(a, a0, a_row, a_k, b, b0, ldb, out, o0, ldo, k), codegen
    return tile


# Tiles of 8 rows, of 4 and of 1 (for the rows left over by eights), by 32 and 16 columns.
_TILES = {(rows, vectors): _tile_intrinsic(rows, vectors) for rows in (8, 4, 1)
          for vectors in (2, 1)}
_T8W2, _T4W2, _T1W2 = _TILES[8, 2], _TILES[4, 2], _TILES[1, 2]     # global names: Numba
_T8W1, _T4W1, _T1W1 = _TILES[8, 1], _TILES[4, 1], _TILES[1, 1]     # calls them by name


@kernel(inline="always")
def _tiles(a, a_row, a_k, b, shift, out, i, rows, j, vectors, k):
    """out[i:i + rows, j:j + 16 * vectors] (rows 8, 4 or 1) by the tile of that size, out's
    column j being b's column j - shift."""
    n, ldb = out.shape[1], b.shape[1]
    a0, b0, o0 = i * a_row, j - shift, i * n + j
    if vectors == 2:
        if rows == 8:
            _T8W2(a, a0, a_row, a_k, b, b0, ldb, out, o0, n, k)
        elif rows == 4:
            _T4W2(a, a0, a_row, a_k, b, b0, ldb, out, o0, n, k)
        else:
            _T1W2(a, a0, a_row, a_k, b, b0, ldb, out, o0, n, k)
    elif rows == 8:
        _T8W1(a, a0, a_row, a_k, b, b0, ldb, out, o0, n, k)
    elif rows == 4:
        _T4W1(a, a0, a_row, a_k, b, b0, ldb, out, o0, n, k)
    else:
        _T1W1(a, a0, a_row, a_k, b, b0, ldb, out, o0, n, k)


@kernel(fastmath={"contract"})
def _rest(a, a_row, a_k, b, shift, out, r, j0, j1, k):
    """out[r, j0:j1] = op(a)[r] @ b[:, j0 - shift:j1 - shift] (a flat [.] view of op(a) by
    its strides)."""
    for jj in range(j0, j1):
        out[r, jj] = 0
    for kk in range(k):
        scale = a[r * a_row + kk * a_k]
        for jj in range(j0, j1):
            out[r, jj] += scale * b[kk, jj - shift]


@kernel(inline="always")
def gemm_nn(a, b, shift, out, transpose_a, m0, m1, n0, n1):
    """out[m0:m1, n0:n1] = (op(a) @ b)[m0:m1, n0:n1] for C-contiguous float32 a ([M, K], or
    [K, M] where transpose_a), b [K, N'] and out [M, N], out's column j being b's column
    j - shift (0, or n0 for gemm_nt's panel of the block's columns); K >= 1 (checked by the
    caller)."""
    k = b.shape[0]
    flat = view(a, 0, (a.size,))
    a_row, a_k = (1, a.shape[1]) if transpose_a else (a.shape[1], 1)
    i = m0
    while i < m1:
        rows = _ROWS if i + _ROWS <= m1 else (4 if i + 4 <= m1 else 1)
        j = n0
        while j + _WIDTH <= n1:
            # One call site, an int64 width: a literal 2 or 1 compiles _tiles once for each.
            vectors = 2 if j + 2 * _WIDTH <= n1 else 1
            _tiles(a, a_row, a_k, b, shift, out, i, rows, j, vectors, k)
            j += vectors * _WIDTH
        if j < n1:
            for r in range(i, i + rows):
                _rest(flat, a_row, a_k, b, shift, out, r, j, n1, k)
        i += rows


__all__ = ["gemm_nn"]
