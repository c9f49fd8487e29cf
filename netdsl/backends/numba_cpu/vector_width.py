"""Generated loops use the CPU's full vector width: 512-bit registers where it has AVX-512.

LLVM's tuning for Intel's AVX-512 cores (Skylake-X on; this machine reports "rocketlake")
prefers 256-bit vectors (the `prefer-256-bit` tuning feature): on early AVX-512 parts heavy
512-bit arithmetic lowered the clock.  Our elementwise loops are short bursts of float32
arithmetic between BLAS calls, and the polynomial exp and tanh (fast_math.py) are worth twice
the lanes.  Measured on this 2-core Xeon (Sapphire Rapids), one thread: a fused LSTM cell of
4,096 elements (three sigmoids, two tanh) 13.8 -> 11.5 us per call, `exp` of 4,096 floats
1.55 -> 1.30 us; the LSTM benchmark's training step 5.60 -> 5.31 ms; the MLP's and LeNet-5's
steps unchanged (their time is in BLAS and im2col).

So where the host has AVX-512F, Numba's target machine gets the host's features plus
`-prefer-256-bit`, before it is created (Numba creates it at its first compile, and reads
`config.CPU_FEATURES` then).  The features are part of Numba's cache key (the codegen's
`magic_tuple`), so cached code built without this is not reused, never mixed.  A user's
NUMBA_CPU_NAME or NUMBA_CPU_FEATURES still decides.
"""
from __future__ import annotations

import llvmlite.binding as llvm
import numba


def prefer_full_vectors() -> None:
    """Set Numba's CPU features as the module docstring says (idempotent)."""
    config = numba.config
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        config.CPU_FEATURES = features.flatten() + ",-prefer-256-bit"


__all__ = ["prefer_full_vectors"]
