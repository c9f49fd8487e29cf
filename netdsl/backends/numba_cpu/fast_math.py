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
For float32 each is lowered straight to LLVM instructions in the caller (Numba's
`type_callable` / `lower_builtin`): as `@overload`s of Python functions they were compiled once
per process as functions of their own, with Numba's min and max, ~0.2-0.3 s of every cold
compile that used one.  The instructions carry no fast-math flags, whatever the caller's:
reassociation must not merge the two steps of the Cody-Waite reduction.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import lower_builtin, type_callable


_F = np.float32
_LOG2E, _LN2_HIGH, _LN2_LOW = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_EXP_POLY = (_F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3),
             _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1))
_TANH_POLY = (_F(-5.70498872745e-3), _F(2.06390887954e-2), _F(-5.37397155531e-2),
              _F(1.33314422036e-1), _F(-3.33332819422e-1))
# ln(FLT_MAX) and ln(FLT_MIN): e^x is inf above the one, and is flushed to 0 below the other
_EXP_HIGH, _EXP_LOW = _F(88.72283935546875), _F(-87.33654475)
_ERF_P = (_F(1.1283791699569257), _F(0.18505351495175038), _F(0.05436939241687862),
          _F(0.0038530908332093062), _F(0.0003826560426784362), _F(4.768405014801691e-06),
          _F(-1.3618908223378412e-08))
_ERF_Q = (_F(0.497332838978052), _F(0.11396060979068606), _F(0.015479382526737683),
          _F(0.0013124131455387157), _F(6.390792800168611e-05))
_ERF_LIMIT = _F(4.0)


class _Float32:
    """float32 arithmetic on LLVM values, one instruction per operation, in the order the
    formulas below give (so that the rounding is the formula's)."""

    def __init__(self, builder):
        self.b = builder
        self.type = ir.FloatType()

    def const(self, value) -> ir.Constant:
        return ir.Constant(self.type, float(np.float32(value)))

    def add(self, x, y):
        return self.b.fadd(x, y)

    def sub(self, x, y):
        return self.b.fsub(x, y)

    def mul(self, x, y):
        return self.b.fmul(x, y)

    def div(self, x, y):
        return self.b.fdiv(x, y)

    def less(self, x, y):
        return self.b.fcmp_ordered("<", x, y)

    def greater(self, x, y):
        return self.b.fcmp_ordered(">", x, y)

    def select(self, condition, x, y):
        return self.b.select(condition, x, y)

    def clamp(self, x, low, high):
        """min(max(x, low), high) for a number x (the callers answer a NaN x themselves)."""
        x = self.select(self.less(x, low), low, x)
        return self.select(self.greater(x, high), high, x)

    def horner(self, coefficients, z):
        """(((c0 z + c1) z + c2) ...) of float32 coefficients c0, c1, ..."""
        p = self.const(coefficients[0])
        for c in coefficients[1:]:
            p = self.add(self.mul(p, z), self.const(c))
        return p

    def intrinsic(self, name: str, x):
        function = self.b.module.declare_intrinsic(name, [self.type])
        return self.b.call(function, [x])

    def nan_kept(self, x, y):
        """x where x is NaN, else y."""
        return self.select(self.b.fcmp_unordered("uno", x, x), x, y)


def _exp32(f: _Float32, x):
    low, high = f.const(_EXP_LOW), f.const(_EXP_HIGH)
    clamped = f.clamp(x, low, high)
    # n <= 127 keeps 2^n a normal float32; near ln(FLT_MAX) |r| grows to 0.7 (9 ulp)
    n = f.intrinsic("llvm.floor", f.add(f.mul(clamped, f.const(_LOG2E)), f.const(0.5)))
    n = f.select(f.greater(n, f.const(127.0)), f.const(127.0), n)
    # two steps: the product n*ln2 must not be one rounded product
    r = f.sub(clamped, f.mul(n, f.const(_LN2_HIGH)))
    r = f.sub(r, f.mul(n, f.const(_LN2_LOW)))
    p = f.horner(_EXP_POLY, r)
    e = f.add(f.add(f.mul(p, f.mul(r, r)), r), f.const(1.0))
    int32 = ir.IntType(32)                    # 2^n: n + 127 written into the exponent bits
    bits = f.b.shl(f.b.add(f.b.fptosi(n, int32), ir.Constant(int32, 127)),
                   ir.Constant(int32, 23))
    y = f.mul(e, f.b.bitcast(bits, f.type))
    y = f.select(f.less(x, low), f.const(0.0), y)
    y = f.select(f.greater(x, high), f.const(np.inf), y)
    return f.nan_kept(x, y)


def _tanh32(f: _Float32, x):
    a = f.intrinsic("llvm.fabs", x)
    z = f.mul(x, x)
    p = f.horner(_TANH_POLY, z)
    small = f.add(f.mul(f.mul(p, z), x), x)
    large = f.sub(f.const(1.0),
                  f.div(f.const(2.0), f.add(_exp32(f, f.add(a, a)), f.const(1.0))))
    large = f.select(f.b.fcmp_ordered(">=", x, f.const(0.0)), large, f.b.fneg(large))
    y = f.select(f.less(a, f.const(0.625)), small, large)
    return f.nan_kept(x, y)


def _erf32(f: _Float32, x):
    clamped = f.clamp(x, f.const(-_ERF_LIMIT), f.const(_ERF_LIMIT))
    z = f.mul(clamped, clamped)
    p = f.horner(_ERF_P[::-1], z)
    q = f.add(f.mul(f.horner(_ERF_Q[::-1], z), z), f.const(1.0))
    y = f.clamp(f.div(f.mul(clamped, p), q), f.const(-1.0), f.const(1.0))
    return f.nan_kept(x, y)


def exp(x):
    """e^x: the vectorisable float32 form above, NumPy's for other types (Python: NumPy's)."""
    return np.exp(x)


def tanh(x):
    """tanh(x): the vectorisable float32 form above, NumPy's for other types."""
    return np.tanh(x)


def erf(x):
    """erf(x): the vectorisable float32 form above, math.erf for other types."""
    return math.erf(x)


def _register(stub, float32_form, library_function) -> None:
    """Type and lower `stub`: `float32_form` (an IR builder) for float32 arguments,
    `library_function` (compiled by Numba) for other numbers."""
    @type_callable(stub)
    def typer(context):
        def of(x):
            if x == types.float32:
                return types.float32
            if isinstance(x, types.Number):
                chosen = context.resolve_function_type(library_function, (x,), {})
                return None if chosen is None else chosen.return_type
            return None
        return of

    @lower_builtin(stub, types.float32)
    def lower_float32(context, builder, signature, args):
        return float32_form(_Float32(builder), args[0])

    def library(x):
        return library_function(x)

    @lower_builtin(stub, types.Number)
    def lower_other(context, builder, signature, args):
        # one function object per stub: Numba caches what it compiled by it and the signature
        return context.compile_internal(builder, library, signature, args)


_register(exp, _exp32, np.exp)
_register(tanh, _tanh32, np.tanh)
_register(erf, _erf32, math.erf)


__all__ = ["erf", "exp", "tanh"]
