"""Learning-rate schedules: the learning rate as a function of the optimiser step.

A `Schedule` is called with the 0-based optimiser step (one step per batch) and returns the
learning rate for that step.  Units are chosen so each schedule matches the PyTorch scheduler it
is named after, used the way PyTorch's documentation uses it:

    constant()                         lr = base_lr
    step(every, gamma=0.1)             StepLR(step_size=every, gamma) stepped once per EPOCH:
                                       lr = base_lr * gamma ** (epoch // every)
    exponential(gamma)                 ExponentialLR(gamma) stepped once per EPOCH:
                                       lr = base_lr * gamma ** epoch
    cosine(total_steps=None, min_lr=0) CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)
                                       stepped once per BATCH; total_steps defaults to every
                                       step of training, and the rate stays at min_lr after it
                                       (PyTorch would rise again)
    warm_restarts(period, mult=1, min_lr=0)
                                       CosineAnnealingWarmRestarts(T_0=period, T_mult=mult,
                                       eta_min=min_lr) stepped per batch with the fractional
                                       epoch, scheduler.step(epoch + i / iters): period in epochs
    warmup(steps, then=constant())     linear warm-up over `steps` batches, base_lr * (s+1)/steps,
                                       then the inner schedule, started afresh at step 0 and
                                       given the remaining steps as its total
    reduce_on_plateau(factor=0.1, patience=10, monitor=val_loss, min_lr=0, threshold=1e-4,
                      cooldown=0)
                                       ReduceLROnPlateau(mode, factor, patience, threshold,
                                       threshold_mode="rel", cooldown, min_lr) stepped once per
                                       EPOCH with the epoch's `monitor` column; mode min for
                                       loss and val_loss, max for the metrics

Here epoch = step // steps_per_epoch.  `make_schedule` builds one from a `.net` call such as
`schedule = warmup(500, then=cosine())`, checking argument names and values.

Every schedule but reduce_on_plateau is a pure function of the step.  reduce_on_plateau's rate
follows the epoch table: `fit` gives its `Plateau` each epoch's row (`observe`), and its state
(`state()`, `load()`) travels in a checkpoint's resume state (runtime/resume.py).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Sequence

from ..errors import Error, did_you_mean
from ..source import Span
from .train_config import CallValue, monitor_mode


@dataclass(frozen=True)
class Schedule:
    """A named learning-rate schedule; call it with the 0-based step."""

    name: str
    base_lr: float
    rate: Callable[[int], float]
    # reduce_on_plateau's state, which the epoch rows move; None for the others.
    plateau: "Plateau | None" = None

    def __call__(self, step_number: int) -> float:
        return float(self.rate(int(step_number)))


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Error(f"{what} must be a positive integer, got {value!r}")
    return value


def _positive_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise Error(f"{what} must be a positive number, got {value!r}")
    return float(value)


def _non_negative_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise Error(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def constant(base_lr: float, *, steps_per_epoch: int = 1, total_steps: int | None = None) -> Schedule:
    """The same rate at every step."""
    return Schedule("constant", base_lr, lambda step_number: base_lr)


def step(base_lr: float, every: int, gamma: float = 0.1, *, steps_per_epoch: int = 1,
         total_steps: int | None = None) -> Schedule:
    """Multiply the rate by gamma every `every` epochs (PyTorch StepLR)."""
    every = _positive_int(every, "step(every=...)")
    gamma = _positive_number(gamma, "step(gamma=...)")
    return Schedule("step", base_lr,
                    lambda step_number: base_lr * gamma ** ((step_number // steps_per_epoch) // every))


def exponential(base_lr: float, gamma: float, *, steps_per_epoch: int = 1,
                total_steps: int | None = None) -> Schedule:
    """Multiply the rate by gamma every epoch (PyTorch ExponentialLR)."""
    gamma = _positive_number(gamma, "exponential(gamma=...)")
    return Schedule("exponential", base_lr,
                    lambda step_number: base_lr * gamma ** (step_number // steps_per_epoch))


def cosine(base_lr: float, total_steps: int | None = None, min_lr: float = 0.0, *,
           steps_per_epoch: int = 1) -> Schedule:
    """Half a cosine from base_lr down to min_lr over total_steps batches (CosineAnnealingLR)."""
    if total_steps is None:
        raise Error("cosine() needs total_steps when the number of epochs is unknown")
    total_steps = _positive_int(total_steps, "cosine(total_steps=...)")
    min_lr = _non_negative_number(min_lr, "cosine(min_lr=...)")

    def rate(step_number: int) -> float:
        progress = min(step_number, total_steps) / total_steps
        return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2

    return Schedule("cosine", base_lr, rate)


def warm_restarts(base_lr: float, period: float, mult: int = 1, min_lr: float = 0.0, *,
                  steps_per_epoch: int = 1, total_steps: int | None = None) -> Schedule:
    """Cosine annealing restarted every `period` epochs, each cycle `mult` times longer (SGDR)."""
    period = _positive_number(period, "warm_restarts(period=...)")
    mult = _positive_int(mult, "warm_restarts(mult=...)")
    min_lr = _non_negative_number(min_lr, "warm_restarts(min_lr=...)")

    def rate(step_number: int) -> float:
        epoch = step_number / steps_per_epoch
        # Walk the cycles instead of PyTorch's log formula: same cycle, no rounding at boundaries.
        start, length = 0.0, period
        while epoch >= start + length:
            start, length = start + length, length * mult
        return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * (epoch - start) / length)) / 2

    return Schedule("warm_restarts", base_lr, rate)


def warmup(base_lr: float, steps: int, then: Any = None, *, steps_per_epoch: int = 1,
           total_steps: int | None = None) -> Schedule:
    """Linear warm-up over `steps` batches, then `then`: a Schedule, a name, (name, args), or
    a call as written in a train section, `then=cosine(min_lr=0.01)`."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise Error(f"warmup(steps=...) must be an integer >= 0, got {steps!r}")
    remaining = None if total_steps is None else max(total_steps - steps, 1)
    if then is None:
        inner = constant(base_lr)
    elif isinstance(then, Schedule):
        inner = then
    else:
        if isinstance(then, CallValue):
            name, args, positional = then.name, then.kwargs, then.args
        elif isinstance(then, str):
            name, args, positional = then, {}, ()
        elif isinstance(then, tuple) and len(then) == 2 and isinstance(then[1], dict):
            (name, args), positional = then, ()
        else:
            raise Error(f"warmup(then=...) must be a schedule such as cosine(), got {then!r}")
        if name == "reduce_on_plateau":
            raise Error("warmup(then=reduce_on_plateau()) is not supported: reduce_on_plateau "
                        "follows the epoch table, not the step", hint="use reduce_on_plateau "
                        "on its own, or warm up into cosine(), step(...) or exponential(...)")
        inner = _build(name, _named(name, args, positional), base_lr, steps_per_epoch,
                       remaining)

    def rate(step_number: int) -> float:
        if step_number < steps:
            return base_lr * (step_number + 1) / steps
        return inner(step_number - steps)

    return Schedule(f"warmup+{inner.name}", base_lr, rate)


# PyTorch's ReduceLROnPlateau ignores a reduction smaller than this (its `eps`).
PLATEAU_EPS = 1e-8


class Plateau:
    """ReduceLROnPlateau's state and its `step(metrics)`, line for line (threshold_mode rel)."""

    def __init__(self, base_lr: float, factor: float, patience: int, monitor: str,
                 min_lr: float, threshold: float, cooldown: int):
        self.factor, self.patience, self.monitor = factor, patience, monitor
        self.min_lr, self.threshold, self.cooldown = min_lr, threshold, cooldown
        self.mode = monitor_mode(monitor)
        self.lr = base_lr
        self.best = math.inf if self.mode == "min" else -math.inf
        self.bad_epochs = 0
        self.cooldown_left = 0

    def observe(self, row: dict[str, Any]) -> None:
        """The end of an epoch whose table row is `row`: the rate of the next one."""
        self.step(float(row[self.monitor]))

    def step(self, current: float) -> None:
        if self._better(current):
            self.best, self.bad_epochs = current, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            lowered = max(self.lr * self.factor, self.min_lr)
            if self.lr - lowered > PLATEAU_EPS:
                self.lr = lowered
            self.cooldown_left, self.bad_epochs = self.cooldown, 0

    def _better(self, current: float) -> bool:
        if self.mode == "min":
            return current < self.best * (1.0 - self.threshold)
        return current > self.best * (self.threshold + 1.0)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (JSON: an infinite best is written as null)."""
        return {"lr": self.lr, "best": self.best if math.isfinite(self.best) else None,
                "bad_epochs": self.bad_epochs, "cooldown_left": self.cooldown_left}

    def load(self, state: Any, source: str) -> None:
        """Carry on from `state()` as read from checkpoint `source` (untrusted meta)."""
        def bad(what: str) -> Error:
            return Error(f"cannot resume from {source}: its reduce_on_plateau state {what}",
                         hint="the checkpoint's meta was edited or damaged")
        if not isinstance(state, dict):
            raise bad(f"is {state!r:.40}, not a dict")
        lr, best = state.get("lr"), state.get("best")
        if type(lr) not in (int, float) or not (math.isfinite(lr) and lr > 0):
            raise bad(f"has lr {lr!r:.40}, not a finite number > 0")
        if best is not None and (type(best) not in (int, float) or math.isnan(best)):
            raise bad(f"has best {best!r:.40}, not a number")
        counts = {}
        for key in ("bad_epochs", "cooldown_left"):
            value = state.get(key)
            if type(value) is not int or value < 0:
                raise bad(f"has {key} {value!r:.40}, not a whole number >= 0")
            counts[key] = value
        self.lr = float(lr)
        self.best = float(best) if best is not None else \
            (math.inf if self.mode == "min" else -math.inf)
        self.bad_epochs, self.cooldown_left = counts["bad_epochs"], counts["cooldown_left"]


def reduce_on_plateau(base_lr: float, factor: float = 0.1, patience: int = 10,
                      monitor: str = "val_loss", min_lr: float = 0.0, threshold: float = 1e-4,
                      cooldown: int = 0, *, steps_per_epoch: int = 1,
                      total_steps: int | None = None) -> Schedule:
    """Multiply the rate by `factor` when `monitor` has not improved for `patience` epochs
    (PyTorch ReduceLROnPlateau); which columns it may monitor is checked with the train
    section (train_config.check_monitor)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
            or not 0 < factor < 1:
        raise Error(f"reduce_on_plateau(factor=...) must be a number in (0, 1), got {factor!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise Error(f"reduce_on_plateau(patience=...) must be a whole number >= 0, got "
                    f"{patience!r}")
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
        raise Error(f"reduce_on_plateau(cooldown=...) must be a whole number >= 0, got "
                    f"{cooldown!r}")
    min_lr = _non_negative_number(min_lr, "reduce_on_plateau(min_lr=...)")
    threshold = _non_negative_number(threshold, "reduce_on_plateau(threshold=...)")
    if not isinstance(monitor, str):
        raise Error(f"reduce_on_plateau(monitor=...) must be a column such as val_loss, got "
                    f"{monitor!r}")
    plateau = Plateau(base_lr, float(factor), patience, monitor, min_lr, threshold, cooldown)
    return Schedule("reduce_on_plateau", base_lr, lambda step_number: plateau.lr, plateau)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step": step,
    "exponential": exponential,
    "cosine": cosine,
    "warm_restarts": warm_restarts,
    "warmup": warmup,
    "reduce_on_plateau": reduce_on_plateau,
}


def schedule_parameters(name: str) -> list[str]:
    """The argument names a user may give the schedule `name`, in positional order."""
    parameters = _signature(name).values()
    return [parameter.name for parameter in parameters
            if parameter.name != "base_lr" and parameter.kind is not inspect.Parameter.KEYWORD_ONLY]


@cache
def _signature(name: str):
    """The parameters of schedule `name`'s builder: read once (inspect.signature took ~0.1 ms
    a call, and every fit asked three times)."""
    return inspect.signature(SCHEDULES[name]).parameters


def make_schedule(name: str, args: dict[str, Any] | None, base_lr: float, steps_per_epoch: int,
                  epochs: int | None, span: Span | None = None, positional: Sequence[Any] = ()) -> Schedule:
    """Build a schedule by name from `.net` arguments; every mistake is an Error at `span`.

    `positional` holds arguments given without names (`step(5, 0.5)`), in parameter order.
    """
    try:
        steps_per_epoch = _positive_int(steps_per_epoch, "steps per epoch")
        _positive_number(base_lr, "the learning rate")
        total_steps = None if epochs is None else steps_per_epoch * _positive_int(epochs, "epochs")
        return _build(name, _named(name, args, positional), base_lr, steps_per_epoch,
                      total_steps)
    except Error as error:
        raise _at(error, span) from None


def _named(name: str, args: dict[str, Any] | None, positional: Sequence[Any]) -> dict[str, Any]:
    """The arguments of a call to schedule `name`, every one by its parameter's name."""
    _builder(name)
    named = dict(args or {})
    accepted = schedule_parameters(name)
    if len(positional) > len(accepted):
        raise Error(f"schedule '{name}' takes at most {len(accepted)} arguments, "
                    f"got {len(positional)}")
    for parameter, value in zip(accepted, positional):
        if parameter in named:
            raise Error(f"schedule '{name}' got argument '{parameter}' twice")
        named[parameter] = value
    return named


def _build(name: str, named: dict[str, Any], base_lr: float, steps_per_epoch: int,
           total_steps: int | None) -> Schedule:
    """Check argument names, fill in the training context, and call the builder."""
    builder = _builder(name)
    accepted = schedule_parameters(name)
    for key in named:
        if key not in accepted:
            suggestion = did_you_mean(key, accepted)
            listed = ", ".join(accepted) if accepted else "no arguments"
            raise Error(f"schedule '{name}' has no argument '{key}'",
                        hint=(suggestion + " " if suggestion else "") + f"it accepts: {listed}")
    signature = _signature(name)
    required = [key for key in accepted if signature[key].default is inspect.Parameter.empty]
    for key in required:
        if key not in named:
            raise Error(f"schedule '{name}' needs argument '{key}'",
                        hint=f"write {name}({', '.join(p + '=...' for p in required)})")
    if name == "cosine" and named.get("total_steps") is None:
        named["total_steps"] = total_steps
    context = {"steps_per_epoch": steps_per_epoch}
    if "total_steps" in signature and signature["total_steps"].kind is inspect.Parameter.KEYWORD_ONLY:
        context["total_steps"] = total_steps
    return builder(base_lr, **named, **context)


def _builder(name: str) -> Callable[..., Schedule]:
    """The builder registered as `name`, or an Error with did-you-mean."""
    if name not in SCHEDULES:
        suggestion = did_you_mean(name, SCHEDULES)
        raise Error(f"unknown schedule '{name}'",
                    hint=(suggestion + " " if suggestion else "") + f"schedules: {', '.join(SCHEDULES)}")
    return SCHEDULES[name]


def _at(error: Error, span: Span | None) -> Error:
    """The same error, placed at `span` where it had no position of its own."""
    if span is not None:
        for diagnostic in error.diagnostics:
            if diagnostic.span is None:
                diagnostic.span = span
    return Error(error.diagnostics)
