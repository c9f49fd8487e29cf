"""Shared by the cuda target's tests: whether a device or Numba's CUDA simulator is there."""
from __future__ import annotations

import os

import pytest


def cuda_ready() -> bool:
    """numba.cuda imports and has a GPU, or the simulator is switched on."""
    try:
        from numba import cuda
    except ImportError:
        return False
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return True
    try:
        return bool(cuda.is_available())
    except Exception:
        return False


needs_cuda = pytest.mark.skipif(not cuda_ready(), reason="no CUDA device and the simulator is "
                                "off (NUMBA_ENABLE_CUDASIM=1 runs these)")
