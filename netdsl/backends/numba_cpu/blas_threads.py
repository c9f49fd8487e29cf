"""How many threads the BLAS behind Numba's gemm runs, set from compiled code: `blas_threads(n)`
sets the count and returns the previous one (0 where the BLAS offers no such control, and then
setting does nothing).

Why: OpenBLAS splits every gemm above a small size (m * n * k > 262144) across its threads, and
for the products of a recurrent step ([32, 128] @ [128, 512]), a small layer or a convolution's
chunk, handing work to a second thread and waiting for it costs more than it saves; on a loaded
machine, where that thread is often not running, each wait can last a scheduler tick.  Measured
here at load 3.8 (two cores), 1 thread against 2: [64, 128] @ [128, 128] (2^20 multiply-adds)
46 us against 12.5 ms; [128, 128] @ [128, 128] (2^21) 87 against 121 us; [128, 256] @ [256, 256]
(2^23) 346 against 180 us; [256, 512] @ [512, 512] 3.3 against 0.65 ms.  So `matmul_2d`
(lowerings/linalg.py) runs products of fewer than SERIAL_WORK multiply-adds with one thread
and gives the count back after the call (a set costs nanoseconds: OpenBLAS only records it).
SERIAL_WORK is 2^22, not 2^21: after a product on its threads, OpenBLAS's worker spins for a
while (its `blas_thread_server`), on the core the next parallel kernel's threads want; LeNet-5's
dense products at batch 64 (3.1M multiply-adds) on two threads left it spinning through the
convolutions (42% of the step's samples in blas_thread_server) and the two-thread step took
4.5-4.8 ms, against 3.0 ms with them on one thread (the MLP's, 8.4M and up, still split).
It never raises the count: where `fit` limits BLAS to one thread (runtime/threads.py), every
product runs with one.

The functions are the chosen BLAS library's (blas_library.py: OpenBLAS's
`openblas_set_num_threads` / `openblas_get_num_threads`, named with a `scipy_` prefix in SciPy's
build, or MKL's `MKL_Set_Num_Threads` / `MKL_Get_Max_Threads`), bound by symbol name for LLVM
when this module is imported, which the generated module does before Numba loads its cached
code; the compiled code refers to the names only, so it caches like any other.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .blas_library import SYMBOLS, bind
from .jit import kernel

_SET, _GET = SYMBOLS[2], SYMBOLS[3]
bind()

# Products with fewer multiply-adds than this run with one BLAS thread (see above).
SERIAL_WORK = 1 << 22


@intrinsic
def _set_threads(typingctx, n):
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(32)]), _SET)
        builder.call(function, [context.cast(builder, args[0], n, types.int32)])
        return context.get_dummy_value()

    return types.none(n), codegen


@intrinsic
def _get_threads(typingctx):
    def codegen(context, builder, signature, args):
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), _GET)
        return context.cast(builder, builder.call(function, []), types.int32, types.int64)

    return types.int64(), codegen


@kernel(cache=True)
def blas_threads(n):
    """Set the BLAS thread count to `n` (> 0); returns the count before (0: no control)."""
    before = _get_threads()
    if before > 0 and n > 0 and n != before:
        _set_threads(n)
    return before


__all__ = ["SERIAL_WORK", "blas_threads"]
