"""Elementwise binary arithmetic: add, sub, mul, div, pow, maximum, minimum.

Each op broadcasts like NumPy; its VJP un-broadcasts the incoming gradient back to each input's
shape (`unbroadcast`).  The `kernel` template is what the fused loop nest evaluates per element.
"""
from __future__ import annotations

import numpy as np

from ._common import elementwise_type, unbroadcast
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
