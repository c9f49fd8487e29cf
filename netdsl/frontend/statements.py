"""Lowering the statements of a model or block body: in, param, bindings, out and loss."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..errors import Diagnostic, Error
from ..ir.graph import LossInfo, Value
from ..layers.init import INITIALIZERS, InitSpec, make_init
from . import ast
from .values import INVALID, Invalid, LayerConfig, Repeat

if TYPE_CHECKING:
    from .lower import Lowerer, Scope

RESERVED = {"in", "out", "param", "loss", "model", "block", "train", "import", "const",
            "scan", "over", "with", "yield", "as", "true", "false", "none", "wrt"}


def lower_body(lowerer: "Lowerer", body: Sequence[ast.Node], scope: "Scope", *,
               is_model: bool, block_inputs: Sequence[Value] | None = None,
               input_spans: Sequence[Any] | None = None) -> None:
    """Lower each statement; an error in one is reported and the next is still lowered."""
    from .lower import type_of
    from .dims import bind_input
    position = 0
    for statement in body:
        try:
            if isinstance(statement, ast.Input):
                _declare(lowerer, scope, statement.name, statement.name_span or statement.span)
                if is_model:
                    type_ = type_of(lowerer, statement.type, scope)
                    _register_dims(statement.type, type_, scope)
                    value = lowerer.root.input(statement.name, type_, statement.span)
                    lowerer.record(statement.name, "input", "input", [], [value],
                                   statement.span)
                else:
                    if block_inputs is None or position >= len(block_inputs):
                        raise _InputCountError(statement)
                    value = block_inputs[position]
                    if not isinstance(value, Invalid):
                        bind_input(statement.type, value, scope.dims,
                                   lambda n: _compile_time(lowerer, scope, n), statement.name,
                                   statement.name_span or statement.span,
                                   input_spans[position] if input_spans else None)
                    position += 1
                scope.names[statement.name] = value
            elif isinstance(statement, ast.Param):
                _lower_param(lowerer, scope, statement)
            elif isinstance(statement, ast.Assign):
                _lower_assign(lowerer, scope, statement)
            elif isinstance(statement, ast.Output):
                _lower_output(lowerer, scope, statement, is_model)
            elif isinstance(statement, ast.Loss):
                _lower_loss(lowerer, scope, statement)
            elif isinstance(statement, ast.Yield):
                raise Error("`yield` is only allowed at the end of a scan body", statement.span)
        except _InputCountError as problem:
            raise problem.error() from None
        except Error as error:
            lowerer.report(error)
            for name in _bound_names(statement):
                scope.names[name] = INVALID
            if isinstance(statement, ast.Output) and not is_model:
                # The block still returns something (INVALID), so its caller does not add
                # "block has no `out`" to the error already reported.
                scope.outputs.append((statement.name, INVALID, statement.span))


def _register_dims(expr: ast.TensorTypeExpr, type_, scope: "Scope") -> None:
    """Model-level dimension names (B, T) become visible as values: `reshape(x, [B, -1])`."""
    for dim_expr, dim in zip(expr.dims, type_.shape):
        if isinstance(dim_expr, ast.DimName) and not isinstance(dim, int):
            scope.dims.values.setdefault(dim_expr.id, dim)
            scope.dims.spans.setdefault(dim_expr.id, dim_expr.span)


class _InputCountError(Exception):
    """A block declares more `in`s than it was given: the caller reports it at the call."""

    def __init__(self, statement: ast.Input):
        super().__init__(statement.name)
        self.statement = statement

    def error(self) -> Error:
        return Error(f"missing input '{self.statement.name}'", self.statement.span)


def _bound_names(statement: ast.Node) -> list[str]:
    if isinstance(statement, ast.Assign):
        return [t.id for t in statement.targets]
    if isinstance(statement, (ast.Input, ast.Param)):
        return [statement.name]
    if isinstance(statement, ast.Output) and statement.name:
        return [statement.name]
    return []


def _compile_time(lowerer: "Lowerer", scope: "Scope", name: str) -> Any:
    from .lower import compile_time_value
    return compile_time_value(lowerer, scope, name)


def _declare(lowerer: "Lowerer", scope: "Scope", name: str, span) -> None:
    """Single assignment: a name is bound once per body."""
    if name in RESERVED:
        raise Error(f"'{name}' is a keyword and cannot be used as a name", span)
    if name in scope.names:
        raise Error(Diagnostic(f"'{name}' is already defined", span,
                               notes=[(scope.spans.get(name), "first defined here")],
                               hint="names are bound once; choose a new name"))
    scope.spans[name] = span


def _lower_param(lowerer: "Lowerer", scope: "Scope", statement: ast.Param) -> None:
    from .lower import type_of
    _declare(lowerer, scope, statement.name, statement.name_span or statement.span)
    type_ = type_of(lowerer, statement.type, scope)
    for dim, node in zip(type_.shape, statement.type.dims):
        if not isinstance(dim, int):
            raise Error(f"parameter '{statement.name}' has the symbolic dimension {dim}",
                        node.span, "parameter shapes must be known when the model is compiled")
    init = eval_init(lowerer, scope, statement.init) if statement.init else InitSpec("zeros")
    name = ".".join(scope.path + (statement.name,))
    owner = scope.block_owner()
    shared = owner.params.get(statement.name) if owner is not None else None
    if shared is not None:
        # A bound block applied again shares its parameters (as a bound Dense does).
        if shared.type != type_:
            raise Error(f"the shared block '{owner.full_name}' was built with {statement.name} "
                        f"{shared.type} but this application needs {type_}", statement.span,
                        "a bound block shares its weights, so every input must have the same "
                        "feature size")
        scope.names[statement.name] = lowerer.capture(shared)
        return
    param = lowerer.new_param(name, type_, init, trainable=True, span=statement.span)
    if owner is not None:
        owner.params[statement.name] = param
    value = lowerer.capture(param)
    scope.names[statement.name] = value
    lowerer.record(name, "param", "param", [], [value], statement.span,
                   args={"init": str(init)}, params=int(type_.size),
                   trainable=int(type_.size))


def eval_init(lowerer: "Lowerer", scope: "Scope", expr: ast.Expr) -> InitSpec:
    """An initialiser expression: `he`, `zeros`, `normal(0.02)`, `uniform(-0.1, 0.1)`."""
    from .expressions import evaluate
    if isinstance(expr, ast.Name):
        return make_init(expr.id, (), (), expr.span)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        args = tuple(evaluate(lowerer, scope, a) for a in expr.args)
        kwargs = tuple((k.name, evaluate(lowerer, scope, k.value)) for k in expr.kwargs)
        return make_init(expr.func.id, args, kwargs, expr.span)
    raise Error("an initialiser must be a name such as `he` or a call such as `normal(0.02)`",
                expr.span, hint=f"initialisers: {', '.join(INITIALIZERS)}")


def _lower_assign(lowerer: "Lowerer", scope: "Scope", statement: ast.Assign) -> None:
    from .expressions import evaluate
    for target in statement.targets:
        _declare(lowerer, scope, target.id, target.span)
    value = evaluate(lowerer, scope, statement.value)
    targets = statement.targets
    if len(targets) == 1:
        if isinstance(value, (LayerConfig, Repeat)) and value.explicit_name is None \
                and value.binding_name is None:
            value.binding_name = targets[0].id       # `enc = Dense(64)` names the instance
        scope.names[targets[0].id] = value
        return
    if isinstance(value, Invalid):
        for target in targets:
            scope.names[target.id] = INVALID
        return
    if not isinstance(value, (tuple, list)):
        raise Error(f"cannot unpack a single value into {len(targets)} names",
                    statement.span, hint="the right-hand side must give a tuple, such as "
                                         "a block with several `out`s")
    if len(value) != len(targets):
        raise Error(f"cannot unpack {len(value)} values into {len(targets)} names",
                    statement.span)
    for target, item in zip(targets, value):
        scope.names[target.id] = item


def _lower_output(lowerer: "Lowerer", scope: "Scope", statement: ast.Output,
                  is_model: bool) -> None:
    from .expressions import evaluate, expect_tensor
    value = evaluate(lowerer, scope, statement.value)
    if statement.name is not None:
        _declare(lowerer, scope, statement.name, statement.name_span or statement.span)
        scope.names[statement.name] = value
    if is_model:
        tensor = expect_tensor(value, statement.value.span, "an `out`")
        if isinstance(tensor, Invalid):
            return
        name = statement.name or _expression_name(statement.value) or \
            f"out_{len(lowerer.root.graph.outputs) + 1}"
        if name in lowerer.root.graph.outputs:
            raise Error(f"output '{name}' is defined twice", statement.span)
        lowerer.root.graph.outputs[name] = tensor
        lowerer.record(name, "output", "output", [tensor], [], statement.span,
                       output_types=[tensor.type])
    else:
        scope.outputs.append((statement.name, value, statement.span))


def _expression_name(expr: ast.Expr) -> str | None:
    return expr.id if isinstance(expr, ast.Name) else None


def _lower_loss(lowerer: "Lowerer", scope: "Scope", statement: ast.Loss) -> None:
    from .expressions import evaluate, expect_tensor
    value = expect_tensor(evaluate(lowerer, scope, statement.value), statement.value.span,
                          "a loss")
    if isinstance(value, Invalid):
        return
    if value.rank != 0:
        raise Error(f"a loss must be a scalar f32[], got {value.type}", statement.value.span,
                    hint="reduce it, e.g. mean(x), or use a loss function such as mse(a, b)")
    if not value.dtype.is_float:
        raise Error(f"a loss must be floating point, got {value.type}", statement.value.span)
    graph = lowerer.root.graph
    name = statement.name or ("loss" if not graph.losses else f"loss_{len(graph.losses) + 1}")
    if any(loss.name == name for loss in graph.losses):
        raise Error(f"loss '{name}' is defined twice", statement.span)
    wrt = tuple(n.id for n in statement.wrt) if statement.wrt else None
    for target in statement.wrt or ():
        known = set(scope.names) | set(scope.instances) | set(lowerer.program.blocks)
        if target.id not in known:
            from ..errors import did_you_mean
            raise Error(f"`wrt {target.id}`: no layer, block or name '{target.id}' here",
                        target.span, did_you_mean(target.id, known))
    if statement.name:
        scope.names[statement.name] = value
    graph.losses.append(LossInfo(name, value, wrt, statement.span))
    lowerer.record(name, "loss", "loss", [value], [], statement.span, output_types=[value.type])

