"""How many threads BLAS may use while netdsl's compiled code runs.

netdsl's matmuls and convolutions are many small BLAS calls inside one compiled step.  OpenBLAS
threads spin-wait between calls; on a small or busy machine two of them made a 256×64×128 gemm
200× slower (11.8 ms against 0.05 ms single-threaded, measured here).  So compiled steps run with
BLAS limited to `NETDSL_BLAS_THREADS` threads (default 1), scoped to netdsl's own calls: the
user's other NumPy code keeps its settings.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def blas_thread_count() -> int:
    value = os.environ.get("NETDSL_BLAS_THREADS", "1")
    try:
        return max(1, int(value))
    except ValueError:
        return 1


@contextmanager
def limited_blas_threads() -> Iterator[None]:
    """Run the body with BLAS limited to NETDSL_BLAS_THREADS threads."""
    with _controller().limit(limits=blas_thread_count(), user_api="blas"):
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
    """Load the BLAS that Numba's compiled matmuls call (SciPy's, not NumPy's) before the limit
    is set: threadpoolctl limits only libraries already loaded, and Numba loads SciPy's during
    the first compile or cache load, inside the limited block.  Without this the first fit of a
    process ran its matmuls on SciPy's default thread count (slower on a busy machine, and
    summing in another order: its history differed from the next fit's in the 8th digit)."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:                  # without SciPy, Numba has no BLAS matmul to limit
        pass
