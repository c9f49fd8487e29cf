"""Comparisons, boolean logic and `where`: elementwise ops with boolean results or conditions.

Comparisons and logic ops have no gradient (their results are booleans).  `where` routes the
incoming gradient to whichever branch was selected; it is also how other VJPs (maximum, relu,
clip, leaky_relu) express "gradient here, zero there".
"""
from __future__ import annotations

import numpy as np

from ..ir.types import DType, ShapeError, TensorType, promote
from ._common import elementwise_type, unbroadcast
from .registry import op


def _compare_examples():
    f32 = DType.f32
    return [
        ((TensorType(f32, (3, 4)), TensorType(f32, (3, 4))), {}),
        ((TensorType(f32, (2, 3)), TensorType(f32, (3,))), {}),
        ((TensorType(DType.i64, (4,)), TensorType(DType.i64, (1,))), {}, {"int_high": 3}),
    ]


def _logic_examples():
    boolean = DType.bool
    return [((TensorType(boolean, (3, 4)), TensorType(boolean, (3, 4))), {}),
            ((TensorType(boolean, (2, 3)), TensorType(boolean, (1, 3))), {})]


def _boolean(*types: TensorType, name: str) -> None:
    for t in types:
        if t.dtype is not DType.bool:
            raise ShapeError(f"{name} expects boolean tensors, got {t}",
                             hint="compare first, e.g. greater(x, 0)")


def _comparison(name: str, symbol: str, function) -> None:
    """Register the comparison `name`: a <symbol> b elementwise, a boolean result, no gradient.

    The six comparisons differ only in their symbol and NumPy function, so one rule set serves
    them all.
    """

    class Comparison:
        __doc__ = f"a {symbol} b elementwise (boolean result)."
        traits = {"elementwise", "pure", "no_grad"}
        kernel = f"({{0}} {symbol} {{1}})"
        vjp = None
        examples = staticmethod(_compare_examples)

        def infer(a, b):
            return elementwise_type(a, b, dtype=DType.bool)

        def reference(a, b):
            return function(a, b)

    op(name)(Comparison)


for _name, _symbol, _function in (("less", "<", np.less), ("less_equal", "<=", np.less_equal),
                                  ("greater", ">", np.greater),
                                  ("greater_equal", ">=", np.greater_equal),
                                  ("equal", "==", np.equal), ("not_equal", "!=", np.not_equal)):
    _comparison(_name, _symbol, _function)


@op("logical_and")
class LogicalAnd:
    """a and b elementwise, on boolean tensors."""
    traits = {"elementwise", "pure", "no_grad"}
    kernel = "({0} and {1})"
    vjp = None
    examples = staticmethod(_logic_examples)

    def infer(a, b):
        _boolean(a, b, name="logical_and")
        return elementwise_type(a, b)

    def reference(a, b):
        return np.logical_and(a, b)


@op("logical_or")
class LogicalOr:
    """a or b elementwise, on boolean tensors."""
    traits = {"elementwise", "pure", "no_grad"}
    kernel = "({0} or {1})"
    vjp = None
    examples = staticmethod(_logic_examples)

    def infer(a, b):
        _boolean(a, b, name="logical_or")
        return elementwise_type(a, b)

    def reference(a, b):
        return np.logical_or(a, b)


@op("logical_not")
class LogicalNot:
    """not a elementwise, on a boolean tensor."""
    traits = {"elementwise", "pure", "no_grad"}
    kernel = "(not {0})"
    vjp = None

    def infer(a):
        _boolean(a, name="logical_not")
        return a

    def reference(a):
        return np.logical_not(a)

    def examples():
        return [((TensorType(DType.bool, (3, 4)),), {})]


@op("where")
class Where:
    """cond ? a : b elementwise, all three broadcast together (cond boolean)."""
    traits = {"elementwise", "pure"}
    kernel = "({1} if {0} else {2})"

    def infer(cond, a, b):
        _boolean(cond, name="where's condition")
        value = elementwise_type(a, b)
        return TensorType(value.dtype, elementwise_type(cond, a, b).shape)

    def reference(cond, a, b):
        dtype = promote(DType.from_numpy(a.dtype), DType.from_numpy(b.dtype))
        return np.where(cond, a, b).astype(dtype.numpy, copy=False)

    def vjp(b, grads, inputs, outputs):
        g = grads[0]
        cond, x, y = inputs
        zero = b.constant(0, g.dtype)
        return (None,
                unbroadcast(b, b.op("where", cond, g, zero), x.type),
                unbroadcast(b, b.op("where", cond, zero, g), y.type))

    def examples():
        f32 = DType.f32
        boolean = DType.bool
        return [
            ((TensorType(boolean, (3, 4)), TensorType(f32, (3, 4)), TensorType(f32, (3, 4))), {}),
            ((TensorType(boolean, (2, 1)), TensorType(f32, (2, 3)), TensorType(f32, ())), {}),
            ((TensorType(boolean, (3,)), TensorType(f32, (2, 1)), TensorType(f32, (1, 3))), {}),
        ]
