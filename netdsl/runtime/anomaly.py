"""Where a NaN started: the first op of a training step that made a non-finite value.

When the train loop finds the loss of step k non-finite, it asks `NonFiniteWatch.explain` for
the error to raise.  Like PyTorch's anomaly mode, but only after the fact, so training pays
nothing for it: the watch replays the steps with the compiled step, from a copy of the state
taken when an epoch began (the last one: a copy is taken at most every SNAPSHOT_SECONDS, and
at most ~1 % of the training time goes to copying), or from the initial weights when the state
is too large to copy, up to the step that went wrong:

* the step whose loss is non-finite, or
* an earlier step whose update left a non-finite weight although its loss was finite (the
  next forward pass then reads that weight).

That one step then runs on the reference backend over the training graph before optimisation
(every node keeps its `.net` span and scope), and every node's outputs are checked in order.
The first node with a non-finite output, all of whose inputs are finite, is where the NaN was
made; the error points at its source line and says whether it was in the forward pass, the
gradient (backward pass) or the optimiser's update.  If the reference does not reproduce it
(float rounding differs between the backends), the error says so and falls back to the
learning-rate hint.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import Diagnostic, Error
from . import data as data_module

# States up to this size are copied at the start of an epoch, so that a replay is short; larger
# ones replay from the initial weights instead of doubling the memory.
SNAPSHOT_BYTES = 64 << 20
# ... and at most once every this many seconds: an epoch of microseconds (XOR's) would spend
# more on the copy than on its step.  A replay then covers the epochs since the last copy,
# about this much training time plus one epoch.
SNAPSHOT_SECONDS = 0.05
# ... and no sooner than this many times the last copy's duration after it: copying costs at
# most ~1 / SNAPSHOT_SPACING of the training time, whatever the state's size against the
# epoch's.  The copies go into the last snapshot's arrays: fresh ones page-faulted in on every
# copy (the MLP benchmark's 3.2 MB state, 269 k parameters with Adam's two moments: 2.0-2.8 ms
# a copy against ~0.5 ms into the same arrays, once per fit of ~70 ms).
SNAPSHOT_SPACING = 100

_HINTS = {
    "div": "a division by zero, or 0/0",
    "reciprocal": "1/x at x = 0",
    "log": "log of 0 or of a negative number",
    "sqrt": "sqrt of a negative number",
    "rsqrt": "rsqrt of 0 or of a negative number",
    "pow": "a power of 0 or of a negative number, or an overflow",
    "exp": "exp overflowed: its input was too large (above ~88 in f32)",
    "log_softmax": "logits that are already inf or overflow",
}
_LR_HINT = "lower the learning rate, or clip gradients with clip_norm"


class NonFiniteWatch:
    """What the train loop keeps so that a non-finite loss can be traced to its first op."""

    def __init__(self, plan, weights: dict[str, np.ndarray],
                 train_data: dict[str, np.ndarray], config):
        # plan: the TrainingPlan (runtime/steps.py); plan.due(batch) says which steps run.
        self.plan, self.steps, self.state = plan, plan.steps, plan.storage
        self.weights, self.train_data, self.config = weights, train_data, config
        self.failed_index = 0               # which step of the plan went wrong
        self.snapshot: tuple[int, int, dict | None, dict] | None = None
        self._copy = sum(array.nbytes for array in self.state.values()) <= SNAPSHOT_BYTES
        self._taken = -np.inf               # perf_counter of the last copy
        self._wait = SNAPSHOT_SECONDS       # seconds from the last copy to the next
        self._arrays: dict[str, np.ndarray] = {}     # the copies' arrays, reused
        self.fresh = True                   # the run starts from `weights` (not a resume)

    def epoch_started(self, epoch: int, first_step: int, rng: np.random.Generator,
                      rng_state: dict | None = None) -> None:
        """Remember the state and the shuffling generator (`rng_state`, if the caller has it
        already) as the epoch begins: the first time, then (when the state is small enough to
        copy) once SNAPSHOT_SECONDS, and SNAPSHOT_SPACING times the last copy's duration,
        have passed since the last copy."""
        if self.snapshot is not None and not (
                self._copy and time.perf_counter() - self._taken >= self._wait):
            return
        # A fresh run's first step starts from the weights and zeros, which a replay from the
        # beginning rebuilds: no copy is needed for it.
        fresh = first_step == 1 and self.fresh
        started = time.perf_counter()
        state = None
        if self._copy and not fresh:
            self.snapshot = None            # an interrupted copy leaves no half-new snapshot
            state = self._arrays
            for name, array in self.state.items():
                kept = state.get(name)
                if kept is None or kept.shape != array.shape or kept.dtype != array.dtype:
                    state[name] = array.copy()
                else:
                    np.copyto(kept, array)
        self._taken = time.perf_counter()
        if state is not None:
            self._wait = max(SNAPSHOT_SECONDS, SNAPSHOT_SPACING * (self._taken - started))
        self.snapshot = (epoch, first_step, state,
                         rng_state if rng_state is not None else rng.bit_generator.state)

    def explain(self, loss: float, epoch: int, global_step: int, index: int = 0) -> Error:
        """The Error for a non-finite loss at `global_step`, in the plan's step `index` (see
        the module docstring)."""
        headline = f"the loss became {loss} at epoch {epoch}, step {global_step}"
        objective = self.steps[index].objective
        if objective is not None:
            headline = f"the loss {objective} became {loss} at epoch {epoch}, step {global_step}"
        try:
            with np.errstate(all="ignore"):
                self.failed_index = index
                found = self._replay(epoch, global_step)
        except Error as error:
            return error
        except Exception as error:          # the diagnosis must never hide the real problem
            return _fallback(headline, self.config,
                             f"finding the first non-finite value failed: {error!r}")
        if isinstance(found, str):
            return _fallback(headline, self.config, found)
        return _describe(headline, found, self.config)

    # -- replay --------------------------------------------------------------------------
    def _replay(self, epoch: int, global_step: int):
        """(step, where the first non-finite value was made) for the step that went wrong,
        or a string saying why it was not found."""
        index = self.failed_index
        if self.snapshot is None:
            return "no snapshot of the weights to replay from"
        since, first, saved, rng_state = self.snapshot
        if saved is None:           # not copied (a fresh start, or too large): from the beginning
            first = 1
            saved = {name: np.array(self.weights[name], dtype=array.dtype)
                     if name in self.weights else np.zeros_like(array)
                     for name, array in self.state.items()}
            rng = np.random.default_rng(self.config.seed)
            epochs = range(1, epoch + 1)
        else:
            rng = np.random.default_rng()
            rng.bit_generator.state = rng_state
            epochs = range(since, epoch + 1)
        for name, array in self.state.items():
            array[...] = saved[name]
        if not _all_finite(self.state):
            return "the weights were already non-finite when the epoch began"
        number = first - 1
        for _ in epochs:
            for chunk in data_module.batches(self.train_data, self.config.batch,
                                             shuffle=self.config.shuffle, rng=rng):
                number += 1
                for k, step, hyper in self.plan.due(number):
                    before = {name: array.copy() for name, array in self.state.items()}
                    if (number, k) == (global_step, index):
                        return self._locate(step, number, chunk, hyper, before)
                    outputs = step(chunk, hyper)
                    lost = not np.isfinite(float(outputs[step.loss_index]))
                    if lost or not _all_finite(self.state):
                        return self._locate(step, number, chunk, hyper, before)
        return "the replay did not reach the step"

    def _locate(self, step, number: int, chunk: dict, hyper: dict, state: dict):
        """Run one step on the reference over the unoptimised graph; find the first NaN."""
        from ..backends.reference import evaluate
        graph = step.training_graph
        feeds: dict[int, np.ndarray] = {}
        for value in graph.inputs:
            source = hyper[value.name] if value.name in hyper else chunk[value.name]
            feeds[value.id] = np.asarray(source, dtype=value.dtype.numpy)
        for info in graph.params:
            array = state.get(info.name)
            feeds[info.value.id] = np.array(array) if array is not None else \
                np.zeros(tuple(info.value.shape), info.value.dtype.numpy)
        for value in graph.inputs:
            if not _finite(feeds[value.id]):
                return number, ("input", value.name, graph.input_spans.get(value.name))
        env = evaluate(graph, feeds)
        for node in graph.nodes:
            for value in node.outputs:
                if not _finite(env[value.id]):
                    return number, ("node", node, _first_bad(env[value.id]))
        return ("the step's values are finite on the reference backend (its rounding differs "
                "from the compiled step's)")


def _describe(headline: str, found, config) -> Error:
    number, (kind, subject, detail) = found
    at = "" if headline.endswith(f"step {number}") else \
        f" (the weights became non-finite in the update of step {number})"
    if kind == "input":
        return Error(f"{headline}{at}: input '{subject}' holds non-finite values", detail,
                     "set allow_nonfinite = false (the default) to have the data checked")
    node, value = subject, detail
    scope = tuple(node.scope)
    op = node.op.name
    if scope[:1] == ("optimizer",):
        owner = ".".join(scope[1:]) or "the model"
        return Error(Diagnostic(
            f"{headline}{at}: the optimiser's update of the parameters of {owner} made the "
            f"first non-finite value ({value}, in {op})", config.spans.get("optimizer"),
            _LR_HINT, [(node.span, "the parameters are declared here")] if node.span else []))
    backward = scope[:1] == ("grad",)
    made = f"the gradient of this expression ({op}, in the backward pass)" if backward else \
        f"{op} here (in the forward pass)"
    cause = _HINTS.get(op)
    hint = (f"{op} made {value} from finite inputs: {cause}" if cause else
            f"{op} made {value} from finite inputs: the values overflowed; {_LR_HINT}")
    if backward:
        hint += "; the forward values were finite, its derivative is not"
    return Error(f"{headline}{at}: the first non-finite value was made by {made}",
                 node.span or config.spans.get("optimizer"), hint)


def _fallback(headline: str, config, why: str) -> Error:
    return Error(f"{headline} (the op that made it was not found: {why})",
                 config.spans.get("optimizer"), _LR_HINT)


def _finite(array: Any) -> bool:
    array = np.asarray(array)
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def _all_finite(state: dict[str, np.ndarray]) -> bool:
    return all(_finite(array) for array in state.values())


def _first_bad(array: np.ndarray) -> str:
    array = np.asarray(array)
    flat = array.reshape(-1)
    return str(flat[np.argmax(~np.isfinite(flat))])


__all__ = ["NonFiniteWatch", "SNAPSHOT_BYTES"]
