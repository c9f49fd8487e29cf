"""Python source of the loop IR's scalar expressions, shared by the Numba dialects (the cpu
target's njit code and the cuda target's kernels): typed literals (`np.float32(0.5)`, inf and
nan through NumPy), casts by NumPy scalar constructors, and each neutral function spelled by a
table the target gives (`np.exp` on the CPU, `math.exp` in a CUDA kernel).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.types import DType
from .expr import BinOp, Call, Cast, Compare, Const, Expr, Ref, Select, UnaryOp

# The cpu target's spelling of each neutral function of the scalar IR.
FUNCTIONS = {"exp": "np.exp", "log": "np.log", "tanh": "np.tanh", "erf": "math.erf",
             "sqrt": "np.sqrt", "log1p": "np.log1p", "abs": "abs", "sign": "np.sign",
             "sin": "np.sin", "cos": "np.cos", "max": "max", "min": "min"}


def literal(value, dtype: DType) -> str:
    """A scalar of `dtype` as Numba source (inf and nan included)."""
    x = np.asarray(value).reshape(()).item()
    if dtype == DType.bool:
        return repr(bool(x))
    if dtype.is_float:
        text = "np.inf" if x == math.inf else "-np.inf" if x == -math.inf else \
            "np.nan" if x != x else repr(float(x))
        return f"np.{dtype.numpy.name}({text})"
    return f"np.{dtype.numpy.name}({int(x)})"


def scalar_type(dtype: DType) -> str:
    """The Numba scalar constructor of a dtype (`np.float32`, `np.bool_`)."""
    return "np.bool_" if dtype == DType.bool else f"np.{dtype.numpy.name}"


def render(expr: Expr, prefix: str = "", functions: dict[str, str] = FUNCTIONS) -> str:
    """Source of a scalar expression; kernel locals (Ref) get `prefix`; `functions` spells
    the neutral functions (a target's own table: CUDA kernels call `math.*`)."""
    def inner(e: Expr) -> str:
        return render(e, prefix, functions)

    if isinstance(expr, Ref):
        return prefix + expr.name
    if isinstance(expr, Const):
        return repr(expr.value) if expr.weak else literal(expr.value, expr.dtype)
    if isinstance(expr, Cast):
        return f"{scalar_type(expr.dtype)}({inner(expr.operand)})"
    if isinstance(expr, Call):
        return f"{functions[expr.function]}({', '.join(inner(a) for a in expr.args)})"
    if isinstance(expr, (BinOp, Compare)):
        return f"({inner(expr.left)} {expr.op} {inner(expr.right)})"
    if isinstance(expr, UnaryOp):
        spacer = " " if expr.op == "not" else ""
        return f"({expr.op}{spacer}{inner(expr.operand)})"
    if isinstance(expr, Select):
        return f"({inner(expr.if_true)} if {inner(expr.condition)} else {inner(expr.if_false)})"
    raise TypeError(f"not a scalar expression: {expr!r}")


__all__ = ["FUNCTIONS", "literal", "render", "scalar_type"]
