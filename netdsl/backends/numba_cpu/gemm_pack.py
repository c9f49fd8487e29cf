"""b's rows transposed into a scratch panel, so that gemm_nt.py's a @ bᵀ runs as gemm_nn.py's
a @ b: the outer-product tiles ran ~1.7x faster than the dot-product ones on the AMD EPYC (Zen
5) of 2026-12-06 ([32, 128] @ [128, 512] 16 us against [32, 128] @ [512, 128]ᵀ 31 us), whose
tiles end in 16 vector sums added across their lanes.

`transpose` moves 16 x 16 blocks through registers: 16 rows loaded as <16 x float> vectors,
transposed in four rounds of two-input shuffles (rows i and i + s exchange the lanes whose
index has bit s set, s = 8, 4, 2, 1), 16 vectors stored.  A Numba loop of 16 x 16 elements
moved them at ~0.3 ns each (20 us for [512, 128]), these at ~0.1 ns.
"""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic

from .jit import kernel
from .tile_ir import WIDTH as _WIDTH


@intrinsic
def _block16(typingctx, source, s0, lds, target, t0, ldt):
    """target[t0 + c * ldt + r] = source[s0 + r * lds + c] for r, c < 16 (flat offsets)."""
    if not all(isinstance(x, types.Array) and x.dtype == types.float32 and x.layout == "C"
               for x in (source, target)):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.np.arrayobj import make_array
        int64, int32 = ir.IntType(64), ir.IntType(32)
        vector = ir.VectorType(ir.FloatType(), _WIDTH)
        source_t, _, _, target_t, _, _ = signature.args
        source_ptr = make_array(source_t)(context, builder, args[0]).data
        target_ptr = make_array(target_t)(context, builder, args[3]).data
        s0, lds, t0, ldt = (context.cast(builder, args[i], signature.args[i], types.int64)
                            for i in (1, 2, 4, 5))

        def at(pointer, start, stride, index):
            offset = builder.add(start, builder.mul(stride, ir.Constant(int64, index)))
            return builder.bitcast(builder.gep(pointer, [offset]), vector.as_pointer())
        rows = [builder.load(at(source_ptr, s0, lds, r), align=4) for r in range(_WIDTH)]
        step = _WIDTH // 2
        while step >= 1:
            low = ir.Constant(ir.VectorType(int32, _WIDTH), [
                lane + _WIDTH - step if lane & step else lane for lane in range(_WIDTH)])
            high = ir.Constant(ir.VectorType(int32, _WIDTH), [
                lane + _WIDTH if lane & step else lane + step for lane in range(_WIDTH)])
            exchanged = list(rows)
            for i in range(_WIDTH):
                if not i & step:
                    exchanged[i] = builder.shuffle_vector(rows[i], rows[i + step], low)
                    exchanged[i + step] = builder.shuffle_vector(rows[i], rows[i + step], high)
            rows = exchanged
            step //= 2
        for c, column in enumerate(rows):
            builder.store(column, at(target_ptr, t0, ldt, c), align=4)
        return context.get_dummy_value()

    return types.none(source, s0, lds, target, t0, ldt), codegen


@kernel(inline="always")
def transpose(b, n0, n1, panel):
    """panel[kk, j - n0] = b[j, kk] for n0 <= j < n1 and every kk, for C-contiguous float32 b
    [N, K] and panel [K, n1 - n0], where n1 - n0 is a multiple of 16 and K >= 16.  K's last
    block, where 16 does not divide K, is the 16 columns ending at K: it overlaps the one
    before, rewriting some of its elements with the same values (no loop element by element,
    which cost ~0.1 s of compiling)."""
    k = b.shape[1]
    width = n1 - n0
    for kk0 in range(0, k, _WIDTH):
        kk = kk0 if kk0 + _WIDTH <= k else k - _WIDTH
        for j in range(n0, n1, _WIDTH):
            _block16(b, j * k + kk, k, panel, kk * width + j - n0, width)


__all__ = ["transpose"]
