"""Epochs run in compiled code, in blocks, when Python's loop would cost more than the steps.

`fit` (runtime/train.py) runs every epoch through Python (runtime/epoch.py): per epoch a
shuffle, a gather per batch, a bound call per step and a history row, about 15-20 us besides
the steps.  For a model whose steps take microseconds (XOR's) that loop is most of the run.
`CompiledEpochs` hands such runs to the target's epoch runner, where its compiled step has one
(`compiled.epoch_runner(...)`: the cpu target's, backends/numba_cpu/epoch_runner.py), which
does the same work for a block of epochs in one compiled call; `fit` then makes each epoch's
row from the block's sums.

When: a target with an epoch runner (cpu), one step run on every batch, batch inputs, no
validation, training metrics only of a prediction of rank 1 or 2 (one row per example), no
early stopping, no reduce_on_plateau schedule, no
per-epoch callback; after the first MEASURED_EPOCHS epochs (run by the Python loop, which
times them), at least MIN_EPOCHS left, and the fastest of those at most EPOCH_SECONDS; and
what blocks save (about three quarters of the Python loop's time left) more than readying
the runner costs, as the runner estimates it: nothing when this process loaded it, a load
when the compile cache has it, else a cold compile (~0.7 s: the runner's own loops; it calls
the compiled step separately, backends/numba_cpu/separate.py).
`NETDSL_EPOCH_BLOCKS` overrides that last condition: `always` compiles the runner whenever
the rest hold, `never` keeps every epoch in Python; `auto` (or unset) is the rule above.  A
runner that fails to load (an unwritable cache) leaves every epoch to Python, with a note.

The results are the Python loop's, bit for bit: weights, optimiser state, the generator's
state and every number in the history but `seconds` (a block's time divided evenly among its
epochs) and `examples_per_second`.  Training metrics: the runner copies the prediction's rows
of every epoch out, and the block's confusion matrices are counted in one pass
(metrics.epoch_confusions): the same counts as the Python loop's batch by batch.
Measured (benchmarks/fit.py, 2 threads): XOR's 2,000 epochs 36.4 -> 8.0 ms, 0.79x its steps'
own time through the bound call; examples/xor.net's (with `metrics = [accuracy]`, which
costs the Python loop ~45 us an epoch) 137 -> 24 ms.

`should_stop` is asked before every block rather than every step; blocks are sized to last
about BLOCK_SECONDS, so Ctrl-C still stops a run within that.  A non-finite loss stops the
block at its step, and the non-finite watch explains it as in the Python loop (a snapshot is
taken at the start of every block instead of every epoch).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from .progress import format_epoch_row

MIN_EPOCHS = 20
MEASURED_EPOCHS = 3
EPOCH_SECONDS = 2e-3
BLOCK_SECONDS = 0.05
POLICIES = ("auto", "always", "never")


class CompiledEpochs:
    """The block runner of one fit (see the module docstring)."""

    def __init__(self, plan, config, data: dict[str, np.ndarray], *, terms: list, norms,
                 watch, snapshots: bool, should_stop, snapshot: Callable, result, printer,
                 columns: list[str], lr_steps: list, partial_first: bool = False,
                 metrics: Callable[[], dict] | None = None, label: str | None = None):
        """`terms`, `norms`, `columns` and `lr_steps` are fit's (train.py); `snapshots`: the
        watch copies the state at a block's start; `snapshot(...)` makes a resume state;
        `partial_first`: the run resumes mid-epoch; `metrics()`: fresh training metrics (by
        column name) of the step's prediction against the data's `label`, or None."""
        self.plan, self.config, self.data = plan, config, data
        self.terms, self.norms, self.watch = terms, norms, watch
        self.should_stop, self.snapshot, self.result = should_stop, snapshot, result
        self.printer, self.columns, self.lr_steps = printer, columns, lr_steps
        self.snapshots = snapshots              # the watch copies the state (as train.py does)
        self.examples = len(next(iter(data.values())))
        self.steps_per_epoch = -(-self.examples // config.batch)
        self.runner = None
        self.per_epoch: float | None = None     # seconds an epoch, last measured
        self.declined = False                   # the Python loop runs every epoch
        self.measured: list[float] = []         # seconds of the epochs the Python loop ran
        self.partial_first = partial_first      # the first of them is a resumed partial one
        self.metrics, self.label = metrics, label

    @staticmethod
    def applies(plan, config, *, validating: bool, plateaus: list, epoch_end,
                label: str | None = None) -> bool:
        """Whether the run is one the block runner can take (before any epoch has run)."""
        steps = plan.steps
        return (policy() != "never" and len(steps) == 1
                and steps[0].every == 1
                and bool(plan.batch_inputs) and not validating
                and (not config.metrics or label is not None
                     and steps[0].prediction_index is not None)
                and config.early_stopping is None and not plateaus and epoch_end is None
                and config.epochs >= MIN_EPOCHS + MEASURED_EPOCHS
                and hasattr(steps[0].compiled, "epoch_runner"))

    def wants(self, epoch: int, skip: int, last_seconds: float | None) -> bool:
        """Whether epoch `epoch` (and the ones after) go to the block runner, given the time
        of the last epoch the Python loop ran: decided once, after MEASURED_EPOCHS of them
        (their fastest estimates an epoch: the first ones of a process pay for warming up)."""
        if self.per_epoch is not None or self.declined:
            return not self.declined
        if skip or last_seconds is None:
            return False
        if self.partial_first:                  # a resumed partial epoch: not a measure
            self.partial_first = False
            return False
        self.measured.append(last_seconds)
        if len(self.measured) < MEASURED_EPOCHS:
            return False
        seconds, left = min(self.measured), self.config.epochs - epoch + 1
        runner = None
        if seconds <= EPOCH_SECONDS and left >= MIN_EPOCHS:
            try:
                runner = self._runner()
            except ValueError:          # a step the runner cannot take (epoch_runner.py)
                pass
        # auto: blocks cut the loop's time to about a quarter (XOR's), and what that saves
        # must pay for readying the runner (nothing, a load from the cache, or a compile).
        self.declined = runner is None or (
            policy() == "auto" and 0.75 * left * seconds < runner.start_seconds)
        if not self.declined:
            self.per_epoch = seconds
        return not self.declined

    def _runner(self):
        """The target's runner for this fit's step and data (made once; not yet loaded)."""
        if self.runner is None:
            step = self.plan.steps[0]
            columns = [(output, True) for _, _, output, _ in self.terms] + \
                [(output, False) for _, _, output in self.norms.columns]
            self.runner = step.compiled.epoch_runner(
                self.plan.storage, step.batch_inputs, self.data, self.config.batch, columns,
                step.loss_index, step.prediction_index if self.metrics is not None else None)
        return self.runner

    def run(self, epoch: int, global_step: int, rng: np.random.Generator,
            verbose: bool) -> tuple[int, int, bool]:
        """Run a block of epochs from `epoch`; (the next epoch, the global step after the block,
        whether the run ends here: interrupted).  Rows go into the result's history.  When the
        runner fails to load (an unwritable cache, a compile error), nothing runs: the next
        epoch is still `epoch`, and every epoch from there on goes through Python."""
        if self.should_stop is not None and self.should_stop():
            self.norms.start()                  # the blocks keep their own sums: none so far
            self.result.interrupted = (epoch, 0)
            self.result.resume = self.snapshot(epoch, 0, rng.bit_generator.state, {
                "totals": [0.0], "counts": [0], "terms": [0.0] * len(self.terms),
                "norms": self.norms.partial(),
                "metrics": {}})
            return epoch, global_step, True
        runner = self._runner()
        try:
            runner.load()                       # a compile, if any, before the block's clock
        except Exception as error:              # the Python loop does the same work
            from ..backends.cache import note
            note(f"compiled epochs are unavailable ({type(error).__name__}: "
                 f"{str(error)[:200]}); every epoch runs through Python")
            self.declined = True
            return epoch, global_step, False
        count = min(max(1, int(BLOCK_SECONDS / max(self.per_epoch, 1e-7))),
                    self.config.epochs - epoch + 1)
        step = self.plan.steps[0]
        steps = count * self.steps_per_epoch
        numbers = range(global_step + 1, global_step + steps + 1)
        constant = self.lr_steps[0][2]
        started = time.perf_counter()           # the rates' Python counts towards the block
        rates = np.full(steps, constant) if constant is not None else \
            np.array([step.learning_rate(number) for number in numbers], dtype=np.float64)
        if self.snapshots:
            self.watch.epoch_started(epoch, global_step + 1, rng)
        done, position, sums = runner.run(count, self.config.shuffle, rng, global_step, rates)
        seconds = (time.perf_counter() - started) / max(done, 1)
        if position is not None:                # a non-finite loss at that batch
            number = global_step + done * self.steps_per_epoch + position + 1
            raise self.watch.explain(float(sums[done, 0]), epoch + done, number, 0)
        self.per_epoch = seconds
        rows = self._rows(epoch, sums[:done], global_step, seconds, self._scores(runner, done))
        self.result.history.extend(rows)
        if verbose:
            for row in rows:
                self.printer(format_epoch_row(row["epoch"], self.config.epochs,
                                              {k: row[k] for k in self.columns}, seconds))
        return epoch + done, global_step + done * self.steps_per_epoch, False

    def _scores(self, runner, done: int) -> list[dict]:
        """Each epoch's training metrics, by column (the block's predictions against the
        labels in the order they ran)."""
        if self.metrics is None:
            return [{}] * done
        from .metrics import epoch_confusions
        labels = self.data[self.label]
        labels = labels[runner.orders[:done]] if runner.orders is not None else \
            np.broadcast_to(labels, (done,) + labels.shape)
        predictions = runner.predictions[:done].reshape(
            (done, self.examples) + tuple(runner.prediction_shape))
        metrics = self.metrics()
        first = next(iter(metrics.values()))
        matrices = epoch_confusions(predictions, labels, first.threshold, first.ignore_index,
                                    first.num_classes)
        scores = []
        for matrix in matrices:
            for metric in metrics.values():
                metric.matrix = matrix
            scores.append({name: metric.result() for name, metric in metrics.items()})
        return scores

    def _rows(self, epoch: int, sums: np.ndarray, global_step: int, seconds: float,
              scores: list[dict]) -> list[dict]:
        """The block's rows, one per epoch from `epoch`, as runtime/train.py makes them from
        the Python loop's sums (the same keys in the same order, the same floats: NumPy's
        float64 division is Python's).  Built column by column, then zipped into rows: 0.7 us
        a row against 3.5 us for a row at a time (XOR's 2,000 epochs: 7 of its fit's 14 ms)."""
        done, examples, per_epoch = len(sums), self.examples, self.steps_per_epoch
        first = 1 + len(self.terms)
        divisors = np.array([examples] * first + [per_epoch] * (sums.shape[1] - first),
                            dtype=np.float64)
        means = (sums / divisors).T.tolist() if done else [[] for _ in divisors]
        score_names = list(scores[0]) if scores and scores[0] else []
        ends = range(global_step + per_epoch, global_step + (done + 1) * per_epoch, per_epoch)
        names = ["epoch", "loss", *(name for name, *_ in self.terms), *score_names]
        columns = [range(epoch, epoch + done), *means[:first],
                   *([score[name] for score in scores] for name in score_names)]
        for name, step, constant in self.lr_steps:
            names.append(name)
            columns.append([constant] * done if constant is not None else
                           [step.learning_rate(number) for number in ends])
        names += [name for name, _, _ in self.norms.columns]
        columns += means[first:]
        names += ["seconds", "examples_per_second"]
        columns += [[seconds] * done, [examples / max(seconds, 1e-9)] * done]
        return [dict(zip(names, values)) for values in zip(*columns)]


def policy() -> str:
    """NETDSL_EPOCH_BLOCKS (see the module docstring): auto, always or never; a netdsl.Error
    for anything else."""
    value = os.environ.get("NETDSL_EPOCH_BLOCKS", "").strip().lower() or "auto"
    if value not in POLICIES:
        from ..errors import Error
        raise Error(f"NETDSL_EPOCH_BLOCKS must be auto, always or never, got {value[:40]!r}",
                    hint="unset it for auto: compiled epochs where they pay for their compile")
    return value


__all__ = ["CompiledEpochs", "policy"]
