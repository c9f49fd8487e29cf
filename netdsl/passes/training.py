"""The training graph: forward pass, loss, gradients, clipping and the optimiser update in ONE graph.

`build_training_graph(graph, optimizer)` returns a new graph that, run once, performs a whole
training step.  Conventions (the train loop and checkpoints rely on them):

* inputs: the forward graph's inputs, plus `__lr__` (f32 scalar, the learning rate of this step)
  and `__step__` (f32 scalar, the 1-based step count, for Adam's bias correction);
* params: the forward graph's params, plus the optimiser state as non-trainable params named
  `opt.<param name>.<slot>` with init zeros (slots: SGD `momentum`; RMSprop `square_avg`,
  `momentum`; Adam/AdamW `m`, `v`), made only for parameters that receive a gradient;
* outputs: `loss` (the objective), then the forward graph's outputs (logits, for metrics), then,
  when the objective sums several losses, each of them as `loss.<name>` (the epoch table shows
  every loss); they also stay in `graph.losses`; then `grad_norm`, the global L2 norm of the
  gradients before clipping (what `clip_norm` compares, as torch's clip_grad_norm_ returns it),
  and `grad_norm.<layer>`, each layer's (its parameters grouped by scope: `fc1.weight` and
  `fc1.bias` make `fc1`): scalars summed inside the step, so no gradient leaves it;
* state_updates: the forward graph's (BatchNorm running statistics), plus the new value of every
  updated parameter (by its name) and of every optimiser state buffer.

State.  Besides the parameters it trains, a step updates the model's *state*: the non-trainable
params (`kind == "state"`) it has a new value for -- optimiser slots and BatchNorm running
statistics.  `state_names(graph)` lists them; the train loop keeps parameters and state in one
storage dict bound by name into every step (runtime/steps.py), and returns the state with the
weights.  The step counter is the `__step__` input, counted by the loop.

Objectives.  With no `loss_name`, the objective is the sum of the graph's losses, and every
trainable parameter is trained.  A loss declared `wrt` some scopes (a GAN's `d_loss wrt
Discriminator`) is an objective of its own: `build_training_graph(graph, opt, loss_name="d_loss")`
trains only the parameters whose name (or scope) starts with one of its `wrt` names, and
`build_training_graphs` makes one such graph per objective; `fit` runs one step per objective,
in the order the losses are declared, on every batch (runtime/steps.py).

Gradient nodes carry the scope `("grad", ...)`, optimiser nodes `("optimizer", ...)` + the
parameter's scope, so diagrams can draw forward, backward and update apart.
"""
from __future__ import annotations

from typing import Mapping

from ..errors import Error
from ..ir.graph import Graph, GraphBuilder, LossInfo, ParamInfo, Value
from ..ir.types import DType, TensorType
from .optimizers import OptimizerSpec, apply_update, state_slots
from .autodiff import gradients, zeros_like

LR_INPUT = "__lr__"
STEP_INPUT = "__step__"
LOSS_OUTPUT = "loss"
LOSS_PART_PREFIX = "loss."         # `loss.<name>`: one loss of an objective that sums several
GRAD_PREFIX = "grad."
GRAD_NORM_OUTPUT = "grad_norm"     # the global L2 norm of the step's gradients
GRAD_NORM_PREFIX = "grad_norm."    # `grad_norm.<layer>`: one layer's
OPT_PREFIX = "opt."


def build_training_graph(graph: Graph, optimizer: OptimizerSpec, loss_name: str | None = None,
                         weight_decay: float = 0.0, clip_norm: float | None = None,
                         clip_value: float | None = None) -> Graph:
    """One training step as a graph (see the module docstring for its names).

    `weight_decay` (the train section's key) overrides the optimiser's own when non-zero.
    `clip_norm` rescales all gradients together when their global L2 norm exceeds it (as
    `torch.nn.utils.clip_grad_norm_`); `clip_value` clamps each element to [-v, v].  Clipping
    happens before weight decay is added, as in a PyTorch loop that clips and then steps.
    """
    b, objective, losses, trained = _start(graph, loss_name, f"{graph.name}.train")
    new = b.graph
    for name in (LR_INPUT, STEP_INPUT):
        if any(v.name == name for v in graph.inputs):
            raise Error(f"the input name '{name}' is reserved for the training step")
    lr = b.input(LR_INPUT, TensorType(DType.f32, ()))
    step = b.input(STEP_INPUT, TensorType(DType.f32, ()))

    grads = gradients(b, objective, [p.value for p in trained])
    pairs = [(p, g) for p, g in zip(trained, grads) if g is not None]
    norms: dict[str, Value] = {}
    with b.scoped("optimizer"):
        if pairs:
            total, layers = _squared_norms(b, pairs)
            norms[GRAD_NORM_OUTPUT] = b.op("sqrt", total)
            norms.update((GRAD_NORM_PREFIX + layer, b.op("sqrt", square))
                         for layer, square in layers.items())
        if clip_norm is not None and pairs:
            pairs = _clip_by_global_norm(b, pairs, total, clip_norm)
        if clip_value is not None:
            pairs = [(p, b.op("clip", g, lo=-float(clip_value), hi=float(clip_value)))
                     for p, g in pairs]

    decay = weight_decay or optimizer.weight_decay
    updates: dict[str, Value] = {}
    for info, grad in pairs:
        saved = b.scope
        b.scope = ("optimizer",) + tuple(info.scope)
        try:
            state = {slot: b.param(f"{OPT_PREFIX}{info.name}.{slot}", info.value.type,
                                   _zeros_init(), trainable=False, span=info.span)
                     for slot in state_slots(optimizer)}
            value, new_state = apply_update(b, optimizer, info.value, grad, state, lr, step,
                                            decay)
        finally:
            b.scope = saved
        updates[info.name] = value
        for slot, slot_value in new_state.items():
            updates[f"{OPT_PREFIX}{info.name}.{slot}"] = slot_value

    new.outputs = {LOSS_OUTPUT: objective}
    new.outputs.update((k, v) for k, v in graph.outputs.items() if k != LOSS_OUTPUT)
    if len(losses) > 1:            # each term of a summed objective (a VAE's nll and kl)
        new.outputs.update((LOSS_PART_PREFIX + loss.name, loss.value) for loss in losses)
    new.outputs.update(norms)
    new.losses = list(losses)
    new.state_updates = {**graph.state_updates, **updates}
    return new


def build_training_graphs(graph: Graph, optimizers: Mapping[str, OptimizerSpec],
                          **options) -> dict[str, Graph]:
    """One training graph per objective (loss name -> its optimiser), e.g. a GAN's two."""
    return {name: build_training_graph(graph, spec, loss_name=name, **options)
            for name, spec in optimizers.items()}


def loss_and_grad_graph(graph: Graph, loss_name: str | None = None) -> Graph:
    """A graph whose outputs are `loss` and `grad.<param>` for every trained parameter (zeros
    when the loss does not depend on it); it updates nothing (no state updates)."""
    b, objective, losses, trained = _start(graph, loss_name, f"{graph.name}.grad")
    grads = gradients(b, objective, [p.value for p in trained])
    outputs = {LOSS_OUTPUT: objective}
    with b.scoped("grad"):
        for info, grad in zip(trained, grads):
            outputs[GRAD_PREFIX + info.name] = grad if grad is not None else \
                zeros_like(b, info.value)
    b.graph.outputs = outputs
    b.graph.losses = list(losses)
    return b.graph


def state_names(graph: Graph) -> list[str]:
    """The state a training graph updates: non-trainable params with a new value each step."""
    return [info.name for info in graph.params
            if not info.trainable and info.name in graph.state_updates]


def trained_params(graph: Graph, wrt: tuple[str, ...] | None) -> list[ParamInfo]:
    """The trainable params an objective updates: all, or those under one of the `wrt` scopes."""
    if wrt is None:
        return graph.trainable
    return [p for p in graph.trainable
            if any(_under(p.name, w) or _under(".".join(p.scope), w) for w in wrt)]


def _under(name: str, scope: str) -> bool:
    return name == scope or name.startswith(scope + ".")


def _start(graph: Graph, loss_name: str | None, name: str):
    """A builder over a copy of the forward graph, the objective value, and what it trains."""
    new = Graph(name=name, inputs=list(graph.inputs), params=list(graph.params),
                nodes=list(graph.nodes), input_spans=dict(graph.input_spans))
    b = GraphBuilder(new)
    losses = _objective_losses(graph, loss_name)
    objective = losses[0].value
    with b.at(losses[0].span), b.scoped("loss"):
        for loss in losses[1:]:
            objective = b.op("add", objective, loss.value)
    wrt = losses[0].wrt if loss_name is not None else None
    trained = trained_params(graph, wrt)
    if wrt is not None and not trained:
        raise Error(f"loss '{loss_name}' trains no parameters: nothing is under "
                    f"{', '.join(wrt)}", losses[0].span)
    return b, objective, graph.losses, trained


def _objective_losses(graph: Graph, loss_name: str | None) -> list[LossInfo]:
    if not graph.losses:
        raise Error(f"model '{graph.name}' has no loss to train",
                    hint="declare one in the model: `loss name = mse(prediction, target)`")
    if loss_name is not None:
        for loss in graph.losses:
            if loss.name == loss_name:
                return [loss]
        from ..errors import did_you_mean
        raise Error(f"model '{graph.name}' has no loss '{loss_name}'",
                    hint=did_you_mean(loss_name, [l.name for l in graph.losses]))
    scoped = [l.name for l in graph.losses if l.wrt is not None]
    if scoped:
        raise Error(f"model '{graph.name}' has several objectives ({', '.join(scoped)}); "
                    f"name one",
                    hint="`netdsl train` and Model.fit run one step per objective; "
                         "Model.loss_and_grad(..., loss='name') and "
                         "compiler.Training(loss_name=...) pick one")
    return list(graph.losses)


def layer_of(info: ParamInfo) -> str:
    """The layer a parameter belongs to, for its gradient norm: its scope (`fc1` for
    `fc1.weight`, `encoder.norm1` for `encoder.norm1.bias`), else its name without the last part."""
    if info.scope:
        return ".".join(info.scope)
    return info.name.rsplit(".", 1)[0]


def _squared_norms(b: GraphBuilder, pairs) -> tuple[Value, dict[str, Value]]:
    """The sum of the squares of every gradient, and of each layer's (by `layer_of`), as
    scalars of the first gradient's dtype."""
    dtype = pairs[0][1].dtype
    layers: dict[str, Value] = {}
    for info, g in pairs:
        square = b.op("sum", b.op("mul", g, g), axes=tuple(range(g.rank)), keepdims=False)
        if square.dtype != dtype:
            square = b.op("cast", square, dtype=dtype)
        layer = layer_of(info)
        layers[layer] = b.op("add", layers[layer], square) if layer in layers else square
    total = None
    for square in layers.values():
        total = square if total is None else b.op("add", total, square)
    return total, layers


def _clip_by_global_norm(b: GraphBuilder, pairs, total: Value, max_norm: float):
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)), norm = sqrt(`total`), the sum
    of the squares of all of them."""
    dtype = total.dtype
    norm = b.op("sqrt", total)
    coefficient = b.op("div", b.constant(max_norm, dtype),
                       b.op("add", norm, b.constant(1e-6, dtype)))
    coefficient = b.op("minimum", coefficient, b.constant(1.0, dtype))
    return [(p, b.op("mul", g, coefficient if g.dtype == dtype else
                     b.op("cast", coefficient, dtype=g.dtype))) for p, g in pairs]


def _zeros_init():
    from ..layers.init import InitSpec
    return InitSpec("zeros")
