"""Elementwise binary arithmetic: add, sub, mul, div, pow, maximum, minimum.

Each op broadcasts like NumPy; its VJP un-broadcasts the incoming gradient back to each input's
shape (`unbroadcast`).  The `kernel` template is what the fused loop nest evaluates per element.
"""
from __future__ import annotations

import numpy as np

from ._common import NAN_MAX, NAN_MIN, elementwise_type, unbroadcast
from .registry import op


def _examples_binary():
    from ..ir.types import DType, TensorType
    f32 = DType.f32
    return [
        ((TensorType(f32, (3, 4)), TensorType(f32, (3, 4))), {}),
        ((TensorType(f32, (2, 3, 4)), TensorType(f32, (4,))), {}),
        ((TensorType(f32, (3, 1)), TensorType(f32, (1, 5))), {}),
    ]


@op("add")
class Add:
    """a + b with broadcasting."""
    traits = {"elementwise", "pure"}
    kernel = "({0} + {1})"
    examples = staticmethod(_examples_binary)

    def infer(a, b):
        return elementwise_type(a, b)

    def reference(a, b):
        return np.add(a, b)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        return unbroadcast(b, g, inputs[0].type), unbroadcast(b, g, inputs[1].type)


@op("sub")
class Sub:
    """a - b with broadcasting."""
    traits = {"elementwise", "pure"}
    kernel = "({0} - {1})"
    examples = staticmethod(_examples_binary)

    def infer(a, b):
        return elementwise_type(a, b)

    def reference(a, b):
        return np.subtract(a, b)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        return unbroadcast(b, g, inputs[0].type), unbroadcast(b, b.op("neg", g), inputs[1].type)


@op("mul")
class Mul:
    """a * b with broadcasting."""
    traits = {"elementwise", "pure"}
    kernel = "({0} * {1})"
    examples = staticmethod(_examples_binary)

    def infer(a, b):
        return elementwise_type(a, b)

    def reference(a, b):
        return np.multiply(a, b)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        x, y = inputs
        return (unbroadcast(b, b.op("mul", g, y), x.type),
                unbroadcast(b, b.op("mul", g, x), y.type))


@op("div")
class Div:
    """a / b with broadcasting (true division)."""
    traits = {"elementwise", "pure"}
    kernel = "({0} / {1})"
    examples = staticmethod(_examples_binary)

    def infer(a, b):
        return elementwise_type(a, b)

    def reference(a, b):
        return np.divide(a, b)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        x, y = inputs
        gx = b.op("div", g, y)
        gy = b.op("neg", b.op("div", b.op("mul", g, outputs[0]), y))
        return unbroadcast(b, gx, x.type), unbroadcast(b, gy, y.type)


@op("neg")
class Neg:
    """-x."""
    traits = {"elementwise", "pure"}
    kernel = "(-{0})"

    def infer(a):
        return a

    def reference(a):
        return np.negative(a)

    def vjp(b, grads, inputs, outputs):
        return (b.op("neg", grads[0]),)

    def examples():
        from ..ir.types import DType, TensorType
        return [((TensorType(DType.f32, (3, 4)),), {})]


@op("pow")
class Pow:
    """a ** b with broadcasting (real powers: a negative base needs an integral exponent)."""
    traits = {"elementwise", "pure"}
    kernel = "({0} ** {1})"

    def infer(a, b):
        return elementwise_type(a, b)

    def reference(a, b):
        return np.power(a, b)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        x, y = inputs
        one = b.constant(1, y.dtype)
        gx = b.op("mul", g, b.op("mul", y, b.op("pow", x, b.op("sub", y, one))))
        # d/dy x**y = x**y * log(x) is only defined for x > 0; a constant exponent (the usual
        # `x ** 2`) gets no gradient, so its graph never holds log of a negative base.
        if y.producer is not None and y.producer.op.has("constant"):
            return unbroadcast(b, gx, x.type), None
        gy = b.op("mul", g, b.op("mul", outputs[0], b.op("log", x)))
        return unbroadcast(b, gx, x.type), unbroadcast(b, gy, y.type)

    def examples():
        # A positive base keeps log(a) (the exponent's gradient) defined.
        return [(types, attrs, {"low": 0.5, "high": 2.0}) for types, attrs in _examples_binary()]


def _select_vjp(b, grads, inputs, comparison):
    """Gradient of maximum/minimum: g goes to the operand that was selected.

    Ties go to the first operand (`comparison` is >= or <=), so the gradient is never split or
    counted twice; this is a valid subgradient, the same convention as `max(a, b)` in Python.
    """
    g = grads[0]
    x, y = inputs
    chosen = b.op(comparison, x, y)
    zero = b.constant(0, g.dtype)
    return (unbroadcast(b, b.op("where", chosen, g, zero), x.type),
            unbroadcast(b, b.op("where", chosen, zero, g), y.type))


@op("maximum")
class Maximum:
    """Elementwise maximum with broadcasting; on ties the gradient goes to the first operand.
    A NaN in either operand gives NaN (np.maximum, torch.maximum)."""
    traits = {"elementwise", "pure"}
    kernel = NAN_MAX
    examples = staticmethod(_examples_binary)

    def infer(a, b):
        return elementwise_type(a, b)

    def reference(a, b):
        return np.maximum(a, b)

    def vjp(b, grads, inputs, outputs):
        return _select_vjp(b, grads, inputs, "greater_equal")


@op("minimum")
class Minimum:
    """Elementwise minimum with broadcasting; on ties the gradient goes to the first operand.
    A NaN in either operand gives NaN (np.minimum, torch.minimum)."""
    traits = {"elementwise", "pure"}
    kernel = NAN_MIN
    examples = staticmethod(_examples_binary)

    def infer(a, b):
        return elementwise_type(a, b)

    def reference(a, b):
        return np.minimum(a, b)

    def vjp(b, grads, inputs, outputs):
        return _select_vjp(b, grads, inputs, "less_equal")
