"""Scalar expressions of the loop IR: a small typed tree that each target renders in its dialect.

An op's scalar `kernel` template is Python-expression text over `{0}`, `{1}` (operands) and
`{name}` (attributes), using `np.exp`, `math.erf`, `abs`, `max`/`min`, `type({0})(c)`,
conditional expressions and comparisons.  `parse_template` reads it once with Python's `ast`
module into these nodes, with neutral function names (`exp`, `erf`, ...):

    Const(value, dtype, weak)   a literal; `weak` marks a bare Python int/bool of the template,
                                which takes the type of what it meets (as JAX's weak types do)
    Ref(name, dtype)            a local of the kernel (a loaded element or an earlier result)
    Call(function, args)        exp log tanh erf sqrt log1p abs sign sin cos max min
    BinOp(op, left, right)      + - * / ** and or
    UnaryOp(op, operand)        - not
    Compare(op, left, right)    < <= > >= == !=
    Select(condition, if_true, if_false)
    Cast(dtype, operand)        `type({0})(c)`, and every node's result in its node's dtype

Float literals of a template take the node's float element type (an f32 model computes in f32,
as the reference interpreter does, instead of drifting to f64 through Python float literals).
"""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import Union

import numpy as np

from ..ir.types import DType

FUNCTIONS = {"np.exp": "exp", "np.log": "log", "np.tanh": "tanh", "math.erf": "erf",
             "np.sqrt": "sqrt", "np.log1p": "log1p", "abs": "abs", "np.sign": "sign",
             "np.sin": "sin", "np.cos": "cos", "max": "max", "min": "min"}
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
            ast.NotEq: "!="}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Const:
    value: object
    dtype: DType
    weak: bool = False


@dataclass(frozen=True)
class Ref:
    name: str
    dtype: DType


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple


@dataclass(frozen=True)
class BinOp:
    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class UnaryOp:
    op: str
    operand: "Expr"


@dataclass(frozen=True)
class Compare:
    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Select:
    condition: "Expr"
    if_true: "Expr"
    if_false: "Expr"


@dataclass(frozen=True)
class Cast:
    dtype: DType
    operand: "Expr"


Expr = Union[Const, Ref, Call, BinOp, UnaryOp, Compare, Select, Cast]


@functools.lru_cache(maxsize=None)
def _template_ast(template: str) -> ast.expr:
    """The template's Python AST, placeholders `{k}` / `{name}` turned into names `_k` / `_name`."""
    return ast.parse(_PLACEHOLDER.sub(r"_\1", template), mode="eval").body


def parse_template(template: str, operands: list[Expr], attrs: dict,
                   float_dtype: DType | None) -> Expr:
    """The expression of a kernel template with its operands and attributes filled in.

    `float_dtype` is the node's float element type: float literals and float attributes take
    it (f64 where the node has none)."""
    literal_dtype = float_dtype or DType.f64

    def attribute(value) -> Expr:
        if isinstance(value, (bool, np.bool_)):
            return Const(bool(value), DType.bool, weak=True)
        if isinstance(value, (int, np.integer)):
            return Const(int(value), DType.i64, weak=True)
        if isinstance(value, (float, np.floating)):
            return Const(float(value), literal_dtype)
        raise ValueError(f"kernel template attribute {value!r} is not a number")

    def convert(node: ast.expr) -> Expr:
        if isinstance(node, ast.Name):
            key = node.id[1:]
            return operands[int(key)] if key.isdigit() else attribute(attrs[key])
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                return Const(node.value, DType.bool, weak=True)
            if isinstance(node.value, int):
                return Const(node.value, DType.i64, weak=True)
            return Const(float(node.value), literal_dtype)
        if isinstance(node, ast.BinOp):
            return BinOp(_BINARY[type(node.op)], convert(node.left), convert(node.right))
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            result = convert(node.values[0])
            for value in node.values[1:]:
                result = BinOp(op, result, convert(value))
            return result
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return UnaryOp("-", convert(node.operand))
            if isinstance(node.op, ast.Not):
                return UnaryOp("not", convert(node.operand))
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return Compare(_COMPARE[type(node.ops[0])], convert(node.left),
                           convert(node.comparators[0]))
        if isinstance(node, ast.IfExp):
            return Select(convert(node.test), convert(node.body), convert(node.orelse))
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Call) and _name(function.func) == "type":
                return Cast(dtype_of(convert(function.args[0])), convert(node.args[0]))
            name = FUNCTIONS.get(_name(function))
            if name is not None:
                return Call(name, tuple(convert(a) for a in node.args))
        raise ValueError(f"kernel template {template!r}: cannot read {ast.unparse(node)!r}")

    return convert(_template_ast(template))


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def dtype_of(expr: Expr) -> DType:
    """The element type of a leaf or cast (what `type({0})` means in a template)."""
    if isinstance(expr, (Const, Ref, Cast)):
        return expr.dtype
    raise ValueError(f"type() of a compound expression: {expr}")


__all__ = ["BinOp", "Call", "Cast", "Compare", "Const", "Expr", "FUNCTIONS", "Ref", "Select",
           "UnaryOp", "dtype_of", "parse_template"]
