"""The cpu target's vectorisable exp, tanh and erf (backends/numba_cpu/fast_math.py) against
float64 NumPy: ulp bounds over the whole float32 range, IEEE special values, and float64 left
to Numba's np.exp / np.tanh bit for bit."""
import math

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from netdsl.backends.numba_cpu.codegen import FASTMATH  # noqa: E402
from netdsl.backends.numba_cpu.fast_math import erf, exp, tanh  # noqa: E402


@numba.njit(fastmath=set(FASTMATH), error_model="numpy")
def _apply(kind, x, out):
    # the loop the generated kernels contain, with their fastmath flags
    for i in range(x.size):
        out[i] = exp(x[i]) if kind == 0 else tanh(x[i]) if kind == 1 else erf(x[i])
    return 0


def _run(kind, x):
    out = np.empty_like(x)
    _apply(kind, x, out)
    return out


def _ulps(got, exact):
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


SWEEP = np.concatenate([np.linspace(-90, 90, 400_001), np.linspace(-1, 1, 100_001),
                        np.geomspace(1e-30, 10, 2_000), -np.geomspace(1e-30, 10, 2_000)]
                       ).astype(np.float32)


def test_exp_is_within_5_ulp_where_the_result_is_normal():
    exact = np.exp(SWEEP.astype(np.float64))
    normal = (SWEEP > -87.33) & (SWEEP < 88.37)
    assert _ulps(_run(0, SWEEP)[normal], exact[normal]).max() <= 5
    near_max = (SWEEP >= 88.37) & (SWEEP < 88.72)
    assert _ulps(_run(0, SWEEP)[near_max], exact[near_max]).max() <= 10


def test_tanh_is_within_2_ulp():
    assert _ulps(_run(1, SWEEP), np.tanh(SWEEP.astype(np.float64))).max() <= 2


def test_erf_is_within_7_ulp():
    from scipy.special import erf as exact
    assert _ulps(_run(2, SWEEP), exact(SWEEP.astype(np.float64))).max() <= 7


def test_special_values_keep_ieee_semantics():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, 88.8, 1e3, -88.0, -1e3], np.float32)
    e = _run(0, x)
    assert np.isnan(e[0]) and e[1] == np.inf and e[2] == 0.0 and e[3] == 1.0
    assert e[4] == np.inf and e[5] == np.inf and e[6] == 0.0 and e[7] == 0.0
    t = _run(1, x)
    assert np.isnan(t[0]) and t[1] == 1.0 and t[2] == -1.0 and t[3] == 0.0
    assert t[5] == 1.0 and t[7] == -1.0
    f = _run(2, x)
    assert np.isnan(f[0]) and f[1] == 1.0 and f[2] == -1.0 and f[3] == 0.0 and f[7] == -1.0


@numba.njit(fastmath=set(FASTMATH), error_model="numpy")
def _apply_numpy(kind, x, out):
    for i in range(x.size):
        out[i] = np.exp(x[i]) if kind == 0 else np.tanh(x[i]) if kind == 1 else math.erf(x[i])
    return 0


def test_float64_keeps_numpys_function_bit_for_bit():
    x = np.linspace(-50, 50, 1001)
    for kind in (0, 1, 2):
        expected = np.empty_like(x)
        _apply_numpy(kind, x, expected)
        assert np.array_equal(_run(kind, x), expected)
    assert np.allclose(_run(0, x), np.exp(x), rtol=1e-15)
