"""Batched matmul on the cpu target: one BLAS gemm per matrix (matmul_batched) against
matmul_batched_parallel (small matrices in a compiled kernel over the batch in parallel), on
attention's shapes, and a sweep of square sizes that places the SMALL_WORK threshold.

    NUMBA_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 python benchmarks/batched_matmul.py [--sweep]

Old and new take turns call by call; the table gives the median time per call and the spread
(25th-75th percentile) over the rounds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from numba import njit  # noqa: E402

from netdsl.backends.numba_cpu.lowerings.batched_matmul import small_batched  # noqa: E402
from netdsl.backends.numba_cpu.lowerings.linalg import (  # noqa: E402
    matmul_batched, matmul_batched_parallel)

# (label, a shape, b shape, transpose_a, transpose_b): attention's products forward and backward.
ATTENTION = [
    ("scores q@kT", (16, 4, 64, 32), (16, 4, 64, 32), False, True),
    ("[16,4,64,32]@[16,4,32,64]", (16, 4, 64, 32), (16, 4, 32, 64), False, False),
    ("mix w@v", (16, 4, 64, 64), (16, 4, 64, 32), False, False),
    ("d_w g@vT", (16, 4, 64, 32), (16, 4, 64, 32), False, True),
    ("d_v wT@g", (16, 4, 64, 64), (16, 4, 64, 32), True, False),
    ("d_k gT@q", (16, 4, 64, 64), (16, 4, 64, 32), True, False),
    ("both T", (16, 4, 32, 64), (16, 4, 64, 32), True, True),
    ("[32,8,128,16]@kT", (32, 8, 128, 16), (32, 8, 128, 16), False, True),
    ("[32,8,128,128]@v", (32, 8, 128, 128), (32, 8, 128, 16), False, False),
    ("[32,8,128,16]: gT@q", (32, 8, 128, 128), (32, 8, 128, 16), True, False),
]


def _compiled(kernel):
    """A (a, b, out, transpose_a, transpose_b) entry point to a small_batched kernel whatever
    the size (for the threshold sweep)."""
    @njit
    def run(a, b, out, transpose_a, transpose_b):
        rank = out.ndim
        a3 = a.reshape(-1, a.shape[rank - 2], a.shape[rank - 1])
        b3 = b.reshape(-1, b.shape[rank - 2], b.shape[rank - 1])
        out3 = out.reshape(-1, out.shape[rank - 2], out.shape[rank - 1])
        kernel(a3, b3, out3, a.shape, b.shape, out.shape, transpose_a, transpose_b)
    return run


def _case(a_shape, b_shape, ta, tb, dtype, rng):
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    m = a_shape[-1] if ta else a_shape[-2]
    n = b_shape[-2] if tb else b_shape[-1]
    out = np.empty(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + (m, n), dtype)
    return a, b, out


def _time(kernels, args, rounds):
    """Per kernel: seconds of each call, the kernels taking turns call by call, so that load
    from other processes falls on both alike (a preempted call is an outlier the median drops)."""
    for kernel in kernels:
        kernel(*args)
    samples = [[] for _ in kernels]
    for _ in range(rounds):
        for kernel, times in zip(kernels, samples):
            start = time.perf_counter()
            kernel(*args)
            times.append(time.perf_counter() - start)
    return samples


def _fmt(times):
    q1, med, q3 = np.percentile(np.array(times) * 1e6, [25, 50, 75])
    return f"{med:8.0f} ({q1:.0f}-{q3:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="square sizes, batch 64")
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--dtype", default="float32,float64")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.sweep:
        cases = [(f"{s}^3 x64", (64, s, s), (64, s, s), False, False)
                 for s in (8, 16, 24, 32, 48, 64, 96)]
        cases += [(f"{s}^3 x64 bT", (64, s, s), (64, s, s), False, True)
                  for s in (48, 64, 80, 96)]
        kernels = (matmul_batched, _compiled(small_batched))
        names = ("BLAS/matrix", "compiled prange")
    else:
        cases = ATTENTION
        kernels = (matmul_batched, matmul_batched_parallel)
        names = ("matmul_batched (BLAS/matrix)", "matmul_batched_parallel")
    print("| shape | flags | dtype | " + " | ".join(f"{name} us" for name in names) +
          " | speed-up |")
    print("|---|---|---|" + "---|" * (len(names) + 1))
    for dtype in args.dtype.split(","):
        for label, a_shape, b_shape, ta, tb in cases:
            a, b, out = _case(a_shape, b_shape, ta, tb, np.dtype(dtype), rng)
            times = _time(kernels, (a, b, out, np.bool_(ta), np.bool_(tb)), args.rounds)
            flags = ("T" if ta else "N") + ("T" if tb else "N")
            best = min(np.median(t) for t in times[1:])
            print(f"| {label} | {flags} | {dtype[5:]} | " + " | ".join(map(_fmt, times)) +
                  f" | {np.median(times[0]) / best:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
