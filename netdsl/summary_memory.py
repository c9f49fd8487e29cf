"""What one step of a model costs at a batch size: FLOPs and memory, for `netdsl check`.

The numbers come from the compiler itself, not from an estimate beside it: each step (the
inference forward, and the training step of every objective the train section describes) is
compiled through `compiler.compile_step` up to the cpu target's `plan_memory` stage, so

* FLOPs are counted (frontend/cost.py) over the graph after the pass pipeline, the graph the
  kernels are generated from: the training step's forward, backward and optimiser update;
* memory is what the step holds: its parameters and optimiser state (persistent arrays), one
  batch of inputs, the constants, and the arena the memory planner (passes/memory.py) lays out
  for every intermediate value (activations kept for the backward pass, gradients, temporaries),
  buffers reused once their values are dead, plus the arena the largest loop body (a `scan`,
  or the row blocks the cpu target runs an inference forward in) lays out for itself.

Every number is a dimension polynomial (ir/types.py) in the dims left free; with every dim
bound the arena is exact (the planner's own layout, padding included), else it is the sum of
each slot's largest value, taken as the planner takes it (free dims assumed large), without
the padding of each slot to 64 bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .ir.graph import Graph
from .ir.types import DimLike, dim_add, dim_mul, evaluate_dim, substitute_dim

PLANNER_TARGET = "cpu"            # the target whose memory planner lays the arena out
PLAN_LIMIT = 5000                 # nodes of a step's graph the summary plans by default


@dataclass
class StepCost:
    """FLOPs and bytes of one kind of step (`inference` or `training`), dims bound as given."""

    kind: str
    flops: DimLike = 0
    graph_flops: DimLike = 0         # the same with no dim bound
    parameters: DimLike = 0          # weights and running statistics the step reads
    optimizer: DimLike = 0           # optimiser slots (training)
    gradients: DimLike = 0           # one per trained parameter: inside the arena (training)
    inputs: DimLike = 0              # one batch of every input
    constants: DimLike = 0
    arena: DimLike = 0               # every intermediate value, buffers reused
    without_reuse: DimLike = 0       # the same values, one buffer each
    buffers: int = 0
    slots: int = 0
    exact: bool = True               # False: free dims left, the arena without padding
    optimizers: list[str] = field(default_factory=list)
    steps: int = 1                   # training: one step per objective
    too_large: int = 0               # not planned: its graph has this many nodes

    @property
    def total(self) -> DimLike:
        """Everything the step holds at once (gradients are inside the arena)."""
        total: DimLike = 0
        for part in (self.parameters, self.optimizer, self.inputs, self.constants, self.arena):
            total = dim_add(total, part)
        return total


def batch_symbol(graph: Graph) -> str | None:
    """The batch dimension: the symbol that leads the model's inputs (`B` of f32[B, 784])."""
    for value in graph.inputs:
        if value.name.startswith("__") or not value.type.rank:
            continue
        leading = value.type.shape[0]
        if not isinstance(leading, int) and leading.is_single_symbol:
            return leading.name
    return None


def tensor_bytes(type_, bindings: Mapping[str, int]) -> DimLike:
    return dim_mul(substitute_dim(type_.size, bindings), type_.dtype.numpy.itemsize)


def _sum(types, bindings) -> DimLike:
    total: DimLike = 0
    for type_ in types:
        total = dim_add(total, tensor_bytes(type_, bindings))
    return total


class TooLarge(Exception):
    """A step's graph has more nodes than the summary plans (fusion and the planner take time
    that grows faster than the graph: 7,000 nodes take the cpu target ten seconds here)."""

    def __init__(self, nodes: int):
        super().__init__(nodes)
        self.nodes = nodes


def plan_step(graph: Graph, training=None, limit: int | None = PLAN_LIMIT):
    """(graph after the passes, fused graph, memory plan) of one step, as the cpu target
    compiles it; stops before code generation, so nothing is compiled or imported.  Raises
    TooLarge for a step of more than `limit` nodes (None or 0: no limit)."""
    from .compiler import TRAINING_STAGE, StageRecorder, compile_step
    if limit and len(graph.nodes) > limit:         # a training graph is larger still
        raise TooLarge(len(graph.nodes))
    if training is not None:           # the training graph first, to see its size
        graph = compile_step(graph, target=PLANNER_TARGET, training=training,
                             stop_after=TRAINING_STAGE)
    if limit and len(graph.nodes) > limit:
        raise TooLarge(len(graph.nodes))
    recorder = StageRecorder("cleanup", "fuse")
    plan = compile_step(graph, target=PLANNER_TARGET, trace=recorder, stop_after="plan_memory")
    return recorder["cleanup"], recorder["fuse"], plan


def _arena(plan, bindings: Mapping[str, int]) -> tuple[DimLike, DimLike, bool]:
    """(arena bytes, bytes with one buffer per value, exact) of a plan at `bindings`."""
    from .passes.memory import SIZE_HINT
    free = {name for slot in plan.slots for value in slot.values
            for name in _symbols(substitute_dim(value.type.size, bindings))}
    if not free:
        _, totals = plan.layout(bindings)
        used = sum(n * dtype.numpy.itemsize for dtype, n in totals.items())
        naive = sum(evaluate_dim(v.type.size, bindings) * v.dtype.numpy.itemsize
                    for slot in plan.slots for v in slot.values)
        return used, naive, True
    hint = {**{name: SIZE_HINT for name in free}, **bindings}
    used: DimLike = 0
    naive: DimLike = 0
    for slot in plan.slots:
        largest = max(slot.values, key=lambda v: evaluate_dim(v.type.size, hint))
        used = dim_add(used, tensor_bytes(largest.type, bindings))
        naive = dim_add(naive, _sum((v.type for v in slot.values), bindings))
    return used, naive, False


def _symbols(d: DimLike) -> set[str]:
    return set() if isinstance(d, int) else d.symbols


def _planned(cost: StepCost, graph: Graph, fused, plan, bindings) -> None:
    """Add one planned step's FLOPs, constants and arena to `cost`."""
    from .frontend.cost import nodes_cost
    flops = nodes_cost(graph.nodes)
    cost.graph_flops = dim_add(cost.graph_flops, flops)
    cost.flops = dim_add(cost.flops, substitute_dim(flops, bindings))
    cost.constants = dim_add(cost.constants, sum(
        node.attrs["value"].nbytes for node in fused.constants))
    arena = _plan_arena(plan, bindings)
    body = _largest_body(fused.graph, bindings)
    if body is not None:              # the largest loop body's arena, on top while it runs
        arena = arena.plus(body)
    cost.arena = dim_add(cost.arena, arena.used)
    cost.without_reuse = dim_add(cost.without_reuse, arena.naive)
    cost.exact = cost.exact and arena.exact
    cost.buffers += arena.values
    cost.slots += arena.slots


@dataclass
class _Arena:
    """A planned arena: bytes used, bytes with one buffer per value, exact, values, slots."""
    used: DimLike
    naive: DimLike
    exact: bool
    values: int
    slots: int

    def plus(self, other: _Arena) -> _Arena:
        """Both arenas held at once."""
        return _Arena(dim_add(self.used, other.used), dim_add(self.naive, other.naive),
                      self.exact and other.exact, self.values + other.values,
                      self.slots + other.slots)


def _plan_arena(plan, bindings: Mapping[str, int]) -> _Arena:
    used, naive, exact = _arena(plan, bindings)
    return _Arena(used, naive, exact, sum(len(slot.values) for slot in plan.slots),
                  len(plan.slots))


def _largest_body(graph: Graph, bindings: Mapping[str, int]) -> _Arena | None:
    """The largest arena a loop body lays out for itself, nested bodies included, or None.

    A `row_blocks` or `scan` node's body is compiled as a function of its own with its own
    arenas (backends/numba_cpu/codegen.py `body_function`: fused and planned alone), which it
    allocates for the rows it runs while the node runs, beside the step's arena: a row-blocked
    inference forward keeps its activations there (a ResNet's [B, 16, 28, 28] maps), not in
    the step's arena.  One node runs at a time, so the largest body counts.  Planned here as
    the codegen plans it, except that a scan body the codegen cuts into row blocks is planned
    whole (the same values)."""
    from .passes.fusion import fuse
    from .passes.memory import plan_memory
    arenas = []
    for node in graph.nodes:
        body = node.attrs.get("body")
        if isinstance(body, Graph):
            fused = fuse(body, windows=True)
            arena = _plan_arena(plan_memory(fused), bindings)
            inner = _largest_body(fused.graph, bindings)
            arenas.append(arena if inner is None else arena.plus(inner))
    return max(arenas, key=lambda arena: _estimate(arena.used, bindings), default=None)


def _estimate(d: DimLike, bindings: Mapping[str, int]) -> int:
    """`d` with the free dims at the planner's size hint (to compare arenas by size)."""
    from .passes.memory import SIZE_HINT
    return evaluate_dim(d, {**{name: SIZE_HINT for name in _symbols(d)}, **bindings})


def inference_cost(model, bindings: Mapping[str, int],
                   limit: int | None = PLAN_LIMIT) -> StepCost:
    """The inference forward (`Model.forward`'s graph) at `bindings`."""
    graph = model.inference_graph
    cost = StepCost("inference")
    cost.parameters = _sum((p.value.type for p in graph.params), bindings)
    cost.inputs = _sum((v.type for v in graph.inputs), bindings)
    try:
        _planned(cost, *plan_step(graph, limit=limit), bindings)
    except TooLarge as large:
        cost.too_large = large.nodes
    return cost


def training_cost(model, bindings: Mapping[str, int],
                  limit: int | None = PLAN_LIMIT) -> StepCost | None:
    """One training step of every objective at `bindings` (None for a model with no loss).

    Each objective is its own compiled step with its own arena (runtime/steps.py), so their
    arenas add up; the parameters are the model's, stored once."""
    from .compiler import Training
    from .passes.training import trained_params
    from .runtime.steps import objectives
    forward = model.training_forward
    if not forward.losses:
        return None
    config = model.train_config
    names = objectives(forward)
    cost = StepCost("training", steps=len(names))
    model_params = {p.name for p in forward.params}
    cost.parameters = _sum((p.value.type for p in forward.params), bindings)
    inputs: dict[str, object] = {}
    for objective in names:
        own = config.for_objective(objective)
        spec = own.optimizer_spec()
        try:
            graph, fused, plan = plan_step(forward, Training.from_config(own, objective), limit)
        except TooLarge as large:
            cost.too_large = max(cost.too_large, large.nodes)
            continue
        if spec.name not in cost.optimizers:
            cost.optimizers.append(spec.name)
        cost.optimizer = dim_add(cost.optimizer, _sum(
            (p.value.type for p in graph.params if p.name not in model_params), bindings))
        wrt = next((loss.wrt for loss in forward.losses if loss.name == objective), None)
        cost.gradients = dim_add(cost.gradients, _sum(
            (p.value.type for p in trained_params(forward, wrt)), bindings))
        inputs.update({v.name: v.type for v in graph.inputs})
        _planned(cost, graph, fused, plan, bindings)
    cost.inputs = _sum(inputs.values(), bindings)
    return cost


__all__ = ["PLAN_LIMIT", "StepCost", "TooLarge", "batch_symbol", "inference_cost", "plan_step", "tensor_bytes",
           "training_cost"]
