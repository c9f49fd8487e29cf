"""Where CUDA kernels run and how they are launched: a real GPU through numba-cuda, or Numba's
CUDA simulator (`NUMBA_ENABLE_CUDASIM=1`, every thread a Python thread, for tests without a GPU).

Every kernel netdsl launches is written as a grid-stride loop (a thread handles elements
`i, i + gridsize, ...`), so any grid is correct; the grid only decides speed.  On a GPU a
launch gets enough blocks to fill the device; in the simulator, where each thread costs about
0.1 ms of Python, a launch gets one or two small blocks.
"""
from __future__ import annotations

import os

from ...errors import Error

# Threads per block of a reduction kernel; the shared-memory tree reduces this many partials.
# A compile-time constant of the generated kernels (shared arrays need a constant size).
REDUCE_THREADS_GPU = 256
REDUCE_THREADS_SIMULATOR = 32


def simulating() -> bool:
    """Whether numba.cuda is (or will be, when first imported) the simulator."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda():
    """numba.cuda, once a device (or the simulator) is known to be there; else an Error."""
    try:
        from numba import cuda as numba_cuda
    except ImportError as error:                      # pragma: no cover - numba always has it
        raise Error(f"the cuda target needs numba-cuda ({error})",
                    hint='pip install "netdsl[cuda]"') from None
    if not simulating():
        try:
            available = numba_cuda.is_available()
        except Exception:                              # a broken driver install
            available = False
        if not available:
            raise Error("no CUDA device found; set NUMBA_ENABLE_CUDASIM=1 to simulate",
                        hint="the cpu target runs everywhere: --target cpu")
    return numba_cuda


# A reduction over at least this many elements per output cell gets a block per cell (a
# shared-memory tree); a shorter one a thread per cell.  In the simulator every barrier costs
# milliseconds of Python, so its threshold is low only to keep the tree tested on small shapes.
TREE_MIN_GPU = 256
TREE_MIN_SIMULATOR = 64


def tree_min() -> int:
    return TREE_MIN_SIMULATOR if simulating() else TREE_MIN_GPU


def reduce_threads() -> int:
    return REDUCE_THREADS_SIMULATOR if simulating() else REDUCE_THREADS_GPU


def launch(elements: int, threads: int = 256) -> tuple[int, int]:
    """(blocks, threads per block) for a grid-stride kernel over `elements` work items."""
    elements = max(int(elements), 1)
    if simulating():
        threads = min(threads, 32)
        return (min(-(-elements // threads), 2), threads)
    return (min(-(-elements // threads), 65535), threads)


def toolchain() -> str:
    """What compiled code depends on beyond its source (part of the cache key)."""
    import numba
    version = getattr(__import__("numba_cuda"), "__version__", "?") if _has_numba_cuda() \
        else "builtin"
    return f"numba {numba.__version__} numba-cuda {version} " + \
        ("simulator" if simulating() else "gpu")


def _has_numba_cuda() -> bool:
    try:
        import numba_cuda  # noqa: F401
        return True
    except ImportError:
        return False


__all__ = ["cuda", "launch", "reduce_threads", "simulating", "toolchain", "tree_min"]
