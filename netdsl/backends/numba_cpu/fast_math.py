"""exp, tanh and erf that LLVM can vectorise, for the float32 loops of generated kernels.

Numba lowers `np.exp` and `np.tanh` to calls of libm's `expf` / `tanhf`.  Without a vector
math library (the PyPI llvmlite is not built with SVML) LLVM cannot vectorise a loop that calls
them, so a fused LSTM cell (three sigmoids, two tanh per element) ran one element at a time:
4,096 `exp`s took 8.5 us, against 0.8 us for the branch-free polynomial below in an AVX2 loop.

The float32 forms follow Cephes (`expf`, `tanhf`): exp by a Cody-Waite reduction
x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r and the exponent written into the
bits of 2^n; tanh by an odd polynomial below |x| = 0.625 and 1 - 2 / (e^2|x| + 1) above.
erf (GELU's) is a rational function fitted here (Loeb-reweighted least squares on Chebyshev
nodes of [0, 4]): erf(x) = x P(x^2) / Q(x^2), P of degree 6 and Q of degree 5, clamped to
[-4, 4] where float32 erf is +-1 already; libm's `erff` took 35 us for a GELU of 8,192 floats.

Measured against float64 NumPy (tests/backends/test_fast_math.py): exp within 5 ulp where
the result is a normal float32 (to x = 88.38; within 9 ulp from there to ln(FLT_MAX), where
the reduced argument outgrows the polynomial's interval), tanh within 2 ulp everywhere.  Results
below FLT_MIN (x < -87.34) are flushed to 0, as with flush-to-zero arithmetic; the special
values keep IEEE semantics: exp(nan) = nan, exp(-inf) = 0, exp(inf) = inf, overflow to inf
above ln(FLT_MAX), tanh(nan) = nan, tanh(+-inf) = +-1.  erf is within 7 ulp (measured 6 at
x = 3.06) and keeps erf(nan) = nan, erf(+-inf) = +-1.

float64 (and anything else) keeps NumPy's function: gradcheck and the f64 reference
comparisons need libm's last bit, and f64 models are rare enough not to matter for speed.
All three are overloads that LLVM inlines into the caller's loop (a Numba-level
inline='always' tripped its IR checks on the selects; LLVM gives the same vectorised loop).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the low 32 bits of the integer `bits` (a register move,
    vectorisable; Numba widens int32 arithmetic to int64, hence the truncation)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())

    return types.float32(bits), codegen


_F = np.float32
_LOG2E, _LN2_HIGH, _LN2_LOW = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_EXP_POLY = (_F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3),
             _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1))
_TANH_POLY = (_F(-5.70498872745e-3), _F(2.06390887954e-2), _F(-5.37397155531e-2),
              _F(1.33314422036e-1), _F(-3.33332819422e-1))
# ln(FLT_MAX) and ln(FLT_MIN): e^x is inf above the one, and is flushed to 0 below the other
_EXP_HIGH, _EXP_LOW = _F(88.72283935546875), _F(-87.33654475)


def _exp32(x):
    clamped = min(max(x, _EXP_LOW), _EXP_HIGH)
    # n <= 127 keeps 2^n a normal float32; near ln(FLT_MAX) |r| grows to 0.7 (9 ulp)
    n = min(np.floor(clamped * _LOG2E + _F(0.5)), _F(127.0))
    # two steps: reassociation must not merge n*ln2 into one rounded product
    r = clamped - n * _LN2_HIGH
    r = r - n * _LN2_LOW
    p = _EXP_POLY[0]
    p = p * r + _EXP_POLY[1]
    p = p * r + _EXP_POLY[2]
    p = p * r + _EXP_POLY[3]
    p = p * r + _EXP_POLY[4]
    p = p * r + _EXP_POLY[5]
    e = p * (r * r) + r + _F(1.0)
    y = e * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    y = _F(0.0) if x < _EXP_LOW else y
    y = _F(np.inf) if x > _EXP_HIGH else y
    return x if x != x else y


def _tanh32(x):
    a = abs(x)
    z = x * x
    p = _TANH_POLY[0]
    p = p * z + _TANH_POLY[1]
    p = p * z + _TANH_POLY[2]
    p = p * z + _TANH_POLY[3]
    p = p * z + _TANH_POLY[4]
    small = p * z * x + x
    large = _F(1.0) - _F(2.0) / (exp(a + a) + _F(1.0))
    large = large if x >= _F(0.0) else -large
    y = small if a < _F(0.625) else large
    return x if x != x else y


_ERF_P = (_F(1.1283791699569257), _F(0.18505351495175038), _F(0.05436939241687862),
          _F(0.0038530908332093062), _F(0.0003826560426784362), _F(4.768405014801691e-06),
          _F(-1.3618908223378412e-08))
_ERF_Q = (_F(0.497332838978052), _F(0.11396060979068606), _F(0.015479382526737683),
          _F(0.0013124131455387157), _F(6.390792800168611e-05))
_ERF_LIMIT = _F(4.0)


def _erf32(x):
    clamped = min(max(x, -_ERF_LIMIT), _ERF_LIMIT)
    z = clamped * clamped
    p = _ERF_P[6]
    p = p * z + _ERF_P[5]
    p = p * z + _ERF_P[4]
    p = p * z + _ERF_P[3]
    p = p * z + _ERF_P[2]
    p = p * z + _ERF_P[1]
    p = p * z + _ERF_P[0]
    q = _ERF_Q[4]
    q = q * z + _ERF_Q[3]
    q = q * z + _ERF_Q[2]
    q = q * z + _ERF_Q[1]
    q = q * z + _ERF_Q[0]
    q = q * z + _F(1.0)
    y = min(max(clamped * p / q, _F(-1.0)), _F(1.0))
    return x if x != x else y


def exp(x):
    """e^x: the vectorisable float32 form above, NumPy's for other types (Python: NumPy's)."""
    return np.exp(x)


def tanh(x):
    """tanh(x): the vectorisable float32 form above, NumPy's for other types."""
    return np.tanh(x)


def erf(x):
    """erf(x): the vectorisable float32 form above, math.erf for other types."""
    return math.erf(x)


def _overload_float32(stub, float32_form, library_function) -> None:
    """Compile `stub` as `float32_form` for float32 arguments, `library_function` for other
    numbers."""
    def library(x):
        return library_function(x)

    @overload(stub)
    def implementation(x):
        if x == types.float32:
            return float32_form
        return library if isinstance(x, types.Number) else None


_overload_float32(exp, _exp32, np.exp)
_overload_float32(tanh, _tanh32, np.tanh)
_overload_float32(erf, _erf32, math.erf)


__all__ = ["erf", "exp", "tanh"]
