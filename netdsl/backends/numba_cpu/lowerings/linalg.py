"""CPU lowering of matmul (netdsl/ops/linalg.py): BLAS gemm with transpose flags.

The kernels call the chosen BLAS library's gemm (blas_library.py: SciPy's OpenBLAS, or MKL)
through an intrinsic, passing transpose flags rather than transposed views, so that one
compiled signature per dtype serves every combination.  A [..., M, K] @ [K, N] product is one
gemm over all batch rows; other batched products are one gemm per matrix in a serial loop
(matmul_batched), or, in a context that is parallel throughout, small matrices in a compiled
kernel over the batch in parallel (matmul_batched_parallel, batched_matmul.py).
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import intrinsic

# Numba's own intrinsic behind get_num_threads(), bound by symbol: the public function binds a
# ctypes pointer, which kept Numba from caching the kernel that calls it.
from numba.np.ufunc.parallel import _iget_num_threads

from ..blas_library import (NARROW_COLUMNS, NARROW_SYMBOLS, OWN_GEMM, OWN_SGEMM, SYMBOLS,
                            netdsl_cuts_products)
from ..blas_threads import SERIAL_WORK, blas_threads
from ..builtins_inline import max2, min2
from ..jit import kernel
from ..parallel_calls import in_parallel
from ..separate import separately
from ..support import view as _view
from . import lowering
from .batched_matmul import SMALL_WORK, batch_index, small_batched


@intrinsic
def _gemm(typingctx, narrow, transa, transb, m, n, k, a, a0, lda, b, b0, ldb, c, c0, ldc):
    """Fortran gemm of the chosen BLAS (`netdsl_sgemm` / `netdsl_dgemm`, blas_library.py), or
    where `narrow` holds of the narrow products' library (blas_library.narrow_library),
    column-major: c[m, n] = op(a) @ op(b), with alpha 1 and beta 0, each matrix starting a0, b0,
    c0 elements into its array; transa and transb are the characters' codes (110 'n', 116 't');
    sizes must fit 32 bits (matmul_2d checks).  Fortran's gemm returns nothing: this, 0."""
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) for x in arrays) or \
            not all(x.layout == "C" and x.ndim == 2 and x.dtype == c.dtype for x in arrays) or \
            c.dtype not in (types.float32, types.float64):
        return None
    single = c.dtype == types.float32
    symbols = (SYMBOLS[0] if single else SYMBOLS[1],
               NARROW_SYMBOLS[0] if single else NARROW_SYMBOLS[1])

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils
        from numba.np.arrayobj import make_array
        char, int32 = ir.IntType(8), ir.IntType(32)
        element = context.get_value_type(c.dtype)
        pointers = [char.as_pointer()] * 2 + [int32.as_pointer()] * 3 + [
            element.as_pointer(), element.as_pointer(), int32.as_pointer(),
            element.as_pointer(), int32.as_pointer(), element.as_pointer(),
            element.as_pointer(), int32.as_pointer()]
        gemm_type = ir.FunctionType(ir.VoidType(), pointers)
        usual, narrowed = (cgutils.get_or_insert_function(builder.module, gemm_type, symbol)
                           for symbol in symbols)
        t = signature.args[1:]
        fn = builder.select(context.cast(builder, args[0], signature.args[0], types.boolean),
                            narrowed, usual)
        args = args[1:]

        def slot(value, ty, as_type):       # Fortran takes every argument by address
            cast = context.cast(builder, value, ty, types.int64)
            return cgutils.alloca_once_value(builder, builder.trunc(cast, as_type))

        def data(ty, value, offset, offset_type):
            first = make_array(ty)(context, builder, value).data
            return builder.gep(first, [context.cast(builder, offset, offset_type, types.intp)])

        ta, tb, m_v, n_v, k_v, a_v, a0, lda_v, b_v, b0, ldb_v, c_v, c0, ldc_v = args
        one = cgutils.alloca_once_value(builder, ir.Constant(element, 1.0))
        zero = cgutils.alloca_once_value(builder, ir.Constant(element, 0.0))
        builder.call(fn, (slot(ta, t[0], char), slot(tb, t[1], char), slot(m_v, t[2], int32),
                          slot(n_v, t[3], int32), slot(k_v, t[4], int32), one,
                          data(a, a_v, a0, t[6]), slot(lda_v, t[7], int32),
                          data(b, b_v, b0, t[9]), slot(ldb_v, t[10], int32), zero,
                          data(c, c_v, c0, t[12]), slot(ldc_v, t[13], int32)))
        return ir.Constant(int32, 0)

    return types.int32(narrow, transa, transb, m, n, k, a, a0, lda, b, b0, ldb, c, c0, ldc), \
        codegen


@intrinsic
def _own_sgemm(typingctx, out):
    """Whether a product into `out` runs in netdsl's own kernels (own_gemm.py): for a float32
    out, the flag blas_library.OWN_SGEMM names, raised once this process has loaded them
    (own_entry.load, where own_sgemm holds) and read at run time so that cached code follows
    the process's choice; for other dtypes a constant False."""
    def codegen(context, builder, signature, args):
        from llvmlite import ir
        if out.dtype != types.float32:
            return ir.Constant(ir.IntType(1), 0)
        flag = builder.module.globals.get(OWN_SGEMM)
        if flag is None:
            flag = ir.GlobalVariable(builder.module, ir.IntType(32), OWN_SGEMM)
        return builder.icmp_unsigned("!=", builder.load(flag), ir.Constant(ir.IntType(32), 0))

    return types.boolean(out), codegen


@intrinsic
def _own_gemm(typingctx, a, b, out, kind, m0, m1, n0, n1):
    """out[m0:m1, n0:n1] of the product `kind` (0 a @ bᵀ, 1 a @ b, 2 aᵀ @ b) by netdsl's own
    float32 kernels, called through the symbol blas_library.OWN_GEMM (own_entry.py's
    trampoline to own_gemm.py's entry point); for arrays not float32, nothing (_own_sgemm
    keeps such calls from running)."""
    arrays = (a, b, out)
    if not all(isinstance(x, types.Array) and x.layout == "C" and x.ndim == 2 for x in arrays):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils
        from numba.np.arrayobj import make_array
        if not all(x.dtype == types.float32 for x in arrays):
            return context.get_dummy_value()
        int64, pointer = ir.IntType(64), ir.FloatType().as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [pointer] * 3 + [int64] * 8), OWN_GEMM)
        data = [make_array(ty)(context, builder, value) for ty, value in zip(arrays, args[:3])]
        m, n = cgutils.unpack_tuple(builder, data[2].shape, 2)
        kind_value = context.cast(builder, args[3], signature.args[3], types.int64)
        b_rows, b_columns = cgutils.unpack_tuple(builder, data[1].shape, 2)
        # K: b's columns for a @ bᵀ (kind 0), else its rows.
        k = builder.select(builder.icmp_signed("==", kind_value, ir.Constant(int64, 0)),
                           b_columns, b_rows)
        block = [context.cast(builder, value, ty, types.int64)
                 for value, ty in zip(args[4:], signature.args[4:])]
        builder.call(fn, [item.data for item in data] + [m, n, k, kind_value] + block)
        return context.get_dummy_value()

    return types.none(a, b, out, kind, m0, m1, n0, n1), codegen


@kernel(cache=True, inline="always")
def _checked(a, b, out, transpose_a, transpose_b):
    """(M, N, K) of out = op(a) @ op(b), checked to match and to fit BLAS's 32-bit sizes."""
    m = a.shape[1] if transpose_a else a.shape[0]
    k = a.shape[0] if transpose_a else a.shape[1]
    n = b.shape[0] if transpose_b else b.shape[1]
    k2 = b.shape[1] if transpose_b else b.shape[0]
    if k != k2 or out.shape[0] != m or out.shape[1] != n:
        raise ValueError("matmul_2d: shapes do not match")
    if max2(max2(m, n), k) > 2147483647:
        raise ValueError("matmul_2d: a dimension over 2^31 - 1, more than BLAS's 32-bit sizes")
    return m, n, k


# netdsl's own kernels take a product only from this many columns of out (a vector's width)
# and, for a @ bᵀ, this depth of K: below them a row's columns go through a loop written to
# memory at every K (gemm_nn._rest) or a dot product of a few lanes (gemm_nt), and the BLAS's
# small-matrix kernels win by 5-100x.  Measured at one thread on an AMD EPYC (Zen 4) on
# 2026-12-06, own kernels against OpenBLAS: [128, 256] @ [256, 10] (the MLP's last layer)
# 251 against 9.2 us, its weight gradient [256, 128]ᵀ @ [128, 10] 254 against 6.8 us, the
# input gradient [128, 10] @ [256, 10]ᵀ 50.6 against 9.7 us; [256, 784] @ [784, 1] 716
# against 8.4 us; from 16 columns (and K of 16 for a @ bᵀ) the two were even (median ratio of
# 630 shapes up to 2^22 multiply-adds 0.7-1.1).
OWN_MIN_COLUMNS = 16
OWN_MIN_DEPTH = 16


@kernel(cache=True, inline="always")
def _own_takes(a, b, out, transpose_a, transpose_b, k):
    """Whether netdsl's own kernels run out = op(a) @ op(b) (own_sgemm holds, the product is
    float32 and not aᵀ @ bᵀ, and wide and deep enough: OWN_MIN_COLUMNS) or the BLAS does."""
    if transpose_a and transpose_b:
        return False
    if out.shape[1] < OWN_MIN_COLUMNS or (transpose_b and k < OWN_MIN_DEPTH):
        return False
    return _own_sgemm(out)


@kernel(cache=True)
def _block(a, b, out, transpose_a, transpose_b, k, m0, m1, n0, n1):
    """out[m0:m1, n0:n1] = (op(a) @ op(b))[m0:m1, n0:n1] for C-contiguous 2-D arrays: one gemm
    of the block's rows of op(a) and columns of op(b) (with OpenBLAS the same sums in the same
    order as one gemm of the whole product; see matmul_2d_parallel for MKL).  Where
    blas_library.own_sgemm() holds, a float32 product but aᵀ @ bᵀ runs in netdsl's own kernels
    instead (gemm_nt.py, gemm_nn.py), where it is wide and deep enough (_own_takes); for
    a @ b and aᵀ @ b only their whole 16-column tiles, the columns left over by them in the
    BLAS (gemm_nn._rest takes such columns a row at a time, all of K through memory).
    Measured at one thread on the Zen 4 EPYC of 2026-12-06, own kernels with the leftover
    columns in _rest against in OpenBLAS: LeNet-5's [64, 400] @ [400, 120] 206 against 53 us,
    its weight gradient [400, 64]ᵀ @ [64, 120] 213 against 55, [64, 120] @ [120, 84] 39
    against 12, [128, 784] @ [784, 300] 1,412 against 560."""
    n = out.shape[1]
    if _own_takes(a, b, out, transpose_a, transpose_b, k):
        split = n1 if transpose_b else n0 + (n1 - n0) // OWN_MIN_COLUMNS * OWN_MIN_COLUMNS
        if split > n0:
            _own_gemm(a, b, out, 0 if transpose_b else (2 if transpose_a else 1), m0, m1, n0,
                      split)
        if split == n1:
            return
        n0 = split
    # Row-major out = op(a) @ op(b) is column-major out' = op(b)' @ op(a)'.  Out of 2 to 15
    # columns goes to the narrow products' library (blas_library.narrow_library).
    _gemm(1 < n1 - n0 < NARROW_COLUMNS,
          116 if transpose_b else 110, 116 if transpose_a else 110, n1 - n0, m1 - m0, k,
          b, n0 * b.shape[1] if transpose_b else n0, b.shape[1],
          a, m0 if transpose_a else m0 * a.shape[1], a.shape[1], out, m0 * n + n0, n)


# matmul_2d and the parallel blocks call it separately (separate.py): compiled once, not
# inlined into both.  On the AMD EPYC (Zen 3) of 2026-12-07, alternated: matmul_2d_parallel's
# cold compile (matmul_2d and the parallel loop beneath it) 2.0-2.35 -> 1.55-2.0 s of CPU, the
# MLP step's cold compile with MKL (whose products it cuts) 4.25 -> 3.70 s (medians of 6).
_block_call = separately(_block)


@kernel(cache=True)
def matmul_2d(a, b, out, transpose_a, transpose_b):
    """out = op(a) @ op(b) for C-contiguous 2-D arrays, op transposing where its flag is set:
    one BLAS gemm, on one thread below SERIAL_WORK multiply-adds.  Flags instead of transposed
    views (`w.T`), so that one compiled signature per dtype serves every combination (each
    layout combination of np.dot compiled anew)."""
    m, n, k = _checked(a, b, out, transpose_a, transpose_b)
    if m == 0 or n == 0:
        return
    if k == 0:
        out[:, :] = 0
        return
    # A small product runs on one BLAS thread (blas_threads.py says why and what it measured);
    # np.int64(1), not 1: a literal would compile blas_threads a second time, for Literal[int].
    before = blas_threads(np.int64(1)) if m * n * k < SERIAL_WORK else 0
    _block_call(a, b, out, transpose_a, transpose_b, k, 0, m, 0, n)
    if before > 1:
        blas_threads(before)


# Called separately (separate.py): its code is compiled once, not again into the parallel
# variant's module.
_matmul_2d = separately(matmul_2d)


@kernel(cache=True)
def _one_block(block, a, b, out, transpose_a, transpose_b, k, size):
    """Block `block` of matmul_2d_parallel's: `size` rows of out (or columns, where out has
    more of those), one gemm.  Run on Numba's threads by in_parallel (parallel_calls.py): a
    prange around it took 0.45 s of a cold compile, 0.37 s of it Numba's parfor lowering."""
    m, n = out.shape[0], out.shape[1]
    low = np.int64(block) * size
    if m >= n:
        _block_call(a, b, out, transpose_a, transpose_b, k, low, min2(m, low + size), 0, n)
    else:
        _block_call(a, b, out, transpose_a, transpose_b, k, 0, m, low, min2(n, low + size))


_blocks_in_parallel = in_parallel(_one_block)


@kernel(cache=True)
def matmul_2d_parallel(a, b, out, transpose_a, transpose_b):
    """matmul_2d, but where the BLAS runs one thread (MKL as netdsl loads it: blas_library.py)
    a product of 2 * SERIAL_WORK multiply-adds or more is cut into one block of rows (or of
    columns, the longer side) per Numba thread, each one gemm, on Numba's threads.  OpenBLAS, with
    threads of its own, gets the whole product (matmul_2d).  The blocks depend on the thread
    count only, so a run repeats its numbers; MKL may round a block of another width slightly
    differently from the whole product (5e-5 in [128, 784] @ [784, 256]), as its own threads
    would.  Measured with MKL at two threads, [128, 784] @ [784, 256]: 315 us whole, 227 cut."""
    m, n, k = _checked(a, b, out, transpose_a, transpose_b)
    threads = _iget_num_threads()
    # A BLAS with threads of its own gets the whole product, unless netdsl's kernel runs it.
    own = _own_takes(a, b, out, transpose_a, transpose_b, k)
    if m * n * k < 2 * SERIAL_WORK or threads < 2 or \
            (blas_threads(np.int64(0)) != 1 and not own):
        _matmul_2d(a, b, out, transpose_a, transpose_b)
        return
    extent = max2(m, n)
    # Blocks a multiple of 16 long: whole tiles of the BLAS's kernels, as in one call.
    size = ((extent + threads - 1) // threads + 15) // 16 * 16
    _blocks_in_parallel((extent + size - 1) // size, a, b, out, transpose_a, transpose_b, k,
                        size)


@kernel(cache=True)
def _batch_views(a, b, out, transpose_a, transpose_b):
    """a, b, out as [count, rows, cols] views, checked to multiply; and M * N * K."""
    rank = out.ndim
    count_a = 1
    count_b = 1
    count = 1
    for d in range(rank - 2):
        count_a *= a.shape[d]
        count_b *= b.shape[d]
        count *= out.shape[d]
    a3 = _view(a, 0, (count_a, a.shape[rank - 2], a.shape[rank - 1]))
    b3 = _view(b, 0, (count_b, b.shape[rank - 2], b.shape[rank - 1]))
    out3 = _view(out, 0, (count, out.shape[rank - 2], out.shape[rank - 1]))
    m = a3.shape[2] if transpose_a else a3.shape[1]
    k = a3.shape[1] if transpose_a else a3.shape[2]
    n = b3.shape[1] if transpose_b else b3.shape[2]
    k2 = b3.shape[2] if transpose_b else b3.shape[1]
    if k != k2 or out3.shape[1] != m or out3.shape[2] != n:
        raise ValueError("matmul_batched: shapes do not match")
    return a3, b3, out3, m * n * k


@kernel(cache=True)
def _gemm_per_matrix(a, b, out, a3, b3, out3, transpose_a, transpose_b):
    """One gemm per output matrix, in a serial loop: BLAS is never called inside a parallel
    region (it runs its own threads; nested, OpenBLAS warns that it may hang)."""
    for i in range(out3.shape[0]):
        index_a, index_b = batch_index(i, a.shape, b.shape, out.shape)
        matmul_2d(a3[index_a], b3[index_b], out3[i], transpose_a, transpose_b)


@kernel(cache=True)
def matmul_batched(a, b, out, transpose_a, transpose_b):
    """Batched gemm; a, b, out have equal rank >= 3, batch axes of a/b are 1 or out's extent.
    One BLAS gemm per matrix: on one core OpenBLAS beat the compiled kernel at every size
    measured, down to 8 x 8 x 8 (its small-matrix path makes a call ~60 ns)."""
    a3, b3, out3, _ = _batch_views(a, b, out, transpose_a, transpose_b)
    _gemm_per_matrix(a, b, out, a3, b3, out3, transpose_a, transpose_b)


# Called separately, not linked in: a caller's cached code that holds a prange's launch names
# the thread pool's symbols (allocate_sched), and only the function with the prange starts the
# pool when it loads from Numba's cache.  Linked into matmul_batched_parallel, a process that
# loaded that kernel before anything started the pool aborted in LLVM ("Symbol not found:
# allocate_sched": the parallel float64 test of tests/ops/test_linalg.py on a warm cache).
_small_batched = separately(small_batched)


@kernel(cache=True)
def matmul_batched_parallel(a, b, out, transpose_a, transpose_b):
    """matmul_batched with matrices of at most SMALL_WORK multiply-adds in parallel over the
    batch (batched_matmul.small_batched: no BLAS call); larger ones one gemm each."""
    a3, b3, out3, work = _batch_views(a, b, out, transpose_a, transpose_b)
    if work <= SMALL_WORK:
        _small_batched(a3, b3, out3, a.shape, b.shape, out.shape, transpose_a, transpose_b)
    else:
        _gemm_per_matrix(a, b, out, a3, b3, out3, transpose_a, transpose_b)


def _flag(value: bool) -> str:
    """A transpose flag as emitted: `np.bool_(...)` is typed `bool`, where a bare `True` would
    be `Literal[bool](True)` and compile a specialisation of the kernel per flag value."""
    return f"np.bool_({bool(value)})"


def _reshape_expr(name: str, dims: list[str]) -> str:
    return f"{name}.reshape({', '.join(dims)})"


@lowering('matmul')
def lower_matmul(ctx, node, ins, outs):
    a_type, b_type = (v.type for v in node.inputs)
    ta = bool(node.attrs.get("transpose_a", False))
    tb = bool(node.attrs.get("transpose_b", False))
    a, b, out = ins[0], ins[1], outs[0]
    ra, rb, ro = a_type.rank, b_type.rank, node.outputs[0].rank
    # Promote vectors to matrices (views, no copies).
    if ra == 1:
        a = _reshape_expr(a, ["1", f"{a}.shape[0]"])
    if rb == 1:
        b = _reshape_expr(b, [f"{b}.shape[0]", "1"])
    rows = "1" if ra == 1 else f"{out}.shape[{ro - 1 - (rb > 1)}]"
    cols = "1" if rb == 1 else f"{out}.shape[{ro - 1}]"
    # One gemm, cut across Numba's threads where the BLAS runs one (MKL) or netdsl's own
    # kernels run float32 products (they are serial), and the product may be large; OpenBLAS
    # alone runs threads of its own (a parallel kernel would only add ~0.6 s to a cold compile).
    # matmul_2d_parallel cuts from 2 * SERIAL_WORK multiply-adds (its test at run time), twice
    # what large_product asks of a convolution: a product below that at the size hint calls
    # matmul_2d, which every model compiles anyway (LeNet-5's three dense layers: the parallel
    # kernel was 0.48 s of its cold compile's critical path, and never cut at batch 64).
    contracted = a_type.shape[-2] if ta and ra > 1 else a_type.shape[-1]
    work = ctx.elements(node.outputs[0].type.shape) * ctx.elements((contracted,))
    cut = ctx.parallel or (netdsl_cuts_products() and ctx.large_product(work // 2))
    one_gemm = ctx.use(matmul_2d_parallel if cut else matmul_2d)
    if ra <= 2 and rb <= 2:
        out2 = out if ro == 2 else _reshape_expr(out, [rows, cols])
        return [f"{one_gemm}({a}, {b}, {out2}, {_flag(ta)}, {_flag(tb)})"]
    if rb <= 2 and not ta:
        # [..., M, K] @ [K, N]: all batch rows in one gemm on a (P, K) view.
        flat = " * ".join(f"{ins[0]}.shape[{d}]" for d in range(ra - 1))
        a2 = _reshape_expr(ins[0], [flat, f"{ins[0]}.shape[{ra - 1}]"])
        out2 = _reshape_expr(out, [flat, cols])
        return [f"{one_gemm}({a2}, {b}, {out2}, {_flag(False)}, {_flag(tb)})"]
    # General batched case: give a, b and out the same rank with leading 1-axes.
    rank = max(ra, rb, 2)
    nbatch = rank - 2
    out_batch = [f"{out}.shape[{d}]" for d in range(ro - (ra > 1) - (rb > 1))]
    pad = lambda dims: ["1"] * (rank - len(dims)) + dims
    a_dims = pad([f"{ins[0]}.shape[{d}]" for d in range(ra)] if ra > 1
                 else ["1", f"{ins[0]}.shape[0]"])
    b_dims = pad([f"{ins[1]}.shape[{d}]" for d in range(rb)] if rb > 1
                 else [f"{ins[1]}.shape[0]", "1"])
    out_dims = ["1"] * (nbatch - len(out_batch)) + out_batch + [rows, cols]
    # The compiled kernel over the batch only in a context that is parallel throughout
    # (ctx.parallel), not for every large output (ctx.large): on the shared 2-core machine it
    # lost to one gemm per matrix on attention's shapes, 0.4-1.0x on one thread and, with two,
    # often waiting ~15 ms for a busy core (benchmarks/batched_matmul.py).
    kernel = matmul_batched_parallel if ctx.parallel else matmul_batched
    return [f"{ctx.use(kernel)}({_reshape_expr(ins[0], a_dims)}, "
            f"{_reshape_expr(ins[1], b_dims)}, {_reshape_expr(out, out_dims)}, "
            f"{_flag(ta)}, {_flag(tb)})"]
