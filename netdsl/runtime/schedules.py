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

Here epoch = step // steps_per_epoch.  `make_schedule` builds one from a `.net` call such as
`schedule = warmup(500, then=cosine())`, checking argument names and values.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import Error, did_you_mean
from ..source import Span


@dataclass(frozen=True)
class Schedule:
    """A named learning-rate schedule; call it with the 0-based step."""

    name: str
    base_lr: float
    rate: Callable[[int], float]

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
    """Linear warm-up over `steps` batches, then `then` (a Schedule, a name, or (name, args))."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise Error(f"warmup(steps=...) must be an integer >= 0, got {steps!r}")
    remaining = None if total_steps is None else max(total_steps - steps, 1)
    if then is None:
        inner = constant(base_lr)
    elif isinstance(then, Schedule):
        inner = then
    else:
        name, args = (then, {}) if isinstance(then, str) else then
        inner = _build(name, dict(args), base_lr, steps_per_epoch, remaining)

    def rate(step_number: int) -> float:
        if step_number < steps:
            return base_lr * (step_number + 1) / steps
        return inner(step_number - steps)

    return Schedule(f"warmup+{inner.name}", base_lr, rate)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step": step,
    "exponential": exponential,
    "cosine": cosine,
    "warm_restarts": warm_restarts,
    "warmup": warmup,
}


def schedule_parameters(name: str) -> list[str]:
    """The argument names a user may give the schedule `name`, in positional order."""
    parameters = inspect.signature(SCHEDULES[name]).parameters.values()
    return [parameter.name for parameter in parameters
            if parameter.name != "base_lr" and parameter.kind is not inspect.Parameter.KEYWORD_ONLY]


def make_schedule(name: str, args: dict[str, Any] | None, base_lr: float, steps_per_epoch: int,
                  epochs: int | None, span: Span | None = None, positional: Sequence[Any] = ()) -> Schedule:
    """Build a schedule by name from `.net` arguments; every mistake is an Error at `span`.

    `positional` holds arguments given without names (`step(5, 0.5)`), in parameter order.
    """
    try:
        steps_per_epoch = _positive_int(steps_per_epoch, "steps per epoch")
        _positive_number(base_lr, "the learning rate")
        total_steps = None if epochs is None else steps_per_epoch * _positive_int(epochs, "epochs")
        _builder(name)
        named = dict(args or {})
        accepted = schedule_parameters(name)
        if len(positional) > len(accepted):
            raise Error(f"schedule '{name}' takes at most {len(accepted)} arguments, "
                        f"got {len(positional)}", span)
        for parameter, value in zip(accepted, positional):
            if parameter in named:
                raise Error(f"schedule '{name}' got argument '{parameter}' twice", span)
            named[parameter] = value
        return _build(name, named, base_lr, steps_per_epoch, total_steps)
    except Error as error:
        raise _at(error, span) from None


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
    signature = inspect.signature(builder).parameters
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
