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

The functions are OpenBLAS's `openblas_set_num_threads` / `openblas_get_num_threads` (named with
a `scipy_` prefix in SciPy's build) of the library SciPy's `cython_blas`, and with it Numba, calls.
They are bound by symbol name for LLVM (`llvmlite.binding.add_symbol`) when this module is
imported, which the generated module does before Numba loads its cached code; the compiled code
refers to the names only, so it caches like any other.
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import njit

_SET, _GET = "netdsl_blas_set_num_threads", "netdsl_blas_get_num_threads"
_NAMES = (("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
          ("openblas_set_num_threads", "openblas_get_num_threads"))
_SET_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int)
_GET_TYPE = ctypes.CFUNCTYPE(ctypes.c_int)


def _openblas() -> tuple[int, int] | None:
    """Addresses of (set, get) in the OpenBLAS that SciPy's cython_blas loaded, or None."""
    try:
        from ..scipy_blas import load_cython_blas
        load_cython_blas()                  # loads the library Numba's gemm calls
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except (ImportError, OSError):
        return None
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _NAMES:     # the 64-bit-integer build's names end in 64_
            if hasattr(library, set_name) and hasattr(library, get_name):
                return (ctypes.cast(getattr(library, set_name), ctypes.c_void_p).value,
                        ctypes.cast(getattr(library, get_name), ctypes.c_void_p).value)
    return None


def _bind() -> None:
    found = _openblas()
    if found is None:                         # no OpenBLAS: counts are 0, setting is a no-op
        global _FALLBACK
        _FALLBACK = (_SET_TYPE(lambda n: None), _GET_TYPE(lambda: 0))
        found = tuple(ctypes.cast(f, ctypes.c_void_p).value for f in _FALLBACK)
    llvm.add_symbol(_SET, found[0])
    llvm.add_symbol(_GET, found[1])


_FALLBACK = None
_bind()

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


@njit(cache=True)
def blas_threads(n):
    """Set the BLAS thread count to `n` (> 0); returns the count before (0: no control)."""
    before = _get_threads()
    if before > 0 and n > 0 and n != before:
        _set_threads(n)
    return before


__all__ = ["SERIAL_WORK", "blas_threads"]
