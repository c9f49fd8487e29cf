"""Evaluating type expressions and unifying symbolic dimensions.

Inside a model, a dimension name that is not a constant is a symbol shared by the whole model:
every `B` is the same `B`.  Inside a block instance, `in x: f32[B, T, D]` *binds* `B`, `T` and `D`
to the dimensions of the tensor the block is applied to; each later use must agree, and a
conflict names both dimensions and where each was bound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import Diagnostic, Error
from ..ir.graph import Value
from ..ir.types import (DimLike, DType, Sym, TensorType, dim_add, dim_floordiv, dim_mul,
                        dim_sub)
from ..source import Span
from . import ast
from .cost import per_example
from .limits import MAX_DIM, MAX_ELEMENTS, Quotient, whole


@dataclass
class DimBindings:
    """Symbolic dimension name -> dimension, and the span where each was bound."""

    values: dict[str, DimLike] = field(default_factory=dict)
    spans: dict[str, Span | None] = field(default_factory=dict)
    free: bool = True               # model level: unbound names become symbols

    def lookup(self, name: str) -> DimLike | None:
        return self.values.get(name)


def eval_dim(expr: ast.DimExpr, bindings: DimBindings,
             compile_time: Callable[[str], Any]) -> DimLike:
    """A dimension from its expression: ints, consts/block args (via compile_time), symbols."""
    if isinstance(expr, ast.DimInt):
        return expr.value
    if isinstance(expr, ast.DimName):
        known = whole(compile_time(expr.id), expr.span, f"dimension '{expr.id}'")
        if known is not None:
            if not isinstance(known, int) or isinstance(known, bool):
                raise Error(f"dimension '{expr.id}' must be an int, but it is {known!r}",
                            expr.span)
            return known
        bound = bindings.lookup(expr.id)
        return bound if bound is not None else Sym.named(expr.id)
    left = eval_dim(expr.left, bindings, compile_time)
    right = eval_dim(expr.right, bindings, compile_time)
    if expr.op == "+":
        return dim_add(left, right)
    if expr.op == "-":
        return dim_sub(left, right)
    if expr.op == "*":
        return dim_mul(left, right)
    if expr.op == "/":
        return exact_div(left, right, expr.span)
    return dim_floordiv(left, right)


def exact_div(left: DimLike, right: DimLike, span: Span | None) -> DimLike:
    """`left / right` where a dimension is needed: a whole number, or an error naming both."""
    if right == 0:
        raise Error(f"cannot divide the dimension {left} by zero", span)
    if isinstance(left, int) and isinstance(right, int):
        return whole(Quotient(left, right), span)
    result = dim_floordiv(left, right)
    if dim_mul(result, right) != left:                   # not an exact polynomial division
        raise Error(f"the dimension {left} / {right} is not known to be a whole number", span,
                    f"use `//` to round down, or make {left} a multiple of {right}")
    return result


def eval_type(expr: ast.TensorTypeExpr, bindings: DimBindings,
              compile_time: Callable[[str], Any]) -> TensorType:
    """The TensorType a type expression denotes under the current bindings."""
    dims = tuple(eval_dim(d, bindings, compile_time) for d in expr.dims)
    size = 1
    for dim, node in zip(dims, expr.dims):
        if isinstance(dim, int):
            if dim < 0:
                raise Error(f"dimension {dim} is negative", node.span)
            if dim == 0:
                raise Error("dimension 0 would make an empty tensor", node.span,
                            "every dimension must be at least 1")
            if dim > MAX_DIM:
                raise Error(f"dimension {dim:,} is larger than {MAX_DIM:,} (2**31 - 1), the "
                            f"limit", node.span)
            size *= dim
        elif per_example(dim) > MAX_DIM:
            raise Error(f"dimension {dim} is larger than {MAX_DIM:,} (2**31 - 1) even when "
                        f"its symbols are 1", node.span)
    if size > MAX_ELEMENTS:
        raise Error(f"this type has {size:,} elements, more than the limit of "
                    f"{MAX_ELEMENTS:,} (2**40)", expr.span)
    return TensorType(DType(expr.dtype), dims)


def bind_input(expr: ast.TensorTypeExpr, actual: Value, bindings: DimBindings,
               compile_time: Callable[[str], Any], name: str, span: Span | None,
               actual_span: Span | None) -> None:
    """Check a block input's declared type against the tensor it receives, binding its dims."""
    declared_text = _type_text(expr)
    if DType(expr.dtype) != actual.dtype:
        raise Error(Diagnostic(
            f"input '{name}' expects element type {expr.dtype}, got {actual.type}", span,
            hint=f"convert with cast(x, \"{expr.dtype}\")" if actual.dtype.is_float else None,
            notes=[(actual_span, f"the argument {actual.type} comes from here")]
            if actual_span else []))
    if len(expr.dims) != actual.rank:
        raise Error(Diagnostic(
            f"input '{name}' expects {declared_text} (rank {len(expr.dims)}), "
            f"got {actual.type} (rank {actual.rank})", span,
            notes=[(actual_span, "the argument comes from here")] if actual_span else []))
    # Bind single names first, then check every dim (arithmetic uses the bindings).
    for dim_expr, dim in zip(expr.dims, actual.shape):
        if isinstance(dim_expr, ast.DimName) and compile_time(dim_expr.id) is None:
            previous = bindings.lookup(dim_expr.id)
            if previous is None:
                bindings.values[dim_expr.id] = dim
                bindings.spans[dim_expr.id] = dim_expr.span
            elif previous != dim:
                raise Error(Diagnostic(
                    f"dimension {dim_expr.id} is {previous} here but {dim} in input '{name}' "
                    f"({declared_text} got {actual.type})", dim_expr.span,
                    notes=[(bindings.spans.get(dim_expr.id),
                            f"{dim_expr.id} was bound to {previous} here")]))
    for index, (dim_expr, dim) in enumerate(zip(expr.dims, actual.shape)):
        expected = eval_dim(dim_expr, bindings, compile_time)
        if expected != dim:
            raise Error(Diagnostic(
                f"input '{name}' expects {declared_text}, got {actual.type}: "
                f"dimension {index} is {dim}, expected {expected}", dim_expr.span or span,
                notes=[(actual_span, f"the argument {actual.type} comes from here")]
                if actual_span else []))


def _type_text(expr: ast.TensorTypeExpr) -> str:
    return f"{expr.dtype}[{', '.join(_dim_text(d) for d in expr.dims)}]"


def _dim_text(expr: ast.DimExpr) -> str:
    if isinstance(expr, ast.DimInt):
        return str(expr.value)
    if isinstance(expr, ast.DimName):
        return expr.id
    return f"{_dim_text(expr.left)}{expr.op}{_dim_text(expr.right)}"
