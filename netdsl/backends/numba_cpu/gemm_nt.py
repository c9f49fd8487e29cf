"""netdsl's own float32 product out = a @ bᵀ, for processors whose BLAS runs here without the
vector width the processor has (blas_library.own_sgemm: an AVX-512 processor, the BLAS on AVX2
kernels): the dot-product tiles, for blocks of few rows, and `packed_until`, the rule that sends
the others through b transposed and gemm_nn.py's outer-product tiles (own_gemm.py).

a @ bᵀ, with a [M, K] and b [N, K] both contiguous along K, is what a dense layer's forward
computes (x @ Wᵀ, W stored [out, in]) and a recurrent step's h @ W_hhᵀ.  Every output element
is a dot product of two contiguous rows, so the kernel takes 4 rows of a and 4 of b at a time
and keeps their 16 dot products as 16 vectors of 16 partial sums (one per lane) through one
loop over K, 16 elements a step (the last step's loads masked to the K left), then adds each
vector's lanes pairwise.  `_tile` writes that loop in LLVM IR: the same tile as scalar Numba
code with `reassoc` ran as fast, but LLVM's loop vectoriser took ~0.3 s more of a cold compile
to find it.  On the AMD EPYC (Zen 5) of 2026-12-05, whose environment held OpenBLAS to its
Haswell kernels and where MKL runs AVX2 kernels, one thread: [128, 784] @ [256, 784]ᵀ 233-306
us against MKL's 440-502 (~190 against ~105 GFLOP/s), [128, 256] @ [256, 256]ᵀ 90-101 against
143-167 us, [32, 128] @ [512, 128]ᵀ (an LSTM step's) 29-31 against 38-47 us; OpenBLAS's own
AVX-512 (SkylakeX) kernels ran the first in 266 us.

The sums differ from BLAS's in rounding only (each element is the same K products, summed in
16 partial sums instead of one running sum), and do not depend on the thread count: a block of
rows or columns (matmul_2d_parallel) sums each element exactly as the whole product does.
"""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from .jit import kernel
from .tile_ir import WIDTH as _WIDTH
from .tile_ir import declared, open_loop, splat

_SIDE = 4                                     # rows and columns of the largest tile


def _tile_intrinsic(rows: int, columns: int):
    """An intrinsic `tile(a, a0, b, b0, k, out, o0, ldo)` writing out[o0 + r * ldo + c] =
    a[a0 + r * k:][:k] · b[b0 + c * k:][:k] for r < rows, c < columns (flat element offsets
    of rows k long): rows x columns vectors of 16 partial sums through the loop over K, 16
    elements a step, the last step's loads masked to the K left; then each vector's sum."""
    @intrinsic
    def tile(typingctx, a, a0, b, b0, k, out, o0, ldo):
        if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.layout == "C"
                   for x in (a, b, out)):
            return None

        def codegen(context, builder, signature, args):
            from llvmlite import ir
            from numba.np.arrayobj import make_array
            float32, int64, bit = ir.FloatType(), ir.IntType(64), ir.IntType(1)
            vector = ir.VectorType(float32, _WIDTH)
            module = builder.module
            fma = declared(module, "llvm.fma.v16f32", ir.FunctionType(vector, [vector] * 3))
            load = declared(module, "llvm.masked.load.v16f32.p0", ir.FunctionType(
                vector, [float32.as_pointer(), ir.IntType(32), ir.VectorType(bit, _WIDTH),
                         vector]))
            a_t, _, b_t, _, _, out_t, _, _ = signature.args
            pointers = [make_array(ty)(context, builder, value).data
                        for ty, value in ((a_t, args[0]), (b_t, args[2]), (out_t, args[5]))]
            a0, b0, k, o0, ldo = (context.cast(builder, args[i], signature.args[i], types.int64)
                                  for i in (1, 3, 4, 6, 7))
            zero = ir.Constant(vector, None)
            lanes = ir.Constant(ir.VectorType(int64, _WIDTH), list(range(_WIDTH)))
            entry, loop, done, kk, sums = open_loop(builder, "nt", rows, columns, vector, k)
            left = splat(builder, builder.sub(k, kk), ir.VectorType(int64, _WIDTH))
            mask = builder.icmp_signed("<", lanes, left)

            def loaded(pointer, start, index):
                offset = builder.add(builder.add(start, builder.mul(index, k)), kk)
                return builder.call(load, [builder.gep(pointer, [offset]),
                                           ir.Constant(ir.IntType(32), 4), mask, zero])
            a_rows = [loaded(pointers[0], a0, ir.Constant(int64, r)) for r in range(rows)]
            b_rows = [loaded(pointers[1], b0, ir.Constant(int64, c)) for c in range(columns)]
            after = [[builder.call(fma, [a_rows[r], b_rows[c], sums[r][c]])
                      for c in range(columns)] for r in range(rows)]
            for row, updated in zip(sums, after):
                for value, new in zip(row, updated):
                    value.add_incoming(new, loop)
            following = builder.add(kk, ir.Constant(int64, _WIDTH))
            kk.add_incoming(following, loop)
            builder.cbranch(builder.icmp_signed("<", following, k), loop, done)
            builder.position_at_end(done)
            finals = [[builder.phi(vector) for _ in range(columns)] for _ in range(rows)]
            for r in range(rows):
                for c in range(columns):
                    final = finals[r][c]
                    final.add_incoming(zero, entry)
                    final.add_incoming(after[r][c], loop)
                    # The 16 partial sums added pairwise: halves, quarters, ...
                    width = _WIDTH
                    while width > 1:
                        width //= 2
                        upper = builder.shuffle_vector(final, ir.Constant(vector, ir.Undefined), ir.Constant(
                            ir.VectorType(ir.IntType(32), _WIDTH),
                            [width + i if i < width else i for i in range(_WIDTH)]))
                        final = builder.fadd(final, upper)
                    total = builder.extract_element(final, ir.Constant(ir.IntType(32), 0))
                    offset = builder.add(o0, builder.add(builder.mul(ldo, ir.Constant(int64, r)),
                                                         ir.Constant(int64, c)))
                    builder.store(total, builder.gep(pointers[2], [offset]))
            return context.get_dummy_value()

        return types.none(a, a0, b, b0, k, out, o0, ldo), codegen
    return tile


# Tiles of 4 x 4 outputs, and of 4 x 1, 1 x 4, 1 x 1 for the rows and columns left over.
_T44, _T41, _T14, _T11 = (_tile_intrinsic(rows, columns) for rows, columns in
                          ((4, 4), (4, 1), (1, 4), (1, 1)))


@kernel(inline="always")
def _tile(a, b, out, i, rows, j, columns, k):
    """out[i:i + rows, j:j + columns] (rows and columns 4 or 1) by the tile of that size."""
    n = out.shape[1]
    a0, b0, o0 = i * k, j * k, i * n + j
    if rows == 4:
        if columns == 4:
            _T44(a, a0, b, b0, k, out, o0, n)
        else:
            _T41(a, a0, b, b0, k, out, o0, n)
    elif columns == 4:
        _T14(a, a0, b, b0, k, out, o0, n)
    else:
        _T11(a, a0, b, b0, k, out, o0, n)


@kernel(inline="always")
def packed_until(rows, k, n0, n1):
    """The column up to which a block of `rows` rows of a @ bᵀ, columns n0:n1, runs through b's
    rows transposed into a panel and gemm_nn's tiles (by sixteens, and for K >= 16 only, as
    gemm_pack.transpose takes them; n0 where it does not): the panel's transposition (~0.1 ns
    an element) is paid once for all the rows, the dot-product tiles' sums across lanes once
    per K.  Measured on the AMD EPYC of 2026-12-06 at N = 256
    (dot-product time / packed time): 16 rows 1.44x at K = 64, 1.08 at 128, 0.98 at 256, 0.94
    at 400; 32 rows 1.40 at 128, 1.14 at 400, 0.96 at 512, 0.95 at 784; 64 and 128 rows
    1.25-2.4 at every K."""
    if rows >= 16 and (rows >= 64 or k <= 12 * rows) and k >= _WIDTH:
        return n0 + (n1 - n0) // _WIDTH * _WIDTH
    return n0


@kernel(inline="always")
def dot_tiles(a, b, out, m0, m1, n0, n1):
    """out[m0:m1, n0:n1] = a[m0:m1] @ b[n0:n1]ᵀ for C-contiguous float32 a [M, K], b [N, K]
    and out [M, N] (shapes checked by the caller) by tiles of 4 x 4 dot products, the rows and
    columns left over in tiles of 4 x 1, 1 x 4 and 1 x 1."""
    k = a.shape[1]
    i = m0
    while i < m1:
        rows = _SIDE if i + _SIDE <= m1 else 1
        j = n0
        while j < n1:
            columns = _SIDE if j + _SIDE <= n1 else 1
            _tile(a, b, out, i, rows, j, columns, k)
            j += columns
        i += rows


__all__ = ["dot_tiles", "packed_until"]
