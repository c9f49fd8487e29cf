"""The cpu target's batched matmul (linalg.matmul_batched, one gemm per matrix, and
matmul_batched_parallel, lowerings/batched_matmul.py's compiled kernel over the batch in
parallel) against NumPy: broadcast batch axes, all four transpose-flag combinations, f32 and
f64, size-1 axes, and matrices on both sides of the SMALL_WORK threshold (compiled kernel
below, one BLAS gemm per matrix above)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from netdsl.backends.numba_cpu.emit import compile_single_node, run_single_node
from netdsl.backends.numba_cpu.jit import python_entry
from netdsl.backends.numba_cpu.lowerings import batched_matmul, linalg
from netdsl.backends.numba_cpu.lowerings.batched_matmul import SMALL_WORK
from netdsl.ir.graph import GraphBuilder
from netdsl.ir.types import DType, TensorType

FLAGS = list(itertools.product((False, True), repeat=2))
DTYPES = [np.float32, np.float64]

# (batch of a, batch of b, m, k, n): batch axes broadcast (extent 1 against any), size-1 axes.
SHAPES = [
    ((2, 3), (2, 3), 5, 7, 4),
    ((2, 1), (1, 3), 6, 3, 5),          # both operands broadcast
    ((1, 4), (3, 1), 1, 9, 1),          # row times column
    ((4,), (1,), 8, 1, 6),              # k = 1
    ((1,), (1,), 1, 1, 1),
    ((3, 2, 1), (1, 2, 2), 17, 33, 19),  # odd sizes: vector remainders
    ((2,), (2,), 64, 32, 64),           # attention's product
]
# Work per matrix exactly SMALL_WORK (compiled kernel) and just above it (one gemm per matrix).
BOUNDARY = [((2,), (1,), 64, 64, 64), ((1,), (2,), 64, 65, 64)]
# The kernels with an entry point for calls from Python (library kernels have none).
matmul_batched = python_entry(linalg.matmul_batched)
matmul_batched_parallel = python_entry(linalg.matmul_batched_parallel)
small_batched = python_entry(batched_matmul.small_batched)


def _operands(rng, batch_a, batch_b, m, k, n, ta, tb, dtype):
    a = rng.standard_normal(batch_a + ((k, m) if ta else (m, k))).astype(dtype)
    b = rng.standard_normal(batch_b + ((n, k) if tb else (k, n))).astype(dtype)
    return a, b


def _expected(a, b, ta, tb):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return np.matmul(np.swapaxes(a64, -1, -2) if ta else a64,
                     np.swapaxes(b64, -1, -2) if tb else b64)


def _check(out, expected, k):
    tolerance = (1e-5 if out.dtype == np.float32 else 1e-12) * np.sqrt(k)
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance * 4)


def test_boundary_shapes_straddle_the_threshold():
    assert [m * k * n <= SMALL_WORK for _, _, m, k, n in BOUNDARY] == [True, False]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("ta,tb", FLAGS, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("shapes", SHAPES + BOUNDARY, ids=str)
@pytest.mark.parametrize("kernel", [matmul_batched, matmul_batched_parallel],
                         ids=["serial", "parallel"])
def test_matmul_batched_matches_numpy(kernel, shapes, ta, tb, dtype):
    batch_a, batch_b, m, k, n = shapes
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = _operands(rng, batch_a, batch_b, m, k, n, ta, tb, dtype)
    expected = _expected(a, b, ta, tb)
    out = np.full(expected.shape, np.nan, dtype)     # every element must be written
    kernel(a, b, out, np.bool_(ta), np.bool_(tb))
    _check(out, expected, k)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("ta,tb", FLAGS, ids=["NN", "NT", "TN", "TT"])
def test_compiled_kernel_above_the_threshold(ta, tb, dtype):
    """small_batched itself on matrices BLAS would take: the kernel is right whatever
    matmul_batched_parallel's threshold says."""
    rng = np.random.default_rng(1)
    a, b = _operands(rng, (3, 1), (1, 5), 40, 70, 100, ta, tb, dtype)
    expected = _expected(a, b, ta, tb)
    out = np.full(expected.shape, np.nan, dtype)
    small_batched(a.reshape((3,) + a.shape[-2:]), b.reshape((5,) + b.shape[-2:]),
                  out.reshape((15,) + out.shape[-2:]), a.shape, b.shape, out.shape,
                  np.bool_(ta), np.bool_(tb))
    _check(out, expected, 70)


@pytest.mark.parametrize("kernel", [matmul_batched, matmul_batched_parallel],
                         ids=["serial", "parallel"])
def test_matmul_batched_rejects_mismatched_shapes(kernel):
    a, b = np.ones((2, 3, 4)), np.ones((2, 5, 6))
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel(a, b, np.empty((2, 3, 6)), np.bool_(False), np.bool_(False))


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("ta,tb", FLAGS, ids=["NN", "NT", "TN", "TT"])
def test_lowered_matmul_broadcasts_ranks(ta, tb, parallel):
    """Through the matmul lowering (parallel: a context parallel throughout, where the lowering
    calls matmul_batched_parallel): a rank-4 operand against a rank-3 one."""
    rng = np.random.default_rng(2)
    a, b = _operands(rng, (2, 3), (3,), 6, 5, 7, ta, tb, np.float32)
    builder = GraphBuilder()
    x = builder.input("a", TensorType(DType.f32, a.shape))
    y = builder.input("b", TensorType(DType.f32, b.shape))
    node = builder.op("matmul", x, y, transpose_a=ta, transpose_b=tb).producer
    _, source = compile_single_node(node, parallel)      # njit compiles on the first call only
    assert ("matmul_batched_parallel(" in source) == parallel
    (out,) = run_single_node(node, [a, b], parallel=parallel)
    _check(out, _expected(a, b, ta, tb), 5)


def test_the_parallel_kernel_calls_the_prange_kernel_by_symbol():
    """matmul_batched_parallel's own code names no symbol of Numba's thread pool: its prange
    is small_batched's, called separately, which starts the pool when it loads from the cache
    (linked in, a warm cache's load aborted: "Symbol not found: allocate_sched")."""
    from numba import types
    array = types.Array(types.float64, 4, "C")
    signature = (array, array, array, types.boolean, types.boolean)
    compiled = python_entry(linalg.matmul_batched_parallel)     # uncached: its LLVM IR is kept
    compiled.compile(signature)
    code = compiled.overloads[signature].library.get_llvm_str()
    assert "allocate_sched" not in code and "do_scheduling" not in code
    assert "netdsl_small_batched_" in code
