"""The training loop behind `netdsl train` and `Model.fit`.

The training plan (runtime/steps.py) is a list of compiled steps, one per objective (one for
most models), each a single call per batch that runs forward, loss, gradients and the
optimiser's update; parameters and state (optimiser slots, running statistics) live in one
storage dict the steps update in place.  `fit` runs the epochs: each one's batches go
through the steps in runtime/epoch.py (batches gathered by runtime/batcher.py), then the
inference graph scores the validation split (runtime/evaluate.py), and the epoch's row goes into
the history, the table, early stopping and the schedules.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import Error
from . import data as data_module
from .anomaly import NonFiniteWatch
from .batcher import Batcher
from .compiled_epochs import CompiledEpochs
from .compiled_epochs import policy as epoch_blocks_policy
from .epoch import EpochRunner, EpochSums
from .evaluate import Evaluator
from .fit_data import input_specs, prepare_data, prepare_splits  # noqa: F401 (re-exported)
from .grad_norms import GradNorms
from .metrics import MetricSet, check_metric_labels, make_metric, metric_sources
from .progress import (ProgressBar, format_epoch_header, format_epoch_row, format_matrix,
                       format_value, is_matrix)
from .train_config import TrainConfig, check_validation_monitors
from .steps import HYPER_INPUTS, build_plan
from .resume import (BEST_PREFIX, LazyFingerprint, ResumeState, fingerprint, partial_metrics,
                     partial_sums)


@dataclass
class FitResult:
    """What `fit` returns: the trained weights (new arrays) and one dict per epoch.

    `weights`, `optimizer_state` and `resume` share arrays (the run's own storage, copied from
    the weights passed in): change one in place and the others see it."""

    weights: dict[str, np.ndarray]
    history: list[dict[str, Any]] = field(default_factory=list)
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    stopped_early: bool = False
    # (epoch, steps done in it) when `should_stop` ended training early; else None.
    interrupted: tuple[int, int] | None = None
    # Where the run ended, to continue it with fit(..., resume=...): see runtime/resume.py.
    resume: ResumeState | None = None
    # The test set's scores with the final weights (`test` train key): loss, each loss column
    # and each metric, by the training column's name; None without a test set.
    test: dict[str, Any] | None = None


def _label_and_prediction(model, config: TrainConfig) -> tuple[str | None, str | None]:
    """Metrics compare the first `out` with the one input that only the loss reads."""
    inference_inputs = {v.name for v in model.inference_graph.inputs}
    labels = [v.name for v in model.graph.inputs
              if v.name not in inference_inputs and v.name not in HYPER_INPUTS]
    span = config.key_spans.get("metrics") or config.spans.get("metrics")
    return metric_sources(config.metrics, model.name, list(model.graph.outputs), labels, span)


def objectives_of(model) -> list:
    from .steps import objectives
    return objectives(model.training_forward)


def _loss_terms(steps, metrics: set[str]) -> list[tuple[str, int, int, str]]:
    """(column, step index, output index, loss name) of every loss the epoch table shows
    besides their sum: each objective when there are several, else each term of the one."""
    if len(steps) > 1:
        found = [(step.objective, index, step.loss_index) for index, step in enumerate(steps)]
    else:
        found = [(name, 0, output) for name, output in steps[0].loss_parts.items()]
    reserved = {"epoch", "loss", "val_loss", "lr", "seconds", "examples_per_second"} | metrics
    # A loss named like another column keeps its place under `loss.<name>`.
    return [(f"loss.{name}" if name in reserved or name.startswith("val_") else name,
             index, output, name) for name, index, output in found]


def fit(model, weights: dict[str, np.ndarray], config: TrainConfig, *, data: Any = None,
        target: str = "cpu", verbose: bool = True,
        printer: Callable[[str], None] = print,
        should_stop: Callable[[], bool] | None = None,
        resume: ResumeState | str | None = None,
        epoch_end: Callable[[dict, Callable[[], ResumeState]], None] | None = None) -> FitResult:
    """Train `model` from `weights` as `config` says; the weights passed in are not mutated.

    `should_stop`, if given, is asked before every training step, or every block of epochs run
    in compiled code (runtime/compiled_epochs.py: tiny steps) (its first call means training
    has started); when it says True, training ends there with the weights so far and
    `result.interrupted` = (epoch, steps done in that epoch).  Compiled steps cannot be
    interrupted midway, so this is how `netdsl train` stops on Ctrl-C.

    `resume` (a checkpoint path or a ResumeState) continues the run that saved it exactly:
    its weights replace `weights`, and its optimiser state, epoch, step, schedules and
    shuffling generator carry on (runtime/resume.py).  `result.resume` is where this run
    ended, for the next.  `epoch_end(row, state)` is called after every epoch's row;
    `state()` makes the ResumeState of that moment (copies of the arrays).
    """
    from .threads import limited_blas_threads
    if isinstance(resume, str) or hasattr(resume, "__fspath__"):
        resume = ResumeState.from_checkpoint(str(resume), model)
    if resume is not None:
        weights = resume.weights
    with limited_blas_threads():
        return _fit(model, weights, config, data, target, verbose, printer, should_stop,
                    resume, resume.source if resume is not None else "", epoch_end)


def _validation_ahead(model, target: str, needed: bool):
    """The cpu target compiles the validation graph in a helper process while this one
    compiles the training steps (backends/numba_cpu/compile_helper.py); `join()` before
    compiling it here, which then loads it from the caches.  No helper where this process
    has that graph already (a second fit of the model): its handle's join does nothing."""
    from ..backends.numba_cpu.compile_helper import Ahead, ahead
    if not needed or target != "cpu" or model.has_compiled_evaluation(target):
        return contextlib.nullcontext(Ahead(0))
    return ahead(lambda: model.compiled_evaluation(target))


def _fit(model, weights, config, data, target, verbose, printer, should_stop=None,
         resume=None, source="", epoch_end=None) -> FitResult:
    model.check_weights(weights)
    parameters = model.parameter_shapes      # name -> (shape, dtype): a dict built per read
    epoch_blocks_policy()                   # a malformed NETDSL_EPOCH_BLOCKS: before compiling
    label, prediction = _label_and_prediction(model, config)
    train_data, validation, test_data = prepare_splits(model, config, data)
    check_validation_monitors(config, validation is not None)
    if label is not None:                   # before the compile: metrics that cannot apply
        span = config.key_spans.get("metrics") or config.spans.get("metrics")
        for part, where in ((train_data, "the data"), (validation, "the validation data"),
                            (test_data, "the test data")):
            if part is not None and label in part:
                check_metric_labels(config.metrics, label, part[label], span, where)
    examples = data_module.num_examples(train_data)
    steps_per_epoch = -(-examples // config.batch)
    objectives = objectives_of(model)
    expected = LazyFingerprint(lambda: fingerprint(model, config, train_data, objectives))
    if resume is not None:
        resume.check_against(expected, source)
        if resume.finished or resume.epoch > config.epochs:
            done = len(resume.history)
            raise Error(f"cannot resume from {source}: its run is over ("
                        + ("early stopping ended it" if resume.finished else
                           f"{done} of {config.epochs} epochs done") + ")",
                        hint=None if resume.finished else
                        f"--epochs N with N above {done} trains it further")
    from .compile_progress import compiling
    # A line per compiled graph; on a terminal a spinner names the stage running meanwhile.
    # The validation graph compiles in a helper process meanwhile, into the caches.
    with compiling(model.name, objectives, target, printer if verbose else None) as phases, \
            _validation_ahead(model, target, validation is not None) as early:
        plan = build_plan(model, weights, config, target, prediction, steps_per_epoch,
                          trace=phases, on_step=phases.on_step)
        early.join()
        evaluator = phases.validation(lambda: Evaluator(
            model, target, config.metrics, label, prediction)) if validation is not None else None
    steps, state = plan.steps, plan.storage
    batch_inputs = plan.batch_inputs
    rng = np.random.default_rng(config.seed)
    # A non-finite loss is traced to the op that made it by replaying the step (anomaly.py).
    watch = NonFiniteWatch(plan, weights, train_data, config)
    watch.fresh = resume is None
    result = FitResult(weights={})
    metric_names = config.metrics
    # Positions the loss ignores (cross_entropy's ignore_index: padding) do not count either.
    ignore_index = model.graph.ignored_labels.get(label)
    # Every loss gets a column: each objective of a GAN (d_loss, g_loss), averaged over the
    # batches its step ran on, or each term of a summed objective (a VAE's nll and kl);
    # `loss` is their sum (early stopping's default).
    terms = _loss_terms(steps, set(metric_names))
    norms = GradNorms(steps)
    loss_columns = ([] if len(steps) > 1 else ["loss"]) + [column for column, *_ in terms]
    # Each step's learning rate is in the history; the table shows it when it changes.
    lr_names = ["lr"] if len(steps) == 1 else [f"lr.{step.objective}" for step in steps]
    lr_columns = [] if all(step.schedule.name == "constant" for step in steps) else lr_names
    columns = loss_columns + (["val_loss"] if evaluator is not None and len(steps) == 1 else [])\
        + ([f"val_{column}" for column, *_ in terms] if evaluator is not None else []) \
        + list(metric_names) \
        + ([f"val_{name}" for name in metric_names] if evaluator is not None else []) \
        + lr_columns
    if verbose:
        printer(format_epoch_header(config.epochs, columns))
    best, best_state, waited = np.inf, None, 0
    global_step, first_epoch, skip = 0, 1, 0
    if resume is not None:
        best_state = resume.restore(state, parameters, rng, source)
        plan.to_device()
        best, waited = resume.early["best"], resume.early["waited"]
        first_epoch, skip, global_step = resume.epoch, resume.step, resume.global_step
        result.history = [dict(row) for row in resume.history]
        for step, saved in zip(steps, resume.schedules):     # reduce_on_plateau's state
            if step.schedule.plateau is not None and saved is not None:
                step.schedule.plateau.load(saved, source)
        if verbose:
            printer(f"resuming from {source} at epoch {first_epoch}"
                    + (f", step {skip}" if skip else "") + f" (global step {global_step})")

    def snapshot(epoch_next: int, step: int, rng_state: dict, partial: dict,
                 finished: bool = False, copy: bool = True) -> ResumeState:
        """The run as it is now: next at `step` of `epoch_next`, the generator as it began.
        `copy=False` (the run is over, nothing writes to `state` or the history again): the
        state's arrays and the history's rows themselves rather than copies (XOR's 2,000 rows
        took 1.4 ms to copy, a tenth of its fit)."""
        take = np.array if copy else (lambda array: array)
        optimizer = {name: take(array) for name, array in state.items()
                     if name not in parameters}
        if best_state is not None:
            optimizer.update({BEST_PREFIX + name: array for name, array in best_state.items()})
        return ResumeState(
            epoch_next, step, global_step, rng_state, expected,
            [dict(row) for row in result.history] if copy else list(result.history), partial,
            {"best": float(best), "waited": waited}, finished=finished,
            weights={name: take(state[name]) for name in parameters},
            optimizer=optimizer, schedules=[step.schedule.plateau.state()
                                            if step.schedule.plateau is not None else None
                                            for step in steps])

    # The batches, each input gathered into buffers kept from batch to batch (batcher.py), and
    # the loop over them (epoch.py).
    batcher = Batcher(train_data, config.batch,
                      batch_inputs + ([label] if label and label not in batch_inputs else []),
                      pool=model.memory_pool)
    runner = EpochRunner(plan, batcher, terms, norms, watch, label, should_stop)
    # (column, step, its rate when the schedule is constant): the row's learning rates.
    lr_steps = [(name, step, step.learning_rate(1) if step.schedule.name == "constant" else None)
                for name, step in zip(lr_names, steps)]
    no_metrics = MetricSet({})

    def new_metrics() -> dict:
        """Fresh training metrics, by column (an epoch's, of the loop or of a block)."""
        return {name: make_metric(name, ignore_index=ignore_index) for name in metric_names}
    plateaus = [step.schedule.plateau for step in steps if step.schedule.plateau is not None]
    # Tiny epochs: after the first few here, blocks of them in compiled code (compiled_epochs.py).
    blocks = CompiledEpochs(plan, config, train_data, terms=terms, norms=norms, watch=watch,
                            snapshots=resume is None or watch._copy, should_stop=should_stop,
                            snapshot=snapshot, result=result, printer=printer, columns=columns,
                            lr_steps=lr_steps, partial_first=skip > 0,
                            metrics=new_metrics if metric_names else None, label=label) \
        if CompiledEpochs.applies(plan, config, validating=evaluator is not None,
                                  plateaus=plateaus, epoch_end=epoch_end, label=label) else None
    blocked_until, row = 0, {}                  # row: the last epoch the loop below ran
    for epoch in range(first_epoch, config.epochs + 1):
        if epoch < blocked_until:               # run by the last block
            continue
        if blocks is not None and blocks.wants(epoch, skip, row.get("seconds")):
            blocked_until, global_step, ended = blocks.run(epoch, global_step, rng, verbose)
            if ended:
                break
            if blocked_until > epoch:           # else the runner did not load: this epoch here
                continue
        started = time.perf_counter()
        # The generator as the epoch begins, for a resume state saved mid-epoch: only a run
        # that can be stopped mid-epoch needs it (~1 us an epoch).
        epoch_rng = rng.bit_generator.state if should_stop is not None else None
        # The watch replays an epoch from its start (or the run's): not a resumed one's.
        if resume is None or (skip == 0 and watch._copy):
            watch.epoch_started(epoch, global_step + 1, rng, epoch_rng)
        norms.start(resume.partial.get("norms") if skip else None)
        totals, counts, term_totals = partial_sums(resume.partial, len(steps), len(terms), source) \
            if skip else ([0.0] * len(steps), [0] * len(steps), [0.0] * len(terms))
        train_metrics = new_metrics()
        if skip:                    # the steps before the interrupt count towards the metrics
            partial_metrics(resume.partial, train_metrics, source)
        sums = EpochSums(totals, counts, term_totals,
                         MetricSet(train_metrics) if train_metrics else no_metrics)
        bar = ProgressBar(steps_per_epoch, f"epoch {epoch}/{config.epochs}",
                          start=skip) if verbose else None
        order = batcher.order(config.shuffle, rng)
        global_step, stopped = runner.run(epoch, order, skip, global_step, sums, bar)
        sums.metrics.flush()
        if bar is not None:
            bar.close()
        plan.to_host()                          # the device's state, before anything reads it
        if stopped is not None:
            result.interrupted = (epoch, stopped)
            result.resume = snapshot(epoch, stopped, epoch_rng, {
                "totals": totals, "counts": counts, "terms": term_totals,
                "norms": norms.partial(),
                "metrics": {name: metric.matrix.tolist() for name, metric in
                            train_metrics.items() if metric.matrix.size}})
        skip = 0
        if result.interrupted is not None:      # the partial epoch has no row
            break
        means = [total / max(count, 1) for total, count in zip(totals, counts)]
        row: dict[str, Any] = {"epoch": epoch, "loss": sum(means)}
        for (column, step_index, _, _), total in zip(terms, term_totals):
            row[column] = total / max(counts[step_index], 1)
        if train_metrics:
            row.update({name: metric.result() for name, metric in train_metrics.items()})
        if evaluator is not None:
            current = {name: state[name] for name in parameters}
            scores = evaluator(current, validation, config.batch)
            row["val_loss"] = sum(scores[name] for name in evaluator.loss_names)
            row.update({f"val_{column}": scores[name] for column, _, _, name in terms})
            row.update({f"val_{name}": scores[name] for name in metric_names})
        for name, step, constant in lr_steps:
            row[name] = constant if constant is not None else step.learning_rate(global_step)
        row.update(norms.row())
        row["seconds"] = time.perf_counter() - started
        row["examples_per_second"] = max(counts, default=0) / max(row["seconds"], 1e-9)
        result.history.append(row)
        for plateau in plateaus:     # reduce_on_plateau sets the next epoch's rate from the row
            plateau.observe(row)
        stopping = False
        if verbose:
            printer(format_epoch_row(epoch, config.epochs, {k: row[k] for k in columns},
                                     row["seconds"]))
        if config.early_stopping is not None:
            monitor = config.early_stopping["monitor"]
            # Scores improve downwards: a loss as it is, accuracy and the like negated.
            sign = -1.0 if config.early_stopping.get("mode") == "max" else 1.0
            value = sign * row.get(monitor, row["loss"])
            if value < best - config.early_stopping["min_delta"]:
                best, waited = value, 0
                best_state = {name: state[name].copy() for name in parameters}
            else:
                waited += 1
                if waited >= config.early_stopping["patience"]:
                    stopping = True
        if epoch_end is not None:
            epoch_end(row, lambda: snapshot(epoch + 1, 0, rng.bit_generator.state, {},
                                            finished=stopping))
        if stopping:
            result.stopped_early = True
            if verbose:
                printer(f"early stopping: {monitor} has not improved for {waited} "
                        f"epoch{'s' if waited != 1 else ''}; "
                        f"keeping the best weights ({monitor} {sign * best:.4g})")
            break
    if verbose and result.history:         # matrices have no table column: shown once here
        last = result.history[-1]
        for name in columns:
            if is_matrix(name) and name in last:
                for line in format_matrix(name, last[name], last["epoch"]):
                    printer(line)
    # The run is over and nothing writes to `state` or the history again (each fit binds its
    # steps to storage of its own, steps.build_plan): the result and its resume state share its
    # arrays and rows rather than copying them (2-3 ms of the MLP benchmark's fit).
    if result.interrupted is None:
        result.resume = snapshot(len(result.history) + 1, 0, rng.bit_generator.state, {},
                                 finished=result.stopped_early, copy=False)
    final = best_state if result.stopped_early and best_state is not None else state
    result.weights = {name: final[name] for name in parameters}
    result.optimizer_state = {name: array for name, array in state.items()
                              if name not in parameters}
    plan.release()              # the steps' scratch memory, for the model's next fit
    if test_data is not None and result.interrupted is None:
        tester = evaluator or Evaluator(model, target, metric_names, label, prediction)
        result.test = _test_scores(tester, result.weights, test_data, config.batch, terms)
        if verbose:
            shown = ", ".join(f"{name} {format_value(value)}" for name, value in
                              result.test.items() if not isinstance(value, np.ndarray))
            count = data_module.num_examples(test_data)
            printer(f"test: {shown} ({count} example{'s' if count != 1 else ''})")
            for name, value in result.test.items():
                if is_matrix(name):
                    for line in format_matrix(f"test_{name}", value):
                        printer(line)
    return result


def _test_scores(evaluator: Evaluator, weights: dict, test_data: dict, batch: int,
                 terms: list) -> dict[str, Any]:
    """The test set's loss, each loss column and each metric, named as the epoch table names
    the training ones (`loss`, `kl`, `accuracy`)."""
    scores = evaluator(weights, test_data, batch)
    out: dict[str, Any] = {"loss": sum(scores[name] for name in evaluator.loss_names)}
    out.update({column: scores[name] for column, _, _, name in terms})
    out.update({name: scores[name] for name in evaluator.metric_names})
    return out
