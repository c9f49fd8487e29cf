"""Lowering: a model's AST becomes a typed graph of primitive ops and its layer-level view.

The `Lowerer` walks a model's statements once, evaluating expressions (expressions.py) into
graph values through a `GraphBuilder`, which type-checks every op as it is made.  Layers and
blocks are expanded into primitives under their instance scope (`block_1.dense_2`), so every
node knows which layer made it and where in the source.  Errors in independent statements are
all collected: a statement that fails binds its names to `INVALID`, which silences the errors
that would only repeat it.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import Diagnostic, Diagnostics, Error
from ..ir.architecture import Architecture, LayerRecord
from ..ir.graph import Graph, GraphBuilder, Value
from ..ir.types import DType, TensorType
from ..layers.init import InitSpec
from ..source import Span
from . import ast
from .dims import DimBindings, eval_type
from .limits import MAX_OPERATIONS, MAX_PARAMETERS, count
from .loader import Program
from .values import Instance


def use_note(block: str) -> str:
    """The note under an error inside block `block`, at the place it was used."""
    return f"block {block} is used here"


@dataclass
class Scope:
    """The names visible in one model or block body, and its symbolic-dimension bindings."""

    names: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span | None] = field(default_factory=dict)
    compile_time: dict[str, Any] = field(default_factory=dict)    # block arguments
    dims: DimBindings = field(default_factory=DimBindings)
    path: tuple[str, ...] = ()              # the instance path of this body
    counters: dict[str, int] = field(default_factory=dict)      # auto names per kind
    instances: dict[str, Span | None] = field(default_factory=dict)
    outputs: list[tuple[str | None, Any, Span | None]] = field(default_factory=list)
    inputs: list[ast.Input] = field(default_factory=list)
    parent: "Scope | None" = None           # for scan bodies: the enclosing scope
    owner: Instance | None = None           # the block instance whose body this is

    def block_owner(self) -> Instance | None:
        """The block instance this body (or the scan inside it) belongs to, if any."""
        scope: Scope | None = self
        while scope is not None and scope.owner is None:
            scope = scope.parent
        return scope.owner if scope is not None else None

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def visible(self) -> set[str]:
        names: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            names |= set(scope.names) | set(scope.compile_time)
            scope = scope.parent
        return names


class Lowerer:
    """Lowers one model of a program into a Graph and an Architecture."""

    def __init__(self, program: Program, model: ast.Model, training: bool = False):
        self.program = program
        self.model = model
        self.training = training
        self.root = GraphBuilder(Graph(name=model.name))
        self.builder = self.root
        self.architecture = Architecture(model.name)
        self.diagnostics = Diagnostics()
        self.record_of: dict[int, str] = {}     # value id -> the record that produced it
        self._seed_counter = 0
        self._rng: Value | None = None
        self._record_parent: str | None = None
        # Kept alongside the graph and the architecture so that each lookup is O(1): a model
        # of n layers lowers in O(n), not O(n^2).
        self._param_spans: dict[str, Span | None] = {}
        self._reported: set[tuple[Span | None, str]] = set()
        self._located: dict[int, Diagnostic] = {}      # diagnostics given their use sites
        self._record_names: set[str] = set()
        self._next_record_index: dict[str, int] = {}
        # Resource accounting (limits.py): nesting of evaluation, blocks being applied,
        # primitive operations and parameter elements made so far.
        self.depth = 0
        self.block_stack: list[tuple[Any, Span | None]] = []
        self.operations = 0
        self.parameter_elements = 0

    # -- driver ---------------------------------------------------------------------------
    def lower(self) -> tuple[Graph, Architecture]:
        """Lower the model; raises Error with every independent problem found."""
        from .statements import lower_body
        scope = Scope()
        lower_body(self, self.model.body, scope, is_model=True)
        graph = self.root.graph
        if not graph.outputs and not graph.losses and not self.diagnostics:
            self.diagnostics.add(f"model {self.model.name} has no `out` and no `loss`",
                                 self.model.name_span or self.model.span,
                                 "add `out name = expression` or `loss expression`")
        self.diagnostics.raise_if_any()
        return graph, self.architecture

    def report(self, error: Error) -> None:
        """Record an error once (a block applied three times reports its mistake once), with
        where the blocks it is inside were applied."""
        for diagnostic in error.diagnostics:
            self.add_use_sites(diagnostic)
            key = (diagnostic.span, diagnostic.message)
            if key not in self._reported:
                self._reported.add(key)
                self.diagnostics.add(diagnostic)

    def add_use_sites(self, diagnostic: Diagnostic) -> None:
        """Notes saying where each block being applied was used, innermost first (a mistake in
        a block's body is one of every model that uses it: the note says which use).  Added
        once, by the innermost block, whose stack is the longest."""
        if not self.block_stack or id(diagnostic) in self._located:
            return
        self._located[id(diagnostic)] = diagnostic     # held, so its id is not reused
        for block, span in reversed(self.block_stack):
            diagnostic.notes.append((span, use_note(block.name)))

    # -- parameters, state and randomness -------------------------------------------------
    def new_param(self, name: str, type_: TensorType, init: InitSpec, *, trainable: bool,
                  span: Span | None, fan: tuple[int, int] | None = None) -> Value:
        if name in self._param_spans:
            raise Error(Diagnostic(f"parameter name '{name}' is used twice", span,
                                   notes=[(self._param_spans[name], "first used here")],
                                   hint="name the layers apart with `as name`"))
        size = 1
        for dim in type_.shape:
            size *= dim if isinstance(dim, int) else 1
        if size > MAX_PARAMETERS or self.parameter_elements + size > MAX_PARAMETERS:
            raise Error(f"parameter '{name}' {type_} has {count(size)} elements, and a model "
                        f"may have at most {count(MAX_PARAMETERS)} (2**31 - 1) in all", span)
        if init.kind == "orthogonal" and len(type_.shape) < 2:
            raise Error(f"the orthogonal initialiser needs a parameter of rank 2 or more, but "
                        f"'{name}' is {type_}", span,
                        "use normal(...) or another initialiser for vectors and scalars")
        self.parameter_elements += size
        self._param_spans[name] = span
        return self.root.param(name, type_, init, trainable=trainable, span=span, fan=fan)

    def count_operations(self, made: int, span: Span | None) -> None:
        """Account for `made` new primitive operations; an Error past MAX_OPERATIONS."""
        self.check_operations(made, span)
        self.operations += made

    def check_operations(self, more: int, span: Span | None) -> None:
        """An Error if `more` operations would take the model past MAX_OPERATIONS."""
        if self.operations + more > MAX_OPERATIONS:
            raise Error(f"this model needs more than {count(MAX_OPERATIONS)} primitive "
                        f"operations, the limit for one model", span,
                        "a repeat count or a chain of blocks applying blocks is larger than "
                        "intended?")

    def state_update(self, param: Value, new_value: Value, span: Span | None) -> None:
        if self.training:
            self.root.graph.state_updates[param.name] = new_value

    def rng_counter(self) -> Value:
        """The counter random ops draw with: the step's `__rng__` input, or inside a scan body
        a counter of its own per loop step (frontend/scan.py), so each step draws new numbers."""
        per_step = getattr(self.builder, "rng_counter", None)
        return per_step(self._root_rng) if per_step is not None else self._root_rng()

    def _root_rng(self) -> Value:
        if self._rng is None:
            self._rng = self.root.input("__rng__", TensorType(DType.i64, ()))
        return self._rng

    def fresh_seed(self) -> int:
        """Seeds for random ops: stable per model and per position in it."""
        self._seed_counter += 1
        return zlib.crc32(f"{self.model.name}:{self._seed_counter}".encode()) & 0x7FFFFFFF

    def capture(self, value: Value) -> Value:
        """A value from an enclosing graph, made available in the current (scan body) graph."""
        capture = getattr(self.builder, "capture", None)
        return capture(value) if capture is not None else value

    # -- names of layer instances ---------------------------------------------------------
    def instance_for(self, config, scope: Scope, span: Span | None) -> Instance:
        """The instance a layer configuration is applied as (made on its first application)."""
        from ..layers.base import snake_case
        if config.instance is not None:
            return config.instance
        name = config.explicit_name or config.binding_name
        if name is None:
            base = snake_case(config.kind)
            scope.counters[base] = scope.counters.get(base, 0) + 1
            name = f"{base}_{scope.counters[base]}"
            while name in scope.instances:      # an explicit name took it already
                scope.counters[base] += 1
                name = f"{base}_{scope.counters[base]}"
        elif name in scope.instances:
            raise Error(Diagnostic(f"a layer named '{name}' already exists here", span,
                                   notes=[(scope.instances[name], "first named here")]))
        scope.instances[name] = span
        owner = scope.block_owner()
        if owner is not None and name in owner.children:
            # A shared block applied again: its layers are the ones its first application made.
            config.instance = owner.children[name]
            return config.instance
        config.instance = Instance(name, scope.path + (name,))
        if owner is not None:
            owner.children[name] = config.instance
        return config.instance

    # -- the layer-level view -------------------------------------------------------------
    def record(self, name: str, kind: str, category: str, inputs: list[Any],
               outputs: list[Any], span: Span | None, args: dict[str, str] | None = None,
               first_node: int | None = None, params: int = 0, trainable: int = 0,
               **extra: Any) -> LayerRecord:
        """Add one architecture record, linked to the records that produced its inputs."""
        sources = []
        for value in inputs:
            source = self.record_of.get(value.id) if isinstance(value, Value) else None
            if source is not None and source not in sources:
                sources.append(source)
        tensors = [v for v in outputs if isinstance(v, Value)]
        output_types = extra.pop("output_types", [v.type for v in tensors])
        record = LayerRecord(
            name=name, kind=kind, category=category, args=args or {}, inputs=sources,
            output_types=output_types, params=params, trainable_params=trainable,
            span=span, parent=self._record_parent, **extra)
        from .scan import BodyBuilder
        # Inside a scan body the scan's own record counts the body, once per step.
        if first_node is not None and not isinstance(self.builder, BodyBuilder):
            from .cost import nodes_cost
            record.flops = nodes_cost(self.builder.graph.nodes[first_node:])
        record.activation_bytes = sum(_bytes_per_example(v.type) for v in tensors)
        self.architecture.add(record)
        self._record_names.add(name)
        for value in tensors:
            self.record_of[value.id] = name
        return record

    def unique_record_name(self, base: str) -> str:
        prefix = f"{self._record_parent}." if self._record_parent else ""
        index = self._next_record_index.get(prefix + base, 1)
        while f"{prefix}{base}_{index}" in self._record_names:
            index += 1
        self._next_record_index[prefix + base] = index + 1
        return f"{prefix}{base}_{index}"


def _bytes_per_example(type_: TensorType) -> int:
    """Bytes of a tensor per example: its leading (batch) dimension and other symbols set to 1."""
    from .cost import per_example
    dims = type_.shape[1:] if type_.rank and not isinstance(type_.shape[0], int) else type_.shape
    size = 1
    for dim in dims:
        size *= dim if isinstance(dim, int) else per_example(dim)
    return size * type_.dtype.numpy.itemsize


def select_model(program: Program, name: str | None = None) -> ast.Model:
    from ..errors import did_you_mean
    if not program.models:
        raise Error(f"{program.main} defines no model",
                    hint="add `model Name { in x: f32[B, 4] ... }`")
    if name is None:
        # The last model with a train section: a file's trained model, not the decoder or
        # sampler written after it to share its weights; else the last model.
        trained = [model for key, model in program.models.items() if key in program.trains]
        return (trained or list(program.models.values()))[-1]
    if name not in program.models:
        raise Error(f"no model named '{name}' in {program.main}",
                    hint=did_you_mean(name, program.models) or
                    f"models: {', '.join(program.models)}")
    return program.models[name]


def type_of(lowerer: Lowerer, expr: ast.TensorTypeExpr, scope: Scope) -> TensorType:
    """Evaluate a type expression in a scope (block arguments and consts are compile-time)."""
    return eval_type(expr, scope.dims, lambda n: compile_time_value(lowerer, scope, n))


def compile_time_value(lowerer: Lowerer, scope: Scope, name: str) -> Any:
    """The value of a block argument or const `name`, or None if it is neither."""
    walk: Scope | None = scope
    while walk is not None:
        if name in walk.compile_time:
            return walk.compile_time[name]
        walk = walk.parent
    return lowerer.program.consts.get(name)
