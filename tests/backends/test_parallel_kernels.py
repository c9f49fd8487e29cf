"""The library kernels whose parallel variants run their rows (or elements) in one part per
thread (parallel_calls.in_parallel): the same numbers as the serial variants, bit for bit, for
sizes from none to more rows than threads times parts."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.numba_cpu.jit import python_entry
from netdsl.backends.numba_cpu.lowerings import nn, random
from netdsl.backends.numba_cpu.target import _start_thread_pool


@pytest.fixture(scope="module", autouse=True)
def _pool():
    _start_thread_pool()


@pytest.mark.parametrize("size", [0, 1, 3, 1000, 10_003])
def test_random_elements_are_the_serial_kernels(size):
    serial, parallel = (python_entry(random.random_kernel),
                        python_entry(random.random_kernel_parallel))
    for kind in (0, 1):
        a, b = np.zeros(size, np.float32), np.zeros(size, np.float32)
        serial(a, 7, 3, kind, 0.3, True)
        parallel(b, 7, 3, kind, 0.3, True)
        assert np.array_equal(a, b)


@pytest.mark.parametrize("rows", [0, 1, 77])
def test_log_softmax_and_cross_entropy_rows_are_the_serial_kernels(rows):
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 10, 3)).astype(np.float32)
    out = [np.zeros_like(x), np.zeros_like(x)]
    python_entry(nn.log_softmax_kernel)(x, out[0])
    python_entry(nn.log_softmax_kernel_parallel)(x, out[1])
    assert np.array_equal(out[0], out[1])
    logits = rng.standard_normal((rows, 10)).astype(np.float32)
    labels = rng.integers(-1, 10, rows)             # -1: out of range, NaN
    for gradient in (False, True):
        results = []
        for kernel in (nn.cross_entropy_kernel, nn.cross_entropy_kernel_parallel):
            loss, grad = np.zeros(rows, np.float32), np.zeros_like(logits)
            python_entry(kernel)(logits, labels, loss, grad, gradient)
            results.append((loss, grad))
        assert np.array_equal(results[0][0], results[1][0], equal_nan=True)
        assert np.array_equal(results[0][1], results[1][1], equal_nan=True)
