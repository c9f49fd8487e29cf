"""One epoch of training: every batch through the plan's steps, with the sums fit's row needs.

`fit` (runtime/train.py) calls `EpochRunner.run` once per epoch.  Per batch it asks
`should_stop`, gathers the batch (runtime/batcher.py: reused buffers, no dict), runs each due
step, checks its loss is finite (else the non-finite watch's error, runtime/anomaly.py), and
adds the loss, each loss term, each gradient norm and the training metrics' class ids to the
epoch's sums.  The sums are plain Python floats added in the order the steps ran, so the
history is what a loop over `data.batches` and `plan.due` gives, to the last bit.

A plan of one step that runs on every batch (most models) takes a loop of its own: the step's
arguments are set in a list kept from batch to batch, the learning rate is read once per epoch
when the schedule is constant, and nothing else is allocated per batch; what is left per batch
is the compiled step's call and a few float additions (~2 us besides the step; XOR's whole
epoch, with its shuffle and history row, ~12 us CPU time against a 4 us step; such tiny
epochs then go to compiled blocks, runtime/compiled_epochs.py).  Other plans (several
objectives, `every = k`) go through `plan.due`.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import isfinite
from typing import Any, Callable

import numpy as np

from .batcher import Batcher
from .metrics import MetricSet


@dataclass
class EpochSums:
    """What an epoch adds up: per step its loss times examples and its examples, per loss term
    its value times examples.  (Gradient norms are summed in the GradNorms.)"""

    totals: list[float]
    counts: list[int]
    terms: list[float]
    metrics: MetricSet


class EpochRunner:
    """Runs epochs of `plan` over `batcher`'s batches (see the module docstring)."""

    def __init__(self, plan, batcher: Batcher, terms: list[tuple[str, int, int, str]], norms,
                 watch, label: str | None, should_stop: Callable[[], bool] | None):
        self.plan, self.batcher, self.norms, self.watch = plan, batcher, norms, watch
        self.should_stop = should_stop
        steps = plan.steps
        # Per step, (term number, output index) of the loss terms it outputs.
        self.term_outputs = [[(number, output) for number, (_, index, output, _)
                              in enumerate(terms) if index == step_index]
                             for step_index in range(len(steps))]
        predicting = [step for step in steps if step.prediction_index is not None][-1:]
        self.predicting = predicting[0] if label is not None and predicting else None
        self.label_position = batcher.names.index(label) if label in batcher.names else None
        self.sized = bool(plan.batch_inputs)      # a plan without batch inputs counts 1 a step
        if len(steps) == 1:
            # The one step's arguments: its batch inputs (the batcher's first names, in order),
            # then its hyper inputs; a hyper input it does not take goes to a spare last slot.
            step = steps[0]
            fed = len(step.batch_inputs)
            self.spare = fed + len(step.hyper)
            self.slots = tuple(fed + step.hyper.index(name) if name in step.hyper
                               else self.spare for name in ("__lr__", "__step__", "__rng__"))
            self.args: list[Any] = [None] * (self.spare + 1)
            # A constant schedule's rate is read once, not per batch.
            self.constant_lr = step.learning_rate(1) \
                if step.schedule is not None and step.schedule.name == "constant" else None

    def run(self, epoch: int, order: np.ndarray | None, skip: int, global_step: int,
            sums: EpochSums, bar) -> tuple[int, int | None]:
        """Run the epoch's batches from `skip` on; (global step after them, the batch at which
        `should_stop` ended the epoch or None)."""
        steps = self.plan.steps
        if len(steps) == 1 and steps[0].every == 1:
            return self._run_single(epoch, order, skip, global_step, sums, bar)
        return self._run_plan(epoch, order, skip, global_step, sums, bar)

    def _run_single(self, epoch, order, skip, number, sums, bar):
        step = self.plan.steps[0]
        batcher, should_stop, watch = self.batcher, self.should_stop, self.watch
        call, loss_index = step.call, step.loss_index
        fed, spare, args = len(step.batch_inputs), self.spare, self.args
        lr_slot, step_slot, rng_slot = self.slots
        lr = self.constant_lr
        constant = lr is not None
        norm_sums, norm_outputs = self.norms.sums, self.norms.outputs_of(0)
        term_totals, term_outputs = sums.terms, self.term_outputs[0]
        metrics = sums.metrics if self.predicting is step and sums.metrics.metrics else None
        prediction, label = step.prediction_index, self.label_position
        total, count, ran = sums.totals[0], sums.counts[0], 0
        stopped = None
        try:
            for position in range(skip, batcher.count):
                if should_stop is not None and should_stop():
                    stopped = position
                    break
                number += 1
                arrays = batcher.gather(order, position)
                args[:fed] = arrays[:fed]
                args[lr_slot] = lr if constant else step.learning_rate(number)
                args[step_slot] = float(number)
                args[rng_slot] = number
                outputs = call(*args[:spare])
                loss = float(outputs[loss_index])
                if not isfinite(loss):
                    raise watch.explain(loss, epoch, number, 0)
                size = len(arrays[0]) if self.sized else 1
                total += loss * size
                count += size
                ran += 1
                for column, output in norm_outputs:
                    norm_sums[column] += float(outputs[output])
                for term, output in term_outputs:
                    term_totals[term] += float(outputs[output]) * size
                if metrics is not None:
                    metrics.update(outputs[prediction], arrays[label])
                if bar is not None:
                    bar.update(examples=size, loss=loss)
        finally:
            sums.totals[0], sums.counts[0] = total, count
            self.norms.updates[0] += ran
        return number, stopped

    def _run_plan(self, epoch, order, skip, global_step, sums, bar):
        batcher, should_stop, watch, norms = self.batcher, self.should_stop, self.watch, \
            self.norms
        totals, counts, term_totals = sums.totals, sums.counts, sums.terms
        for position in range(skip, batcher.count):
            if should_stop is not None and should_stop():
                return global_step, position
            global_step += 1
            chunk = batcher.chunk(order, position)
            size = batcher.size(position) if self.sized else 1
            loss = 0.0
            for index, step, extra in self.plan.due(global_step):
                outputs = step(chunk, extra)
                step_loss = float(outputs[step.loss_index])
                if not isfinite(step_loss):
                    raise watch.explain(step_loss, epoch, global_step, index)
                loss += step_loss
                totals[index] += step_loss * size
                counts[index] += size
                norms.add(index, outputs)
                for term, output in self.term_outputs[index]:
                    term_totals[term] += float(outputs[output]) * size
                if step is self.predicting and sums.metrics.metrics:
                    sums.metrics.update(outputs[step.prediction_index],
                                        chunk[batcher.names[self.label_position]])
            if bar is not None:
                bar.update(examples=size, loss=loss)
        return global_step, None


__all__ = ["EpochRunner", "EpochSums"]
