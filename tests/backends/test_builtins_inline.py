"""builtins_inline: min2/max2 are Python's min/max of two numbers (NaN rules included),
empty/zeros are np.empty/np.zeros, and none of them compiles a function of its own."""
from __future__ import annotations

import math

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from netdsl.backends.numba_cpu.builtins_inline import empty, max2, min2, zeros


@numba.njit
def _both(a, b):
    return min2(a, b), max2(a, b)


@numba.njit
def _literals(n):
    return max2(1, n), min2(n, 16), max2(np.float32(-np.inf), np.float32(n))


@pytest.mark.parametrize("a, b", [(1, 2), (3, -1), (2, 2), (1.5, math.nan), (math.nan, 1.5),
                                  (-0.0, 0.0), (0.0, -0.0), (1, 2.5), (np.float32(2), 1.0)])
def test_min2_and_max2_are_pythons_min_and_max(a, b):
    low, high = _both(a, b)
    for got, want in ((low, min(a, b)), (high, max(a, b))):
        assert (math.isnan(got) and math.isnan(want)) or \
            (got == want and math.copysign(1, got) == math.copysign(1, want))


def test_literal_arguments_and_mixed_types():
    assert _literals(5) == (5, 5, 5.0)
    assert _literals(-3) == (1, -3, -3.0)
    assert _literals(40)[1] == 16


@numba.njit
def _allocate(n, like):
    return empty((n, 3), like.dtype), zeros((2, n), np.float32), zeros(n, np.int64)


def test_empty_and_zeros_shape_dtype_and_contents():
    made, zeroed, ints = _allocate(4, np.ones(1, np.float64))
    assert made.shape == (4, 3) and made.dtype == np.float64 and made.flags.c_contiguous
    assert zeroed.shape == (2, 4) and zeroed.dtype == np.float32 and not zeroed.any()
    assert ints.shape == (4,) and ints.dtype == np.int64 and not ints.any()
    with pytest.raises(ValueError, match="negative dimensions"):
        _allocate(-1, np.ones(1))


def test_nothing_is_compiled_apart():
    """Compiling a function that uses all four compiles that function only (Numba's own
    min, max, np.empty and np.zeros each compile an overload per signature)."""
    from numba.core import event

    @numba.njit
    def uses_all(n, x):
        a = empty((n,), x.dtype)
        b = zeros((n, 2), x.dtype)
        return max2(n, 1) + min2(n, 7) + a.shape[0] + b.shape[1] + max2(x[0], np.float32(0))

    compiled = []

    class Count(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"])

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", Count()):
        uses_all(3, np.ones(2, np.float32))
    assert [d.py_func.__name__ for d in compiled] == ["uses_all"]
