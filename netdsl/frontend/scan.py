"""Lowering `scan x over 1 with h = init { ...; yield h }` to the `scan` primitive.

The body is lowered into its own graph by a `BodyBuilder`.  Whenever the body uses a value of an
enclosing graph (a weight, a tensor of the model), the builder *captures* it: it becomes an
input of the body and a constant input of the scan node.  So the body is a closed graph, compiled
once as a loop, and the gradient of the scan (a reverse scan) sees every weight explicitly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..errors import Error
from ..ir.graph import Graph, GraphBuilder, Value
from ..ir.types import DType, normalize_axis, ShapeError
from . import ast
from .expressions import evaluate, expect_tensor
from .values import INVALID, Invalid

if TYPE_CHECKING:
    from .lower import Lowerer, Scope


class BodyBuilder(GraphBuilder):
    """A builder for a loop body that turns uses of outer values into body inputs."""

    def __init__(self, parent: GraphBuilder, name: str, length_of: Value | None = None,
                 axis: int = 0):
        super().__init__(Graph(name=name))
        self.parent = parent
        self.owned: set[int] = set()
        self.captured: dict[int, Value] = {}        # outer value id -> body input
        self.captured_outer: list[Value] = []       # in body-input order
        self.span, self.scope = parent.span, parent.scope
        self.length_of, self.axis = length_of, axis  # a scanned input and its time axis
        self.step_input: Value | None = None        # the step index's body input, if used
        self.step_sequence: Value | None = None     # the outer iota it is sliced from
        self._counter: Value | None = None

    def body_input(self, name: str, type_) -> Value:
        value = Value(type_, kind="input", name=name)
        self.graph.inputs.append(value)
        self.owned.add(value.id)
        return value

    def capture(self, value: Value) -> Value:
        if value.id in self.owned:
            return value
        if value.id in self.captured:
            return self.captured[value.id]
        outer = self.parent.capture(value) if isinstance(self.parent, BodyBuilder) else value
        inner = self.body_input(f"captured_{len(self.captured_outer)}", value.type)
        self.captured[value.id] = inner
        self.captured_outer.append(outer)
        return inner

    def rng_counter(self, root_counter: Callable[[], Value]) -> Value:
        """The random counter of this loop step: outer counter * T + step index.

        A body that read the outer counter directly would draw the same numbers at every step
        (a diffusion sampler would add the same noise T times).  The step index comes from an
        iota scanned along with the inputs, so it is an ordinary sequence to every target and
        to the gradient's reverse scan; counter * T + t never repeats across steps or across
        training steps, and a nested scan repeats the construction with its own T."""
        if self._counter is None:
            outer = self.parent.rng_counter(root_counter) \
                if isinstance(self.parent, BodyBuilder) else root_counter()
            dims = self.length_of.shape
            positions = self.parent.op("iota", shape=(1,) * self.axis + (dims[self.axis],),
                                       axis=self.axis)
            length = self.parent.op("numel", positions, dtype=DType.i64)
            self.step_sequence = positions
            self.step_input = self.body_input("__scan_step__", positions.type.with_shape(
                (1,) * self.axis))
            step = self.step_input if self.axis == 0 else \
                self.op("reshape", self.step_input, shape=())
            self._counter = self.op("add", self.op("mul", outer, length), step)
        return self._counter

    def op(self, op: Any, *inputs: Value, **attrs: Any) -> Any:
        result = super().op(op, *(self.capture(v) for v in inputs), **attrs)
        for value in (result if isinstance(result, tuple) else (result,)):
            self.owned.add(value.id)
        return result


def lower_scan(lowerer: "Lowerer", scope: "Scope", expr: ast.Scan) -> Any:
    """The value of a scan: (stacked yields..., final carries...)."""
    from .lower import Scope
    from .statements import lower_body
    sequences = [expect_tensor(evaluate(lowerer, scope, name), name.span, "a scanned input")
                 for name in expr.inputs]
    inits = [expect_tensor(evaluate(lowerer, scope, carry.init), carry.init.span,
                           "a carried state")
             for carry in expr.carries]
    axis = evaluate(lowerer, scope, expr.axis)
    if any(isinstance(v, Invalid) for v in sequences + inits):
        return INVALID
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise Error(f"scan: the axis must be an int, got {axis!r}", expr.axis.span)
    if not sequences:
        raise Error("scan needs at least one input to scan over", expr.span)
    try:
        axis = normalize_axis(axis, sequences[0].rank)
    except ShapeError as problem:
        raise Error(f"scan: {problem.message}", expr.axis.span) from None

    outer_builder = lowerer.builder
    body = BodyBuilder(outer_builder, name=f"scan@{expr.span}", length_of=sequences[0],
                       axis=axis)
    carry_scope = Scope(parent=scope, path=scope.path, compile_time={}, dims=scope.dims)
    body_scope = Scope(parent=carry_scope, path=scope.path, dims=scope.dims)
    body_scope.counters, body_scope.instances = scope.counters, scope.instances
    for carry, init in zip(expr.carries, inits):
        carry_scope.names[carry.name] = body.body_input(carry.name, init.type)
    for name, sequence in zip(expr.inputs, sequences):
        shape = sequence.shape[:axis] + sequence.shape[axis + 1:]
        body_scope.names[f"{name.id}_t"] = body.body_input(f"{name.id}_t",
                                                          sequence.type.with_shape(shape))
    statements = [s for s in expr.body if not isinstance(s, ast.Yield)]
    errors_before = len(lowerer.diagnostics.items)
    lowerer.builder = body
    try:
        lower_body(lowerer, statements, body_scope, is_model=False, block_inputs=[])
        yields = [expect_tensor(evaluate(lowerer, body_scope, v), v.span, "a yielded value")
                  for v in expr.yields]
        new_carries = [body_scope.lookup(carry.name) for carry in expr.carries]
    finally:
        lowerer.builder = outer_builder
    if len(lowerer.diagnostics.items) > errors_before or \
            any(isinstance(v, Invalid) for v in yields + new_carries):
        return INVALID
    for carry, init, new in zip(expr.carries, inits, new_carries):
        if not isinstance(new, Value) or new.type != init.type:
            got = new.type if isinstance(new, Value) else new
            raise Error(f"scan: carried state '{carry.name}' starts as {init.type} but the body "
                        f"sets it to {got}", carry.span,
                        hint="a carried state keeps its type from step to step")
    for index, value in enumerate(new_carries):
        body.graph.outputs[f"carry_{index}"] = body.capture(value)
    for index, value in enumerate(yields):
        body.graph.outputs[f"y_{index}"] = body.capture(value)
    if body.step_sequence is not None:
        # The step index (made when the body first drew random numbers) is one more sequence:
        # its body input moves from among the captures to after the other step slices.
        body.graph.inputs.remove(body.step_input)
        body.graph.inputs.insert(len(inits) + len(sequences), body.step_input)
    scanned = sequences + ([body.step_sequence] if body.step_sequence is not None else [])
    # Captures made while building outputs are already in captured_outer.
    first = len(outer_builder.graph.nodes)
    with outer_builder.at(expr.span):
        results = outer_builder.op("scan", *inits, *scanned, *body.captured_outer,
                                   body=body.graph, n_carry=len(inits), n_seq=len(scanned),
                                   axis=axis)
    results = results if isinstance(results, tuple) else (results,)
    finals, stacked = results[:len(inits)], results[len(inits):len(inits) + len(yields)]
    value = tuple(stacked) + tuple(finals)
    lowerer.record(lowerer.unique_record_name("scan"), "scan", "function", sequences + inits,
                   list(value), expr.span, first_node=first)
    return value[0] if len(value) == 1 else value
