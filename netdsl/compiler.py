"""The one compiler entry point: `compile_step(graph, target, training)` runs the stage list.

    lower (frontend) -> training -> PIPELINE (passes/pipeline.py) -> the target's stages

    training     when `training` is given: the forward graph becomes a training step
                 (passes/training.py: loss, gradients, clipping, the optimiser's update) or,
                 with `GRADIENTS`, a graph of the loss and its gradients only
    verify ... cleanup
                 the graph passes every target runs (passes/pipeline.py PIPELINE)
    fuse, plan_memory, codegen, cache, load
                 the "cpu" target's own stages (backends/numba_cpu/target.py); the
                 "reference" target has none

Every caller (Model.forward, fit, the validation evaluator, `netdsl compile`, the kernel view,
the differential tester, the benchmarks) compiles through here, so they all run the same stages.
`trace(stage, result)` sees the result of every stage (a Graph up to cleanup, then what the
target's stage made) and `stop_after=stage` returns that result instead of a compiled step.
"""
from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass
from typing import Any, Callable

from .errors import Error, did_you_mean
from .ir.graph import Graph

TRAINING_STAGE = "training"


@dataclass(frozen=True)
class Training:
    """What the training stage builds: one objective's step, or its loss and gradients.

    `optimizer` None means `loss_and_grad_graph` (outputs `loss` and `grad.<param>`, updates
    nothing); else `build_training_graph` with the clipping and weight decay given.
    `loss_name` picks one objective of a model with several (`loss d_loss = ... wrt D`)."""

    optimizer: Any = None                  # passes.optimizers OptimizerSpec
    loss_name: str | None = None
    weight_decay: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None

    @staticmethod
    def from_config(config, loss_name: str | None = None) -> "Training":
        """The training step a train section describes (optimiser, decay, clipping)."""
        spec = config.optimizer_spec()
        return Training(spec, loss_name, spec.weight_decay, config.clip_norm, config.clip_value)

    def build(self, graph: Graph) -> Graph:
        from .passes.training import build_training_graph, loss_and_grad_graph
        if self.optimizer is None:
            return loss_and_grad_graph(graph, self.loss_name)
        return build_training_graph(graph, self.optimizer, loss_name=self.loss_name,
                                    weight_decay=self.weight_decay, clip_norm=self.clip_norm,
                                    clip_value=self.clip_value)


# The loss and the gradient of every trained parameter, no optimiser (Model.loss_and_grad).
GRADIENTS = Training()


def stage_names(target: str = "cpu") -> list[str]:
    """Every stage of the list, in order, for `target`."""
    from .backends.target import get_target
    from .passes.pipeline import stage_names as pass_names
    return [TRAINING_STAGE] + pass_names() + list(get_target(target).stages)


def compile_step(graph: Graph, target: str = "cpu", training: Training | None = None, *,
                 trace: Callable[[str, Any], None] | None = None, stop_after: str | None = None,
                 cache_dir=None, options=None):
    """Run the stage list on `graph` and return the compiled step (run, bind, report).

    `training` turns a forward graph into a training step first (see `Training`); without it
    the graph is compiled as it is (an inference or evaluation graph).  cache_dir and options
    go to the target (the cpu target: $NETDSL_CACHE_DIR override, CodegenOptions)."""
    with collector_paused():
        compiled = _compile_step(graph, target, training, trace=trace, stop_after=stop_after,
                                 cache_dir=cache_dir, options=options)
        if _freeze_after_cache_hits and getattr(getattr(compiled, "report", None),
                                                "cache_hit", False):
            gc.freeze()
        return compiled


# Set by the command line in its own process (`freeze_after_cache_hits`).
_freeze_after_cache_hits = False


def freeze_after_cache_hits() -> None:
    """From now on, a compile that loaded everything from the caches ends by moving every
    object then alive out of the garbage collector's sight (gc.freeze).

    For the command line's own process, which runs one command and exits (cli.main).  While
    a compile runs the collector is paused (`collector_paused`), so the first collection after
    it walks every object the compile made, mostly the modules it imported (Numba's, the
    kernels'): 21-30 ms of `netdsl train`'s warm start, which collected nothing.  Frozen,
    they are never walked; the price is that any of them that becomes garbage later is never
    freed.  A compile that ran Numba leaves megabytes of garbage (its IR), so it does not
    freeze; nor does a compile called from Python, whose objects are the caller's."""
    global _freeze_after_cache_hits
    _freeze_after_cache_hits = True


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for the body (on again after, if it was).

    A compile allocates millions of objects that live until it ends (Numba's IR, types and
    LLVM IR builders).  Each full collection walks them all, and the collector's rule for a
    full one (a quarter more long-lived objects than at the last) trips again and again as
    they pile up: a cold LeNet-5 step compile ran 9 of them.  Paused, the compile's garbage
    is walked once, by the first collection after it (in this process; a compile helper
    exits without one).  LeNet-5's cold compile 8.8 -> 8.5 s on one process, 4.9 -> 4.6 s
    on two; peak memory 218 -> 290 MB (deep_residual's +56 MB)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compile_step(graph, target, training, *, trace, stop_after, cache_dir, options):
    """compile_step's stages (see there)."""
    from .backends.target import get_target
    from .passes.pipeline import run_pipeline, stage_names as pass_names
    chosen = get_target(target)
    if stop_after is not None:
        names = stage_names(chosen.name)
        if stop_after not in names:
            raise Error(f"unknown compiler stage '{stop_after}' (stages: {', '.join(names)})",
                        hint=did_you_mean(stop_after, names))
    if training is not None:
        graph = training.build(graph)
        if trace is not None:
            trace(TRAINING_STAGE, graph)
        if stop_after == TRAINING_STAGE:
            return graph
    passes_only = stop_after in pass_names()
    graph = run_pipeline(graph, stop_after=stop_after if passes_only else None, trace=trace)
    if passes_only:
        return graph
    return chosen.compile(graph, cache_dir=cache_dir, options=options, trace=trace,
                          stop_after=stop_after)


class StageRecorder:
    """A `trace` that keeps the results of the named stages: `recorder[stage]`."""

    def __init__(self, *stages: str, then: Callable[[str, Any], None] | None = None):
        self.stages, self.then, self.results = set(stages), then, {}

    def __call__(self, stage: str, result: Any) -> None:
        if stage in self.stages:
            self.results[stage] = result
        if self.then is not None:
            self.then(stage, result)

    def __getitem__(self, stage: str) -> Any:
        return self.results[stage]


__all__ = ["GRADIENTS", "StageRecorder", "Training", "compile_step", "stage_names"]
