"""Calls, pipelines and layer application: functions, built-in layers, user blocks and repeat.

`Dense(120)` configures a layer; applying a configuration (`Dense(120)(x)`, `x |> Dense(120)`)
instantiates it under a scoped name and expands it into primitive ops.  A block's body is lowered
in a fresh scope per application, with its `in` types binding symbolic dims from its arguments.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import Diagnostic, Error
from ..ir.graph import Value
from ..ir.types import DType
from ..layers.base import Argument, ArgumentError, bind_call
from ..layers.init import InitSpec, make_init
from ..source import Span
from . import ast
from .context import CallContext
from .expressions import evaluate, expect_tensor, name_layer
from .limits import MAX_REPEAT, check_value, whole
from .values import (INVALID, BlockDef, FunctionRef, Invalid, LayerConfig, LayerRef, Repeat)

if TYPE_CHECKING:
    from .lower import Lowerer, Scope

_ARG_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
# How many evaluation levels applying a block counts for (limits.MAX_LOWERING_DEPTH): the
# application takes several Python frames (apply, the body, each statement) per level.
BLOCK_DEPTH = 3


def call(lowerer: "Lowerer", scope: "Scope", expr: ast.Call,
         piped: Sequence[Argument] = ()) -> Any:
    """`f(args)`: call a function, configure a layer, or apply a configured layer."""
    if isinstance(expr.func, ast.Name) and expr.func.id == "repeat" \
            and scope.lookup("repeat") is None:
        repeat = _repeat(lowerer, scope, expr)
        return apply(lowerer, scope, repeat, list(piped), expr.span) if piped else repeat
    target = evaluate(lowerer, scope, expr.func)
    chosen, first = _static_choice(lowerer, scope, expr, target, piped)
    if chosen:
        return first
    args = list(piped) + [first if i == 0 and first is not None else
                          Argument(evaluate(lowerer, scope, a), a.span)
                          for i, a in enumerate(expr.args)]
    kwargs = [(k.name, Argument(evaluate(lowerer, scope, k.value), k.span)) for k in expr.kwargs]
    if any(_invalid(a.value) for a in args) or any(_invalid(a.value) for _, a in kwargs) \
            or isinstance(target, Invalid):
        return INVALID
    if isinstance(target, FunctionRef):
        return call_function(lowerer, target, args, kwargs, expr.span)
    if isinstance(target, LayerRef):
        config = configure(lowerer, target, args[len(piped):], kwargs, expr.span)
        return apply(lowerer, scope, config, list(piped), expr.span) if piped else config
    if isinstance(target, (LayerConfig, Repeat)):
        if kwargs:
            raise Error(f"applying the layer {target.kind} takes tensors only, "
                        f"not keyword '{kwargs[0][0]}'", kwargs[0][1].span)
        return apply(lowerer, scope, target, args, expr.span)
    if isinstance(target, InitSpec) and not target.args:
        # `normal(0.02)`, `constant(0.1)`: an initialiser with its arguments, for `init=`.
        if target.kind in ("normal", "uniform"):
            return _random_or_init(lowerer, target.kind, args, kwargs, expr.span)
        return make_init(target.kind, [a.value for a in args],
                         [(k, a.value) for k, a in kwargs], expr.span)
    raise Error(f"this is not callable: {target!r}", expr.func.span)


def _invalid(value: Any) -> bool:
    """Whether a value (or a list/tuple inside it) comes from an expression that failed."""
    if isinstance(value, (list, tuple)):
        return any(_invalid(item) for item in value)
    return isinstance(value, Invalid)


def pipe(lowerer: "Lowerer", scope: "Scope", expr: ast.Pipe) -> Any:
    """`x |> stage`: apply a layer to x, or call a function with x as first argument."""
    left = evaluate(lowerer, scope, expr.left)
    if isinstance(left, Invalid):
        return INVALID
    if not isinstance(left, (Value, tuple)):
        expect_tensor(left, expr.left.span, "the input of `|>`")
    stage, name = expr.right, None
    if isinstance(stage, ast.Named):
        stage, name = stage.value, stage
    piped = [Argument(item, expr.left.span) for item in left] if isinstance(left, tuple) \
        else [Argument(left, expr.left.span)]
    if isinstance(stage, ast.Call) and name is None:
        return call(lowerer, scope, stage, piped)
    if isinstance(stage, ast.Call):
        target = call(lowerer, scope, stage)            # configure first, then name, then apply
    else:
        target = evaluate(lowerer, scope, stage)
    if isinstance(target, Invalid):
        return INVALID
    if name is not None:
        target = name_layer(lowerer, target, name)
    if isinstance(target, FunctionRef):
        return call_function(lowerer, target, piped, [], stage.span)
    if isinstance(target, LayerRef):
        target = configure(lowerer, target, [], [], stage.span)
    if isinstance(target, (LayerConfig, Repeat)):
        return apply(lowerer, scope, target, piped, stage.span)
    raise Error("the right side of `|>` must be a layer or a function", stage.span,
                hint="e.g. `x |> Dense(10)` or `x |> relu` or `x |> leaky_relu(alpha=0.2)`")


def call_function(lowerer: "Lowerer", target: FunctionRef, args: list[Argument],
                  kwargs: list[tuple[str, Argument]], span: Span | None) -> Any:
    """Call a built-in function and record it in the layer-level view."""
    if target.name in NUMBER_FUNCTIONS and len(args) == 1 and not kwargs \
            and isinstance(args[0].value, (int, float)) and not isinstance(args[0].value, bool):
        return _number_function(target.name, args[0].value, span)
    ctx = CallContext(lowerer, span)
    bound = bind_call(target.target, target.name, args, kwargs, span,
                      lists=lambda value, where, ints: ctx.list_tensor(
                          value, where, DType.i64 if ints else None))
    first = len(lowerer.builder.graph.nodes)
    result = target.target(ctx, **bound)
    inputs = [a.value for a in args] + [a.value for _, a in kwargs]
    flat_inputs = [v for item in inputs for v in (item if isinstance(item, list) else [item])]
    outputs = list(result) if isinstance(result, tuple) else [result]
    lowerer.record(lowerer.unique_record_name(target.name), target.name, "function",
                   flat_inputs, outputs, span, first_node=first)
    return result


# Functions that, applied to a compile-time number, give a compile-time number
# (`1.0 / sqrt(d)` in a block), as Python's math module computes them.
NUMBER_FUNCTIONS = {
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "sin": math.sin, "cos": math.cos,
    "tanh": math.tanh, "abs": abs, "square": lambda v: v * v,
    "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)),
}


def _number_function(name: str, value: Any, span: Span | None) -> Any:
    """`sqrt(16)` on a compile-time number: a number (a float, or abs/square of an int)."""
    try:
        result = NUMBER_FUNCTIONS[name](value)
    except ValueError:
        raise Error(f"{name}({value!r}) is not a real number", span,
                    f"{name} of a compile-time number needs a "
                    f"{'positive' if name == 'log' else 'non-negative'} number") from None
    except OverflowError:
        raise Error(f"{name}({value!r}) is too large for a 64-bit float", span) from None
    return check_value(result if name in ("abs", "square") else float(result), span)


def _random_or_init(lowerer, name, args, kwargs, span):
    """`normal([B, D])` draws a tensor; `normal(0.02)` is the initialiser."""
    values = [a.value for a in args]
    if (values and isinstance(values[0], (list, tuple))) or any(k == "shape" for k, _ in kwargs):
        from ..layers.random import random_tensor
        return random_tensor(CallContext(lowerer, span), name, args, kwargs)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        example = "0.02" if name == "normal" else "-0.1, 0.1"
        raise Error(f"{name}(...) takes a shape list (a random tensor) or numbers "
                    f"(an initialiser)", span,
                    hint=f"`{name}([B, 16])` draws a tensor; `init={name}({example})` "
                         f"initialises a layer")
    return make_init(name, values, [(k, a.value) for k, a in kwargs], span)


def configure(lowerer: "Lowerer", ref: LayerRef, args: list[Argument],
              kwargs: list[tuple[str, Argument]], span: Span | None) -> LayerConfig:
    """`Dense(120)` / `Residual(64)`: check the layer's arguments and make a configuration."""
    if isinstance(ref.target, BlockDef):
        block_args = _bind_block_args(ref.target, args, kwargs, span)
        return LayerConfig(ref.kind, ref.target, block_args, span)
    bound = bind_call(ref.target.__init__, ref.kind, args, kwargs, span)
    try:
        layer = ref.target(**bound)
    except ArgumentError as problem:
        raise Error(problem.message, _argument_span(ref.target.__init__, problem.argument, args,
                                                    kwargs) or span, problem.hint) from None
    return LayerConfig(ref.kind, layer, {}, span)


def _argument_span(init, name: str, args: list[Argument],
                   kwargs: list[tuple[str, Argument]]) -> Span | None:
    """Where the argument `name` of a layer's constructor was written, if it was."""
    import inspect
    for key, argument in kwargs:
        if key == name:
            return argument.span
    positional = list(inspect.signature(init).parameters)[1:]        # without self
    if name in positional and positional.index(name) < len(args):
        return args[positional.index(name)].span
    return None


def _bind_block_args(block: BlockDef, args, kwargs, span) -> dict[str, Any]:
    """Bind a block's typed compile-time arguments (`Residual(64, stride=2)`)."""
    from .loader import eval_const

    params = block.node.params
    bound: dict[str, Any] = {}
    if len(args) > len(params):
        raise Error(f"block {block.name} takes {len(params)} argument"
                    f"{'s' if len(params) != 1 else ''}, got {len(args)}", args[len(params)].span)
    for param, argument in zip(params, args):
        bound[param.name] = argument
    names = [p.name for p in params]
    for key, argument in kwargs:
        if key not in names:
            from ..errors import did_you_mean
            raise Error(f"block {block.name} has no argument '{key}'", argument.span,
                        did_you_mean(key, names) or f"its arguments: {', '.join(names) or 'none'}")
        if key in bound:
            raise Error(f"block {block.name} got argument '{key}' twice", argument.span)
        bound[key] = argument
    values: dict[str, Any] = {}
    for param in params:
        if param.name in bound:
            value, where = bound[param.name].value, bound[param.name].span
        elif param.default is not None:
            value, where = eval_const(param.default, {}), param.default.span
        else:
            raise Error(f"block {block.name} is missing its argument '{param.name}'", span)
        expected = _ARG_TYPES[param.type_name]
        if expected is int:
            value = whole(value, where, f"argument '{param.name}' of {block.name}")
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise Error(f"block {block.name}: argument '{param.name}' is declared "
                        f"{param.type_name}, got {value!r}", where)
        values[param.name] = value
    return values


def apply(lowerer: "Lowerer", scope: "Scope", layer: Any, inputs: list[Argument],
          span: Span | None) -> Any:
    """Apply a layer configuration (or a repeat of one) to tensors."""
    for argument in inputs:
        if isinstance(argument.value, Invalid):
            return INVALID
        expect_tensor(argument.value, argument.span, f"the input of {layer.kind}")
    if isinstance(layer, Repeat):
        from .repeat import apply_repeat
        return apply_repeat(lowerer, scope, layer, inputs, span)
    instance = lowerer.instance_for(layer, scope, span)
    instance.applications += 1
    shared = instance.applications > 1
    record_name = instance.full_name if not shared else \
        f"{instance.full_name}@{instance.applications}"
    params_before = len(lowerer.root.graph.params)
    first = len(lowerer.builder.graph.nodes)
    saved_scope, lowerer.builder.scope = lowerer.builder.scope, instance.scope
    try:
        if layer.is_block:
            return _apply_block(lowerer, layer, instance, inputs, span, record_name, shared)
        ctx = CallContext(lowerer, span, instance)
        bound = bind_call(layer.layer.apply, layer.kind, inputs, [], span)
        result = layer.layer.apply(ctx, **bound)
    finally:
        lowerer.builder.scope = saved_scope
    new_params = lowerer.root.graph.params[params_before:]
    count = sum(math.prod(p.value.type.shape) for p in new_params)     # parameter shapes
    trainable = sum(math.prod(p.value.type.shape) for p in new_params if p.trainable)  # are ints
    outputs = list(result) if isinstance(result, tuple) else [result]
    lowerer.record(record_name, layer.kind, "layer", [a.value for a in inputs], outputs, span,
                   args=layer.describe(), first_node=first, params=count, trainable=trainable,
                   shared_with=instance.full_name if shared else None,
                   repeat=getattr(layer, "repeat_info", None))
    return result


def _apply_block(lowerer, config: LayerConfig, instance, inputs, span, record_name, shared):
    """Lower a block's body for one application, in the instance's scope."""
    from .lower import Scope
    from .statements import lower_body
    block = config.layer
    active = [b for b, _ in lowerer.block_stack]
    if any(b.node is block.node for b in active):
        first = next(i for i, b in enumerate(active) if b.node is block.node)
        chain = " -> ".join([b.name for b in active[first:]] + [block.name])
        raise Error(Diagnostic(
            f"block {block.name} applies itself ({chain})", span,
            notes=[(block.node.name_span or block.node.span, f"{block.name} is defined here")],
            hint="blocks are expanded when the model is compiled, so a block cannot apply "
                 "itself, directly or through other blocks; use repeat(n, Block(...)) for a "
                 "stack of copies"))
    declared = [s for s in block.node.body if isinstance(s, ast.Input)]
    if len(inputs) != len(declared):
        raise Error(Diagnostic(
            f"block {block.name} takes {len(declared)} input{'s' if len(declared) != 1 else ''}"
            f" ({', '.join(s.name for s in declared)}), got {len(inputs)}", span,
            notes=[(block.node.name_span or block.node.span, f"{block.name} is defined here")]))
    record = lowerer.record(record_name, block.name, "block", [a.value for a in inputs], [],
                            span, args=config.describe(),
                            shared_with=instance.full_name if shared else None,
                            repeat=getattr(config, "repeat_info", None))
    scope = Scope(compile_time=dict(config.block_args), path=instance.scope, owner=instance)
    scope.dims.free = False
    saved_parent, lowerer._record_parent = lowerer._record_parent, record_name
    # A block's body is lowered inside the expression that applies it: its evaluations count
    # as deeper levels (BLOCK_DEPTH for the frames of the application itself).
    lowerer.block_stack.append((block, span))
    lowerer.depth += BLOCK_DEPTH
    try:
        lower_body(lowerer, block.node.body, scope, is_model=False,
                   block_inputs=[a.value for a in inputs], input_spans=[a.span for a in inputs])
    except Error as error:
        for diagnostic in error.diagnostics:      # the body's own mistake, not the caller's
            lowerer.add_use_sites(diagnostic)
        raise
    finally:
        lowerer._record_parent = saved_parent
        lowerer.block_stack.pop()
        lowerer.depth -= BLOCK_DEPTH
    outputs = [value for _, value, _ in scope.outputs]
    if not outputs:
        from .lower import use_note
        raise Error(Diagnostic(f"block {block.name} has no `out`",
                               block.node.name_span or block.node.span,
                               hint="add `out expression` to say what the block returns",
                               notes=[(span, use_note(block.name))]))
    if any(isinstance(v, Invalid) for v in outputs):
        return INVALID
    tensors = [v for v in outputs if isinstance(v, Value)]
    record.output_types = [v.type for v in tensors]
    for value in tensors:
        lowerer.record_of[value.id] = record_name
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _static_choice(lowerer, scope, expr: ast.Call, target, piped) -> Any:
    """`where(flag, a, b)` with a compile-time bool: the chosen branch's value, the other never
    evaluated (so a block configured one way applies none of the other way's layers).
    Returns (True, that value), else (False, the condition evaluated once as an Argument, or
    None for any other call)."""
    if not (isinstance(target, FunctionRef) and target.name == "where" and not piped
            and len(expr.args) == 3 and not expr.kwargs):
        return False, None
    condition = evaluate(lowerer, scope, expr.args[0])
    if isinstance(condition, bool):
        return True, evaluate(lowerer, scope, expr.args[1 if condition else 2])
    return False, Argument(condition, expr.args[0].span)


def _repeat(lowerer: "Lowerer", scope: "Scope", expr: ast.Call) -> Repeat:
    if len(expr.args) != 2 or expr.kwargs:
        raise Error("repeat takes two arguments: repeat(n, Layer(...))", expr.span)
    count = evaluate(lowerer, scope, expr.args[0])
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise Error(f"repeat: the count must be a positive int, got {count!r}",
                    expr.args[0].span)
    if count > MAX_REPEAT:
        raise Error(f"repeat: {count:,} copies is more than the limit of {MAX_REPEAT:,}",
                    expr.args[0].span)
    template = evaluate(lowerer, scope, expr.args[1])
    if isinstance(template, LayerRef):
        template = configure(lowerer, template, [], [], expr.args[1].span)
    if not isinstance(template, LayerConfig):
        raise Error("repeat: the second argument must be a layer such as Dense(64)",
                    expr.args[1].span)
    return Repeat(count, expr.args[1], template.kind, expr.span)
