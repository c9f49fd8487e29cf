"""How many threads BLAS may use while netdsl's compiled code runs.

netdsl's matmuls and convolutions are many small BLAS calls inside one compiled step.  OpenBLAS
threads spin-wait between calls; on a small or busy machine two of them made a 256×64×128 gemm
200× slower (11.8 ms against 0.05 ms single-threaded, measured here).  The compiled products
therefore choose their own count by size (backends/numba_cpu/blas_threads.py: one thread below
2^22 multiply-adds, what BLAS allows above), and BLAS keeps its own limit otherwise: at two
threads that made the MLP's whole fit 1.24× faster than with BLAS held to one thread (92
against 114 ms, 48 steps of batch 128; LeNet's, whose products are small, unchanged).

`NETDSL_BLAS_THREADS=N` limits BLAS to N threads (1: the steadiest choice on a shared, busy
machine) while `fit`, `Model.forward` and `Model.loss_and_grad` run, scoped to netdsl's own
calls: the user's other NumPy code keeps its settings.  Unset, empty or 0: no limit.
"""
from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from typing import ContextManager


def blas_thread_count() -> int | None:
    """NETDSL_BLAS_THREADS as a count, or None (unset, empty or 0: no limit); a netdsl.Error
    for anything but a whole number >= 0."""
    value = os.environ.get("NETDSL_BLAS_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 6:
        from ..errors import Error
        raise Error(f"NETDSL_BLAS_THREADS must be a whole number of threads, got {value!r}",
                    hint="e.g. NETDSL_BLAS_THREADS=1, or unset it (0 also means no limit)")
    return int(value) or None


def limited_blas_threads() -> ContextManager[None]:
    """Run the body with BLAS limited to NETDSL_BLAS_THREADS threads, when that is set."""
    count = blas_thread_count()
    if count is None:
        return nullcontext()
    return _limited(count)


@contextmanager
def _limited(count: int):
    with _controller().limit(limits=count, user_api="blas"):
        yield


_CONTROLLER = None


def _controller():
    """threadpoolctl's view of the BLAS libraries netdsl calls (NumPy's, and SciPy's that
    Numba's matmuls call), found once per process: finding them costs 1-5 ms, which every
    fit paid (a tenth of XOR's whole fit); limiting them afterwards costs ~20 us."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _load_compiled_blas()
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def _load_compiled_blas() -> None:
    """Load the BLAS that the compiled matmuls call (SciPy's OpenBLAS, not NumPy's, or MKL:
    backends/numba_cpu/blas_library.py) before the limit is set: threadpoolctl limits only
    libraries already loaded, and the compiled code loads its library during the first compile
    or cache load, inside the limited block.  Without this the first fit of a process ran its
    matmuls on the library's default thread count (slower on a busy machine, and summing in
    another order: its history differed from the next fit's in the 8th digit)."""
    from ..backends.numba_cpu.blas_library import chosen
    from ..backends.scipy_blas import load_cython_blas
    try:
        load_cython_blas()               # Numba's own np.dot calls it, whichever is chosen
        chosen()
    except ImportError:                  # without SciPy, Numba has no BLAS matmul to limit
        pass
