"""Evaluating expressions during lowering: names, literals, operators, indexing, `as` and pipes.

An expression evaluates to a graph `Value` (a tensor), a compile-time Python value, or one of the
lowering values of values.py (functions, layers, blocks).  Calls, layer application and blocks
are in calls.py; `scan` in scan.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Error, did_you_mean
from ..ir.graph import Value
from ..ir.types import DType, Sym, dim_add, dim_floordiv, dim_mul, dim_sub
from ..layers.base import FUNCTIONS, LAYERS
from ..layers.init import INITIALIZERS, InitSpec
from ..source import Span
from . import ast
from .context import CallContext
from .limits import MAX_LOWERING_DEPTH, fold, negate
from .values import (INVALID, FunctionRef, Invalid, LayerConfig, LayerRef, Repeat,
                     is_layer)

if TYPE_CHECKING:
    from .lower import Lowerer, Scope

_TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul",
               "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal",
               "==": "equal", "!=": "not_equal"}
_DIM_OPS = {"+": dim_add, "-": dim_sub, "*": dim_mul, "//": dim_floordiv}


def evaluate(lowerer: "Lowerer", scope: "Scope", expr: ast.Expr) -> Any:
    """The value of an expression in a scope.

    Evaluation recurses on the expression, and on the bodies of the blocks it applies, so its
    depth is counted (`lowerer.depth`) and bounded by MAX_LOWERING_DEPTH: a chain of blocks
    applying blocks is refused with an error, not a RecursionError."""
    lowerer.depth += 1
    try:
        if lowerer.depth > MAX_LOWERING_DEPTH:
            raise Error(f"expressions and the blocks they apply nest more than "
                        f"{MAX_LOWERING_DEPTH} levels deep here", expr.span,
                        "bind intermediate results to names, or apply fewer blocks inside "
                        "blocks")
        return _evaluate(lowerer, scope, expr)
    finally:
        lowerer.depth -= 1


def _evaluate(lowerer: "Lowerer", scope: "Scope", expr: ast.Expr) -> Any:
    if isinstance(expr, ast.Name):
        return resolve_name(lowerer, scope, expr)
    if isinstance(expr, (ast.Number, ast.String, ast.Bool)):
        return expr.value
    if isinstance(expr, ast.NoneLit):
        return None
    if isinstance(expr, ast.Tuple):
        return tuple(evaluate(lowerer, scope, item) for item in expr.items)
    if isinstance(expr, ast.List):
        return [evaluate(lowerer, scope, item) for item in expr.items]
    if isinstance(expr, ast.BinOp):
        return _binary(lowerer, scope, expr)
    if isinstance(expr, ast.UnaryOp):
        return _unary(lowerer, scope, expr)
    if isinstance(expr, ast.Call):
        from .calls import call
        return call(lowerer, scope, expr)
    if isinstance(expr, ast.Pipe):
        from .calls import pipe
        return pipe(lowerer, scope, expr)
    if isinstance(expr, ast.Named):
        return _named(lowerer, scope, expr)
    if isinstance(expr, ast.Index):
        from .indexing import index
        return index(lowerer, scope, expr)
    if isinstance(expr, ast.Attribute):
        return _attribute(lowerer, scope, expr)
    if isinstance(expr, ast.Scan):
        from .scan import lower_scan
        return lower_scan(lowerer, scope, expr)
    raise Error(f"this expression ({type(expr).__name__}) is not allowed here", expr.span)


def resolve_name(lowerer: "Lowerer", scope: "Scope", expr: ast.Name) -> Any:
    """Look a name up: local bindings, block arguments, consts, dims, blocks, layers, functions."""
    name = expr.id
    value = scope.lookup(name)
    if value is not None:
        return value
    from .lower import compile_time_value
    known = compile_time_value(lowerer, scope, name)
    if known is not None:
        return known
    walk = scope
    while walk is not None:
        dim = walk.dims.lookup(name)
        if dim is not None:
            return dim
        walk = walk.parent
    if name in lowerer.program.blocks:
        return LayerRef(name, lowerer.program.blocks[name])
    from ..layers.stdlib import stdlib_block, stdlib_index
    block = stdlib_block(name)
    if block is not None:
        return LayerRef(name, block)
    library = stdlib_index()
    if name in LAYERS:
        return LayerRef(name, LAYERS[name])
    if name in FUNCTIONS:
        return FunctionRef(name, FUNCTIONS[name])
    if name in INITIALIZERS:
        return InitSpec(name)
    if name == "repeat":
        raise Error("repeat must be called: repeat(n, Layer(...))", expr.span)
    if lowerer.diagnostics.full:
        # Past the errors that are printed: no hint, whose search is linear in the names in
        # scope (4,000 unknown names would otherwise take quadratic time).
        raise Error(f"unknown name '{name}'", expr.span)
    candidates = (scope.visible() | set(lowerer.program.consts) | set(lowerer.program.blocks)
                  | set(library) | set(LAYERS) | set(FUNCTIONS) | set(INITIALIZERS))
    hint = did_you_mean(name, candidates)
    if name in scope.instances:
        hint = (f"`as {name}` names a layer instance for checkpoints, not a value; to use its "
                f"parameters, bind the layer (`{name} = Dense(...)`, then `x |> {name}` and "
                f"`{name}.weight`)")
    if hint is None and name[:1].isupper() and len(name) > 2:
        hint = "layers: " + ", ".join(sorted(set(LAYERS) | set(library) |
                                             set(lowerer.program.blocks)))
    raise Error(f"unknown name '{name}'", expr.span, hint)


def expect_tensor(value: Any, span: Span | None, what: str) -> Value | Invalid:
    """`value` as a tensor, or an error that says what it is instead."""
    if isinstance(value, (Value, Invalid)):
        return value
    if is_layer(value):
        kind = value.kind
        raise Error(f"{kind} is a layer, but {what} must be a tensor", span,
                    hint=f"apply the layer to a tensor: `x |> {kind}(...)`, or bracket a "
                         f"pipeline before using its result: `(x |> {kind}(...)) + y`")
    if isinstance(value, FunctionRef):
        raise Error(f"{value.name} is a function, but {what} must be a tensor", span,
                    hint=f"call it: {value.name}(x)")
    raise Error(f"{what} must be a tensor, got {value!r}", span)


def _tensor_operand(lowerer, value: Any, expr: ast.Expr, operator: str) -> Any:
    if isinstance(value, (Value, Invalid, int, float, bool, Sym, list)):
        return value
    return expect_tensor(value, expr.span, f"an operand of `{operator}`")


def _binary(lowerer: "Lowerer", scope: "Scope", expr: ast.BinOp) -> Any:
    left, right = evaluate(lowerer, scope, expr.left), evaluate(lowerer, scope, expr.right)
    if isinstance(left, str) and isinstance(right, str) and expr.op in ("==", "!="):
        return (left == right) == (expr.op == "==")     # `activation == "gelu"`: a bool
    left = _tensor_operand(lowerer, left, expr.left, expr.op)
    right = _tensor_operand(lowerer, right, expr.right, expr.op)
    if isinstance(left, Invalid) or isinstance(right, Invalid):
        return INVALID
    if isinstance(left, list) or isinstance(right, list):
        left, right = _list_operands(lowerer, expr, left, right)
    if not isinstance(left, Value) and not isinstance(right, Value):
        if isinstance(left, Sym) or isinstance(right, Sym):
            if expr.op in _DIM_OPS:
                return _DIM_OPS[expr.op](left, right)
            if expr.op == "/":
                from .dims import exact_div
                return exact_div(left, right, expr.span)
            raise Error(f"`{expr.op}` is not defined on dimensions", expr.span)
        return fold(expr.op, left, right, expr.span)
    if expr.op not in _TENSOR_OPS:
        raise Error(f"`{expr.op}` is not defined on tensors", expr.span,
                    hint="`//` and `%` work on compile-time numbers and dimensions only")
    ctx = CallContext(lowerer, expr.span)
    if expr.op == "@" and not (isinstance(left, Value) and isinstance(right, Value)):
        raise Error("`@` needs two tensors", expr.span)
    if isinstance(left, Value) and not isinstance(right, Value):
        left = _promote_for(ctx, left, right)
    elif isinstance(right, Value) and not isinstance(left, Value):
        right = _promote_for(ctx, right, left)
    like = left if isinstance(left, Value) else right
    first = len(lowerer.builder.graph.nodes)         # its nodes' FLOPs go in its record
    if expr.op == "**" and isinstance(right, (int, float)) and right == 2:
        result = ctx.op("mul", left, left)              # x ** 2: cheaper and exact
    else:
        a = left if isinstance(left, Value) else ctx.const(left, like)
        b = right if isinstance(right, Value) else ctx.const(right, like)
        result = ctx.op(_TENSOR_OPS[expr.op], a, b)
    lowerer.record(lowerer.unique_record_name(_TENSOR_OPS[expr.op]), expr.op, "function",
                   [left, right], [result], expr.span, first_node=first)
    return result


def _list_operands(lowerer, expr: ast.BinOp, left: Any, right: Any) -> tuple[Any, Any]:
    """`x * [1.0, 2.0]`: a list operand of a tensor operation is a constant tensor (f32, or the
    other tensor's integer type when every item is an int).  Two lists, or a list and a number,
    stay compile-time values (`[1, 2] + [3]` joins lists)."""
    other = right if isinstance(left, list) else left
    if not isinstance(other, Value):
        return left, right
    ctx = CallContext(lowerer, expr.span)
    dtype = other.dtype if other.dtype.is_int else None

    def convert(value, node):
        return ctx.list_tensor(value, node.span, dtype) if isinstance(value, list) else value
    return convert(left, expr.left), convert(right, expr.right)


def _promote_for(ctx: CallContext, tensor: Value, scalar: Any) -> Value:
    """The tensor operand of `tensor op scalar`, converted as torch promotes: an integer or
    bool tensor with a float scalar becomes f32, a bool tensor with an int scalar i64 (a
    constant of the tensor's own type would silently truncate 0.5 to 0, or 2 to true)."""
    if isinstance(scalar, bool) or not isinstance(scalar, (int, float)):
        return tensor
    if isinstance(scalar, float) and not tensor.dtype.is_float:
        return ctx.op("cast", tensor, dtype=DType.f32)
    if isinstance(scalar, int) and tensor.dtype == DType.bool:
        return ctx.op("cast", tensor, dtype=DType.i64)
    return tensor


def _unary(lowerer: "Lowerer", scope: "Scope", expr: ast.UnaryOp) -> Any:
    operand = _tensor_operand(lowerer, evaluate(lowerer, scope, expr.operand), expr.operand,
                              expr.op)
    if isinstance(operand, Invalid):
        return INVALID
    if expr.op == "+":
        return operand
    if isinstance(operand, Value):
        return CallContext(lowerer, expr.span).op("neg", operand)
    if isinstance(operand, Sym):
        return dim_mul(operand, -1)
    if not isinstance(operand, (int, float)):
        raise Error(f"cannot apply unary `{expr.op}` to {operand!r}", expr.span)
    return negate(operand, expr.span)


def _named(lowerer: "Lowerer", scope: "Scope", expr: ast.Named) -> Any:
    """`Layer(...) as name` outside a pipeline: name the layer instance."""
    return name_layer(lowerer, evaluate(lowerer, scope, expr.value), expr)


def name_layer(lowerer: "Lowerer", value: Any, expr: ast.Named) -> Any:
    """Give a layer configuration its instance name (`Flatten as flat` configures it first)."""
    if isinstance(value, LayerRef):
        from .calls import configure
        value = configure(lowerer, value, [], [], expr.value.span)
    if isinstance(value, (LayerConfig, Repeat)):
        if value.explicit_name is not None and value.explicit_name != expr.name:
            raise Error(f"this layer is already named '{value.explicit_name}'", expr.span)
        value.explicit_name = expr.name
        return value
    if isinstance(value, Invalid):
        return value
    raise Error(f"`as {expr.name}` names a layer instance, but this is not a layer",
                expr.name_span or expr.span,
                hint="write the name after the layer: `x |> Dense(10) as fc |> relu`")


def _attribute(lowerer: "Lowerer", scope: "Scope", expr: ast.Attribute) -> Any:
    """`fc1.weight`: a parameter of an applied, named layer instance."""
    value = evaluate(lowerer, scope, expr.value)
    if isinstance(value, Invalid):
        return value
    if isinstance(value, LayerConfig):
        if value.instance is None:
            raise Error(f"'{expr.attr}' is not available before the layer is applied",
                        expr.span)
        if expr.attr in value.instance.params:
            return lowerer.capture(value.instance.params[expr.attr])
        raise Error(f"layer '{value.instance.full_name}' has no parameter '{expr.attr}'",
                    expr.span, did_you_mean(expr.attr, value.instance.params) or
                    f"its parameters: {', '.join(value.instance.params) or 'none'}")
    raise Error(f"`.{expr.attr}` needs a layer instance, got {value!r}", expr.span)
