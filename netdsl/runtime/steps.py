"""The training plan: the list of compiled steps `fit` runs per batch, over shared storage.

A model with one objective (its losses summed) has one step.  A model whose losses are declared
`wrt` some layers (a GAN's `loss d_loss = ... wrt Discriminator`) has one step per loss, each
training only the parameters under its `wrt` (passes/training.py `trained_params`), run in the
order the losses are declared; the train section's `objective(name, ...)` lines give each its
own optimiser, learning rate and schedule, and `every = k` runs it on every k-th batch only
(`due` says which steps run on a batch, with their hyper inputs).  Every step is compiled through `compiler.compile_step` and bound
by name to the same `storage` arrays, so a parameter updated by one step is what the next one
reads: there is one array per name, whatever the number of steps.

Storage holds the parameters and the model's *state*: every non-trainable array a step updates
besides the parameters (optimiser slots `opt.<param>.<slot>`, BatchNorm running statistics),
as `passes.training.state_names` lists them for each step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ..ir.graph import Graph

HYPER_INPUTS = ("__lr__", "__step__", "__rng__")


@dataclass
class TrainingStep:
    """One compiled step of the plan: one objective's forward, loss, gradients and update."""

    objective: str | None          # the loss it trains; None: the sum of the model's losses
    training_graph: Graph          # before the pass pipeline (the anomaly watch replays it)
    compiled: Any                  # what compile_step returned (run, bind, report)
    call: Any                      # the bound step: call(*batch inputs, *hyper) -> outputs
    batch_inputs: list[str]
    hyper: list[str]
    params: list[str]              # the trainable parameters it updates
    state: list[str]               # the other arrays it updates (optimiser slots, statistics)
    loss_index: int
    prediction_index: int | None = None
    # The losses its objective sums, when several (name -> output index): a column each.
    loss_parts: dict[str, int] = field(default_factory=dict)
    every: int = 1                 # it runs on every k-th batch
    schedule: Callable[[int], float] | None = None   # update number (from 0) -> learning rate
    # Its gradient-norm outputs (`grad_norm`, `grad_norm.<layer>`) -> output index.
    grad_norms: dict[str, int] = field(default_factory=dict)
    reused: bool = False           # compiled by an earlier fit of the model in this process

    def learning_rate(self, number: int) -> float:
        """The learning rate of this step's update on batch `number` (counted from 1), or of
        its last update before it when it does not run there."""
        update = max(number - 1, 0) // self.every          # its updates before, from 0
        return self.schedule(update) if self.schedule is not None else 0.0

    def __call__(self, chunk: dict[str, np.ndarray], extra: dict[str, Any]):
        return self.call(*(chunk[name] for name in self.batch_inputs),
                         *(extra[name] for name in self.hyper))


@dataclass
class TrainingPlan:
    """The steps of one training iteration, in order, and the storage they share by name."""

    steps: list[TrainingStep]
    storage: dict[str, np.ndarray] = field(default_factory=dict)
    _synchronizers: list | None = field(default=None, repr=False, compare=False)

    def due(self, number: int) -> Iterator[tuple[int, TrainingStep, dict[str, Any]]]:
        """(index, step, hyper inputs) of every step that runs on batch `number` (counted from 1
        over the whole run), in order.  A step's own update count sets its learning rate and
        Adam's bias correction, as each PyTorch optimiser counts its own steps; the random
        stream follows the batch."""
        for index, step in enumerate(self.steps):
            if (number - 1) % step.every:
                continue
            update = (number - 1) // step.every + 1
            yield index, step, {"__lr__": step.learning_rate(number), "__step__": float(update),
                                "__rng__": number}

    def to_host(self) -> None:
        """Bring the storage up to date where steps keep it elsewhere (the cuda target keeps
        parameters and optimiser state on the device): before anything reads `storage`."""
        if self._synchronizers is None:         # found once: fit calls this every epoch
            self._synchronizers = self._bound_methods("synchronize")
        for synchronize in self._synchronizers:
            synchronize()

    def release(self) -> None:
        """The run is over: each step's scratch memory goes to the next binding of its
        compiled graph (the next fit of the model) rather than to the allocator; the steps
        stay usable."""
        for release in self._bound_methods("release"):
            release()

    def to_device(self) -> None:
        """Send `storage` to where the steps keep it, after the caller changed it (a resumed
        run's restored state)."""
        for upload in self._bound_methods("upload"):
            upload()

    def _bound_methods(self, name: str) -> list:
        """Method `name` of each step's bound step, where its target's binding has one."""
        return [method for step in self.steps if (method := getattr(
            getattr(step.call, "bound", None), name, None)) is not None]

    @property
    def batch_inputs(self) -> list[str]:
        names: list[str] = []
        for step in self.steps:
            names += [name for name in step.batch_inputs if name not in names]
        return names


def objectives(graph: Graph) -> list[str | None]:
    """The objectives of a training-mode forward graph: one per loss when any loss is declared
    `wrt` (each its own step), else [None] (the sum of the losses, one step)."""
    if any(loss.wrt is not None for loss in graph.losses):
        return [loss.name for loss in graph.losses]
    return [None]


def build_plan(model, weights: dict[str, np.ndarray], config, target: str,
               prediction: str | None = None, steps_per_epoch: int = 1,
               trace: Callable[[str, Any], None] | None = None,
               on_step: Callable[[TrainingStep], None] | None = None) -> TrainingPlan:
    """Compile one step per objective of `model` and bind them all to one storage dict.

    Each step trains with `config.for_objective(its loss)`; its schedule counts its own updates
    (`steps_per_epoch` batches make ceil(steps_per_epoch / every) of them per epoch).
    `trace(stage, result)` sees every compiler stage of every step, in order, and
    `on_step(step)` each step once compiled (what fit says while compiling).

    Storage starts as a copy of `weights` (every parameter of the model), then the zeros of
    each state array (optimiser slots) a step adds; its arrays come from the model's memory
    pool, which hands the last fit's memory on once nothing refers to it."""
    from ..compiler import Training
    from ..passes.training import LOSS_PART_PREFIX, state_names
    from .schedules import make_schedule
    from .grad_norms import norm_outputs
    forward = model.training_forward
    pool = model.memory_pool
    pool.begin()
    storage: dict[str, np.ndarray] = {}
    _add_storage(storage, pool, [info for info in model.graph.params if info.name in weights],
                 weights)
    steps = []
    names = objectives(forward)
    _check_objective_lines(config, names, model.name)
    for objective in names:
        own = config.for_objective(objective)
        every = config.every(objective)
        schedule = make_schedule(own.schedule, own.schedule_args, own.optimizer_spec().lr,
                                 -(-steps_per_epoch // every), own.epochs,
                                 own.spans.get("schedule"), positional=own.schedule_positional)
        compiled, training_graph, reused = model.compiled_training_step(
            target, Training.from_config(own, objective), trace=trace)
        graph = compiled.graph
        _add_storage(storage, pool, [info for info in graph.params if info.name not in storage],
                     weights)
        fed = {v.name for v in graph.inputs}
        batch_inputs = [v.name for v in graph.inputs if v.name not in HYPER_INPUTS]
        hyper = [name for name in HYPER_INPUTS if name in fed]
        call = compiled.bind(storage, inputs=batch_inputs + hyper)
        updated = set(training_graph.state_updates)
        steps.append(TrainingStep(
            objective, training_graph, compiled, call, batch_inputs, hyper,
            params=[p.name for p in training_graph.trainable if p.name in updated],
            state=state_names(training_graph),
            loss_index=call.output_names.index("loss"),
            prediction_index=call.output_names.index(prediction)
            if prediction in call.output_names else None,
            loss_parts={name[len(LOSS_PART_PREFIX):]: index
                        for index, name in enumerate(call.output_names)
                        if name.startswith(LOSS_PART_PREFIX)},
            every=every, schedule=schedule, grad_norms=norm_outputs(call.output_names),
            reused=reused))
        if on_step is not None:
            on_step(steps[-1])
    return TrainingPlan(steps, storage)


def _add_storage(storage: dict[str, np.ndarray], pool, params: list, weights) -> None:
    """Storage for each of `params` (graph param infos) from the model's memory pool
    (runtime/memory_pool.py): a copy of its weight where `weights` has one, else zeros."""
    shapes = [np.shape(weights[info.name]) if info.name in weights else
              tuple(info.value.shape) for info in params]
    arrays = pool.arrays([(shape, info.value.dtype.numpy)
                          for shape, info in zip(shapes, params)])
    for info, array in zip(params, arrays):
        if info.name in weights:
            np.copyto(array, weights[info.name], casting="unsafe")
        else:
            array.fill(0)
        storage[info.name] = array


def _check_objective_lines(config, names: list[str | None], model: str) -> None:
    """Every `objective(name, ...)` line names one of the model's objectives."""
    from ..errors import Error, did_you_mean
    known = [name for name in names if name is not None]
    for name in config.objectives:
        if name in known:
            continue
        span = config.spans.get(f"objective {name}")
        if not known:
            raise Error(f"objective({name}): model {model} has one objective (the sum of its "
                        f"losses), so objective lines have nothing to set", span,
                        hint="declare losses `wrt` the layers each trains, e.g. "
                             "`loss d_loss = ... wrt discriminator`; or set the keys directly")
        raise Error(f"objective({name}): model {model} has no objective '{name}'", span,
                    hint=did_you_mean(name, known) or f"its objectives: {', '.join(known)}")


__all__ = ["HYPER_INPUTS", "TrainingPlan", "TrainingStep", "build_plan", "objectives"]
