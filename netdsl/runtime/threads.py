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
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=blas_thread_count(), user_api="blas"):
        yield
