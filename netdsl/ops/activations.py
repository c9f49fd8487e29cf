"""Elementwise activations: sigmoid, relu (and relu_grad, its gradient), leaky_relu, step, gelu,
gelu_tanh, softplus, clip.

Same conventions as unary.py (`#c` constants keep the operand's dtype).  Sigmoid and softplus use
the overflow-free forms; the kinks of relu/leaky_relu/clip take the gradient of the flat side
at the kink itself (relu'(0) = 0, clip passes the gradient on its closed interval [lo, hi]).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.types import DType, TensorType
from ._common import elementwise_type, float_type, unbroadcast
from .registry import op
from .unary import numeric_type, typed, unary_examples


@op("sigmoid")
class Sigmoid:
    """1 / (1 + e^-x)."""
    traits = {"elementwise", "pure"}
    # One exp and no branch, so a loop of sigmoids vectorises.  For x < -88, e^-x overflows
    # to inf and 1 / inf is the correct 0; the result stays within an ulp or two elsewhere.
    kernel = typed("#1 / (#1 + np.exp(-{0}))")

    def infer(a):
        return float_type(a, "sigmoid")

    def reference(a):
        e = np.exp(-np.abs(a))
        return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype)

    def vjp(b, grads, inputs, outputs):
        y = outputs[0]
        return (b.op("mul", grads[0], b.op("mul", y, b.op("sub", b.constant(1, y.dtype), y))),)

    def examples():
        f32 = DType.f32
        return unary_examples() + [((TensorType(f32, (6,)),), {}, {"low": -60.0, "high": 60.0})]


@op("relu")
class Relu:
    """max(x, 0); gradient 1 where x > 0.  NaN stays NaN (as torch.relu), so a NaN made
    upstream still reaches the loss and its watch rather than turning into 0."""
    traits = {"elementwise", "pure"}
    kernel = typed("({0} if not ({0} <= #0) else #0)")

    def infer(a):
        return numeric_type(a, "relu")

    def reference(a):
        return np.where(a <= 0, 0, a).astype(a.dtype)

    def vjp(b, grads, inputs, outputs):
        # From the output, which the next layer keeps for its own gradient anyway (y > 0
        # exactly where x > 0): one op reading g and y, so fusion computes it in the backward
        # kernel that makes g.  `g * step(x)` had step(x) fused into the forward kernel and
        # a mask of the activation's size stored until the backward pass.
        return (b.op("relu_grad", grads[0], outputs[0]),)

    def examples():
        return unary_examples(avoid=(0.0,))


@op("leaky_relu")
class LeakyRelu:
    """x where x > 0, alpha * x elsewhere (attr alpha, default 0.01)."""
    traits = {"elementwise", "pure"}
    kernel = typed("({0} if {0} > #0 else type({0})({alpha}) * {0})")

    def infer(a, alpha: float = 0.01):
        return float_type(a, "leaky_relu")

    def reference(a, alpha: float = 0.01):
        return np.where(a > 0, a, alpha * a).astype(a.dtype)

    def vjp(b, grads, inputs, outputs, alpha: float = 0.01):
        g = grads[0]
        x = inputs[0]
        positive = b.op("greater", x, b.constant(0, x.dtype))
        return (b.op("where", positive, g, b.op("mul", g, b.constant(alpha, g.dtype))),)

    def examples():
        return [(types, {"alpha": 0.2}, options)
                for types, _, options in unary_examples(avoid=(0.0,))]


@op("step")
class Step:
    """Heaviside step: 1 where x > 0, else 0 (same dtype); piecewise constant, no gradient."""
    traits = {"elementwise", "pure", "no_grad"}
    kernel = typed("(#1 if {0} > #0 else #0)")
    vjp = None

    def infer(a):
        return numeric_type(a, "step")

    def reference(a):
        return (a > 0).astype(a.dtype)

    def examples():
        return unary_examples(avoid=(0.0,))


@op("relu_grad")
class ReluGrad:
    """relu's gradient from its output: g where y > 0, else 0 (broadcasting, as `mul`)."""
    traits = {"elementwise", "pure"}
    kernel = typed("({0} if {1} > #0 else #0)")

    def infer(g, y):
        return numeric_type(elementwise_type(g, y), "relu_grad")

    def reference(g, y):
        return np.where(y > 0, g, 0).astype(np.result_type(g, y))

    def vjp(b, grads, inputs, outputs):
        # Linear in g; piecewise constant in y (no gradient reaches it).
        return (unbroadcast(b, b.op("relu_grad", grads[0], inputs[1]), inputs[0].type), None)

    def examples():
        f32 = DType.f32
        return [((TensorType(f32, (2, 3, 5)), TensorType(f32, (2, 3, 5))), {}, {"avoid": (0.0,)}),
                ((TensorType(f32, (3, 1)), TensorType(f32, (1, 5))), {}, {"avoid": (0.0,)}),
                ((TensorType(f32, ()), TensorType(f32, ())), {}, {"avoid": (0.0,)})]


_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_CUBIC = 0.044715


@op("gelu")
class Gelu:
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    traits = {"elementwise", "pure"}
    kernel = typed(f"(#0.5 * {{0}} * (#1 + math.erf({{0}} * #{_INV_SQRT2!r})))")
    examples = staticmethod(unary_examples)

    def infer(a):
        return float_type(a, "gelu")

    def reference(a):
        from scipy.special import erf
        return (0.5 * a * (1 + erf(a * _INV_SQRT2))).astype(a.dtype)

    def vjp(b, grads, inputs, outputs):
        # d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density.
        x = inputs[0]
        erf = b.op("erf", b.op("mul", x, b.constant(_INV_SQRT2, x.dtype)))
        cdf = b.op("mul", b.constant(0.5, x.dtype), b.op("add", b.constant(1, x.dtype), erf))
        pdf = b.op("mul", b.constant(_INV_SQRT_2PI, x.dtype),
                   b.op("exp", b.op("mul", b.op("square", x), b.constant(-0.5, x.dtype))))
        return (b.op("mul", grads[0], b.op("add", cdf, b.op("mul", x, pdf))),)


@op("gelu_tanh")
class GeluTanh:
    """GELU's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    traits = {"elementwise", "pure"}
    kernel = typed(f"(#0.5 * {{0}} * (#1 + np.tanh(#{_SQRT_2_OVER_PI!r} * "
                   f"({{0}} + #{_GELU_CUBIC!r} * {{0}} * {{0}} * {{0}}))))")
    examples = staticmethod(unary_examples)

    def infer(a):
        return float_type(a, "gelu_tanh")

    def reference(a):
        inner = _SQRT_2_OVER_PI * (a + _GELU_CUBIC * a ** 3)
        return (0.5 * a * (1 + np.tanh(inner))).astype(a.dtype)

    def vjp(b, grads, inputs, outputs):
        # y = x/2 (1 + t), t = tanh(u):  y' = (1 + t)/2 + x/2 (1 - t^2) u'
        x = inputs[0]
        x2 = b.op("square", x)
        u = b.op("mul", b.constant(_SQRT_2_OVER_PI, x.dtype),
                 b.op("add", x, b.op("mul", b.constant(_GELU_CUBIC, x.dtype),
                                     b.op("mul", x2, x))))
        du = b.op("mul", b.constant(_SQRT_2_OVER_PI, x.dtype),
                  b.op("add", b.constant(1, x.dtype),
                       b.op("mul", b.constant(3 * _GELU_CUBIC, x.dtype), x2)))
        t = b.op("tanh", u)
        half = b.constant(0.5, x.dtype)
        one = b.constant(1, x.dtype)
        left = b.op("mul", half, b.op("add", one, t))
        sech2 = b.op("sub", one, b.op("square", t))
        right = b.op("mul", b.op("mul", half, x), b.op("mul", sech2, du))
        return (b.op("mul", grads[0], b.op("add", left, right)),)


@op("softplus")
class Softplus:
    """log(1 + e^x), as max(x, 0) + log1p(e^-|x|) so it never overflows."""
    traits = {"elementwise", "pure"}
    kernel = typed("(({0} if {0} > #0 else #0) + np.log1p(np.exp(-abs({0}))))")

    def infer(a):
        return float_type(a, "softplus")

    def reference(a):
        return (np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))).astype(a.dtype)

    def vjp(b, grads, inputs, outputs):
        return (b.op("mul", grads[0], b.op("sigmoid", inputs[0])),)

    def examples():
        f32 = DType.f32
        return unary_examples() + [((TensorType(f32, (6,)),), {}, {"low": -80.0, "high": 80.0})]


@op("clip")
class Clip:
    """min(max(x, lo), hi) (attrs lo, hi: finite numbers); gradient passes where lo <= x <= hi."""
    traits = {"elementwise", "pure"}
    kernel = "min(max({0}, type({0})({lo})), type({0})({hi}))"

    def infer(a, lo: float, hi: float):
        return numeric_type(a, "clip")

    def reference(a, lo: float, hi: float):
        return np.clip(a, lo, hi).astype(a.dtype)

    def vjp(b, grads, inputs, outputs, lo: float, hi: float):
        x = inputs[0]
        inside = b.op("logical_and", b.op("greater_equal", x, b.constant(lo, x.dtype)),
                      b.op("less_equal", x, b.constant(hi, x.dtype)))
        return (b.op("where", inside, grads[0], b.constant(0, grads[0].dtype)),)

    def examples():
        return [(types, {"lo": -1.0, "hi": 0.5}, options)
                for types, _, options in unary_examples(avoid=(-1.0, 0.5))]
