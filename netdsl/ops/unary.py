"""Elementwise unary math: exp, log, sqrt, rsqrt, abs, sign, sin, cos, tanh, erf, square,
reciprocal, plus cast, stop_gradient and identity.  (Activations live in activations.py.)

Kernel templates are scalar Numba expressions over `{0}`; the generated module imports `numpy as
np` and `math`.  Constants are written `#1.5` and expand to `type({0})(1.5)`: a bare Python float
literal is f64 in Numba and would silently turn f32 arithmetic into f64 arithmetic.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ..ir.types import DType, ShapeError, TensorType
from ._common import float_type
from .registry import op

_TYPED_CONSTANT = re.compile(r"#(\d+(?:\.\d+)?(?:e-?\d+)?)")


def typed(template: str) -> str:
    """Expand `#c` constants of a kernel template into `type({0})(c)` (same dtype as operand 0)."""
    return _TYPED_CONSTANT.sub(r"type({0})(\1)", template)


def unary_examples(**options):
    """Sample f32 inputs of ranks 3 and 0; `options` steer the registry test's input generator."""
    return [((TensorType(DType.f32, shape),), {}, dict(options)) for shape in ((2, 3, 5), ())]


def numeric_type(t: TensorType, name: str) -> TensorType:
    """Ops defined on numbers (abs, sign, square) reject boolean tensors."""
    if t.dtype is DType.bool:
        raise ShapeError(f"{name} expects a numeric tensor, got {t}",
                         hint="convert first: cast(x, f32)")
    return t


@op("exp")
class Exp:
    """e ** x."""
    traits = {"elementwise", "pure"}
    kernel = "np.exp({0})"
    examples = staticmethod(unary_examples)

    def infer(a):
        return float_type(a, "exp")

    def reference(a):
        return np.exp(a)

    def vjp(b, grads, inputs, outputs):
        return (b.op("mul", grads[0], outputs[0]),)


@op("log")
class Log:
    """Natural logarithm."""
    traits = {"elementwise", "pure"}
    kernel = "np.log({0})"

    def infer(a):
        return float_type(a, "log")

    def reference(a):
        return np.log(a)

    def vjp(b, grads, inputs, outputs):
        return (b.op("div", grads[0], inputs[0]),)

    def examples():
        return unary_examples(low=0.5, high=3.0)


@op("sqrt")
class Sqrt:
    """Square root."""
    traits = {"elementwise", "pure"}
    kernel = "np.sqrt({0})"

    def infer(a):
        return float_type(a, "sqrt")

    def reference(a):
        return np.sqrt(a)

    def vjp(b, grads, inputs, outputs):
        y = outputs[0]
        return (b.op("mul", grads[0], b.op("div", b.constant(0.5, y.dtype), y)),)

    def examples():
        return unary_examples(low=0.5, high=3.0)


@op("rsqrt")
class Rsqrt:
    """1 / sqrt(x)."""
    traits = {"elementwise", "pure"}
    kernel = typed("(#1 / np.sqrt({0}))")

    def infer(a):
        return float_type(a, "rsqrt")

    def reference(a):
        return (1 / np.sqrt(a)).astype(a.dtype)

    def vjp(b, grads, inputs, outputs):
        # d/dx x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
        y = outputs[0]
        cube = b.op("mul", y, b.op("square", y))
        return (b.op("mul", grads[0], b.op("mul", cube, b.constant(-0.5, y.dtype))),)

    def examples():
        return unary_examples(low=0.5, high=3.0)


@op("abs")
class Abs:
    """|x|; the gradient at 0 is 0 (sign(0))."""
    traits = {"elementwise", "pure"}
    kernel = "abs({0})"

    def infer(a):
        return numeric_type(a, "abs")

    def reference(a):
        return np.abs(a)

    def vjp(b, grads, inputs, outputs):
        return (b.op("mul", grads[0], b.op("sign", inputs[0])),)

    def examples():
        return unary_examples(avoid=(0.0,))


@op("sign")
class Sign:
    """-1, 0 or 1 by the sign of x; piecewise constant, so no gradient flows (zero)."""
    traits = {"elementwise", "pure", "no_grad"}
    kernel = "np.sign({0})"
    vjp = None
    examples = staticmethod(unary_examples)

    def infer(a):
        return numeric_type(a, "sign")

    def reference(a):
        return np.sign(a)


@op("sin")
class Sin:
    """Sine."""
    traits = {"elementwise", "pure"}
    kernel = "np.sin({0})"
    examples = staticmethod(unary_examples)

    def infer(a):
        return float_type(a, "sin")

    def reference(a):
        return np.sin(a)

    def vjp(b, grads, inputs, outputs):
        return (b.op("mul", grads[0], b.op("cos", inputs[0])),)


@op("cos")
class Cos:
    """Cosine."""
    traits = {"elementwise", "pure"}
    kernel = "np.cos({0})"
    examples = staticmethod(unary_examples)

    def infer(a):
        return float_type(a, "cos")

    def reference(a):
        return np.cos(a)

    def vjp(b, grads, inputs, outputs):
        return (b.op("neg", b.op("mul", grads[0], b.op("sin", inputs[0]))),)


@op("tanh")
class Tanh:
    """Hyperbolic tangent."""
    traits = {"elementwise", "pure"}
    kernel = "np.tanh({0})"
    examples = staticmethod(unary_examples)

    def infer(a):
        return float_type(a, "tanh")

    def reference(a):
        return np.tanh(a)

    def vjp(b, grads, inputs, outputs):
        y = outputs[0]
        return (b.op("mul", grads[0], b.op("sub", b.constant(1, y.dtype), b.op("square", y))),)


@op("erf")
class Erf:
    """The error function (exact GELU is built on it)."""
    traits = {"elementwise", "pure"}
    kernel = "math.erf({0})"
    examples = staticmethod(unary_examples)

    def infer(a):
        return float_type(a, "erf")

    def reference(a):
        from scipy.special import erf
        return erf(a).astype(a.dtype)

    def vjp(b, grads, inputs, outputs):
        x = inputs[0]
        bell = b.op("exp", b.op("neg", b.op("square", x)))
        scale = b.constant(2 / math.sqrt(math.pi), x.dtype)
        return (b.op("mul", grads[0], b.op("mul", bell, scale)),)


@op("square")
class Square:
    """x * x."""
    traits = {"elementwise", "pure"}
    kernel = "({0} * {0})"
    examples = staticmethod(unary_examples)

    def infer(a):
        return numeric_type(a, "square")

    def reference(a):
        return np.square(a)

    def vjp(b, grads, inputs, outputs):
        x = inputs[0]
        return (b.op("mul", grads[0], b.op("mul", x, b.constant(2, x.dtype))),)


@op("reciprocal")
class Reciprocal:
    """1 / x."""
    traits = {"elementwise", "pure"}
    kernel = typed("(#1 / {0})")

    def infer(a):
        return float_type(a, "reciprocal")

    def reference(a):
        return np.reciprocal(a)

    def vjp(b, grads, inputs, outputs):
        return (b.op("neg", b.op("mul", grads[0], b.op("square", outputs[0]))),)

    def examples():
        return unary_examples(low=0.5, high=3.0)


@op("cast")
class Cast:
    """Convert to another element type (attr dtype); float to int truncates toward zero.

    No kernel template yet: a template cannot name the target type until template attributes
    are rendered as NumPy type names, so cast is emitted as a converting copy.
    """
    traits = {"pure"}
    fusion_kernel = ("{0}", (0,))         # the loop IR casts every result to its dtype

    def infer(a, dtype: DType):
        return a.with_dtype(dtype)

    def reference(a, dtype: DType):
        return a.astype(dtype.numpy)

    def vjp(b, grads, inputs, outputs, dtype: DType):
        x = inputs[0]
        if grads[0] is None or not (x.dtype.is_float and dtype.is_float):
            return (None,)
        return (b.op("cast", grads[0], dtype=x.dtype),)

    def examples():
        f32 = TensorType(DType.f32, (3, 4))
        return [((f32,), {"dtype": DType.f64}),
                ((f32,), {"dtype": DType.i64}),
                ((TensorType(DType.i64, (2, 3)),), {"dtype": DType.f32}),
                ((TensorType(DType.bool, (5,)),), {"dtype": DType.f32}),
                ((TensorType(DType.f32, ()),), {"dtype": DType.bool})]


@op("stop_gradient")
class StopGradient:
    """Identity whose gradient is cut: autodiff treats its output as a constant."""
    traits = {"elementwise", "pure", "no_grad"}
    kernel = "{0}"
    vjp = None
    examples = staticmethod(unary_examples)

    def infer(a):
        return a

    def reference(a):
        return a.copy()


@op("identity")
class Identity:
    """The input, unchanged (a named point in the graph)."""
    traits = {"elementwise", "pure"}
    kernel = "{0}"
    examples = staticmethod(unary_examples)

    def infer(a):
        return a

    def reference(a):
        return a.copy()

    def vjp(b, grads, inputs, outputs):
        return (grads[0],)
