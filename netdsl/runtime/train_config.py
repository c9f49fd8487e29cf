"""How to train a model: the checked `TrainConfig` of a `train` section (LANGUAGE.md section 8).

The front end reads the section's syntax into it (frontend/train_section.py) with `set_key`;
every key may also be overridden from the command line or from `Model.fit(**options)`
(`with_overrides`), checked exactly like the key written in the file, its errors naming the flag.

Values are checked where they are read, so a wrong one is an error at its key (or naming its
flag), not a quiet surprise in training: lr a finite number > 0, weight_decay finite and >= 0,
clip_norm and clip_value finite and > 0, seed >= 0, batch and epochs >= 1, split in (0, 1],
the optimiser's own numbers (momentum, betas, eps, ...) in their ranges, test a fraction in
(0, 1) or data, and the monitor of early_stopping and of reduce_on_plateau one of loss, val_loss
and the metrics (with val_).  `allow_nonfinite = true` lets NaN and inf through the data checks
(runtime/data.py), which refuse them by default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import Error, did_you_mean
from ..source import Span

KEYS = ("data", "validation", "split", "test", "batch", "epochs", "optimizer", "lr", "schedule",
        "weight_decay", "clip_norm", "clip_value", "early_stopping", "metrics", "seed",
        "shuffle", "allow_nonfinite")

# What `objective(name, ...)` may set for one objective of a model with several (a GAN's
# `loss d_loss = ... wrt D`): its own optimiser, learning rate, schedule, decay and clipping,
# and `every = k`: it steps on every k-th batch only (WGAN's five critic steps per generator
# step is `objective(g_loss, every=5)`).
OBJECTIVE_KEYS = ("optimizer", "lr", "schedule", "weight_decay", "clip_norm", "clip_value",
                  "every")


@dataclass
class TrainConfig:
    """How to train a model; `spans` says where each key was written (for errors)."""

    data: Any = None                 # a built-in data set name, a path, or a dict of arrays
    validation: Any = None           # optional separate validation data
    split: float = 0.8
    # The test set, evaluated once after training: a fraction of `data` held out of training
    # and validation (`test = 0.1`), or separate data, as `data` (`test = "test.npz"`).
    test: Any = None
    batch: int = 32
    epochs: int = 10
    optimizer: str = "adam"
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    schedule: str = "constant"
    schedule_args: dict[str, Any] = field(default_factory=dict)
    schedule_positional: tuple = ()
    weight_decay: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None
    early_stopping: dict[str, Any] | None = None
    metrics: list[str] = field(default_factory=list)
    seed: int = 0
    shuffle: bool = True
    allow_nonfinite: bool = False    # let NaN and inf in the data through
    # Loss name -> the keys its `objective(...)` line sets, as written (checked on reading).
    objectives: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: dict[str, Span | None] = field(default_factory=dict)       # each key's value
    key_spans: dict[str, Span | None] = field(default_factory=dict)   # each key's name

    def for_objective(self, name: str | None) -> "TrainConfig":
        """The config objective `name` trains with: the section's keys, then its own."""
        own = self.objectives.get(name or "", {})
        if not own:
            return self
        config = replace(self, optimizer_options=dict(self.optimizer_options),
                         spans=dict(self.spans), objectives={})
        span = self.spans.get(f"objective {name}")
        if "optimizer" in own and "lr" not in own:
            config.optimizer_options.pop("lr", None)   # its optimiser's own (default) lr
        for key in ("optimizer", "lr", "schedule", "weight_decay", "clip_norm", "clip_value"):
            if key in own:
                set_key(config, key, own[key], span, f"objective({name}) {key}")
        return config

    def every(self, name: str | None) -> int:
        """Objective `name` steps on every k-th batch (1: every batch)."""
        return self.objectives.get(name or "", {}).get("every", 1)

    def optimizer_spec(self):
        """The OptimizerSpec (passes/optimizers.py) with weight decay and lr folded in."""
        from ..passes.optimizers import make_optimizer
        options = dict(self.optimizer_options)
        if self.weight_decay and "weight_decay" not in options:
            options["weight_decay"] = self.weight_decay
        try:
            spec = make_optimizer(self.optimizer, **options)
            _check_optimizer(spec)
            return spec
        except Error as error:
            raise Error(error.message, self.spans.get("optimizer"),
                        error.diagnostics[0].hint) from None


def _check_optimizer(spec) -> None:
    """The optimiser's numbers in the ranges PyTorch accepts (lr > 0 and finite here)."""
    def require(name: str, value, ok: bool, wanted: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not ok:
            raise Error(f"{spec.name} option {name} must be {wanted}, got {value!r}")

    require("lr", spec.lr, _is_number(spec.lr) and spec.lr > 0, "a finite number > 0")
    require("weight_decay", spec.weight_decay,
            _is_number(spec.weight_decay) and spec.weight_decay >= 0, "a finite number >= 0")
    require("momentum", spec.momentum, _is_number(spec.momentum) and spec.momentum >= 0,
            "a finite number >= 0")
    require("eps", spec.eps, _is_number(spec.eps) and spec.eps >= 0, "a finite number >= 0")
    require("alpha", spec.alpha, _is_number(spec.alpha) and 0 <= spec.alpha <= 1,
            "a number in [0, 1]")
    for name in ("beta1", "beta2"):
        value = getattr(spec, name)
        require(name, value, _is_number(value) and 0 <= value < 1, "a number in [0, 1)")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


_NUMBERS = {"split": float, "batch": int, "epochs": int, "weight_decay": float,
            "clip_norm": float, "clip_value": float, "seed": int, "lr": float, "shuffle": bool,
            "allow_nonfinite": bool}

# key -> (test, what the value must be) for the numbers with a range.
_RANGES = {
    "lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "weight_decay": (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "clip_norm": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "clip_value": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "split": (lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
    "batch": (lambda v: v >= 1, "at least 1"),
    "epochs": (lambda v: v >= 1, "at least 1"),
    "seed": (lambda v: v >= 0, "a whole number >= 0"),
}


@dataclass(frozen=True)
class CallValue:
    """`Adam(lr=1e-3)`, `cosine()`, `early_stopping(patience=3)` as written."""

    name: str
    args: tuple
    kwargs: dict


def set_key(config: TrainConfig, key: str, value: Any, span: Span | None,
            label: str | None = None) -> None:
    """Check one key's value and store it (shared by the file, the CLI and fit()).

    `label` names the value in messages: the key (default), or the flag it came from."""
    config.spans[key] = span
    label = label or key
    if key in _NUMBERS:
        value = _number(label, value, _NUMBERS[key], span)
        if key in _RANGES and not _RANGES[key][0](value):
            raise Error(f"{label} must be {_RANGES[key][1]}, got {value}", span)
        if key == "lr":
            config.optimizer_options["lr"] = value
            return
        setattr(config, key, value)
    elif key in ("data", "validation"):
        setattr(config, key, value)
    elif key == "test":
        config.test = _test_value(label, value, span)
    elif key == "optimizer":
        if isinstance(value, CallValue):
            if value.args:
                raise Error(f"write the options of {value.name} by name, e.g. "
                            f"{value.name}(lr=0.01)", span)
            lr = config.optimizer_options.get("lr")
            config.optimizer, config.optimizer_options = value.name, dict(value.kwargs)
            if lr is not None and "lr" not in value.kwargs:
                config.optimizer_options["lr"] = lr
        elif isinstance(value, str):
            config.optimizer = value
        else:
            raise Error(f"optimizer must be e.g. Adam(lr=1e-3), got {value!r}", span)
        config.optimizer_spec()             # check the name and options now
    elif key == "schedule":
        from .schedules import SCHEDULES
        name, args, positional = (value.name, value.kwargs, value.args) \
            if isinstance(value, CallValue) else (value, {}, ())
        if not isinstance(name, str):
            raise Error(f"schedule must be a name such as cosine() or step(every=5), got "
                        f"{value!r}", span)
        if name not in SCHEDULES:
            raise Error(f"unknown schedule '{name}'", span,
                        did_you_mean(str(name), SCHEDULES) or
                        f"schedules: {', '.join(SCHEDULES)}")
        config.schedule, config.schedule_args, config.schedule_positional = \
            name, dict(args), tuple(positional)
    elif key == "metrics":
        from .metrics import METRICS
        names = value if isinstance(value, list) else [value]
        for name in names:
            if not isinstance(name, str):
                raise Error(f"metrics must be names such as [accuracy, f1], got {value!r}",
                            span)
            if name not in METRICS:
                raise Error(f"unknown metric '{name}'", span,
                            did_you_mean(str(name), METRICS) or f"metrics: {', '.join(METRICS)}")
        config.metrics = list(names)
    elif key == "objective":
        _set_objective(config, value, span)
    elif key == "early_stopping":
        options = {"patience": 3, "monitor": "val_loss", "min_delta": 0.0}
        if isinstance(value, CallValue) and value.args:
            raise Error("write the options of early_stopping by name, e.g. "
                        "early_stopping(patience=3, monitor=val_loss)", span)
        given = value.kwargs if isinstance(value, CallValue) else {}
        for name in given:
            if name not in options:
                raise Error(f"early_stopping has no option '{name}'", span,
                            did_you_mean(name, options) or "options: patience, monitor, min_delta")
        options.update(given)
        patience, min_delta = options["patience"], options["min_delta"]
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise Error(f"early_stopping patience must be a whole number >= 0, got "
                        f"{patience!r}", span)
        if not _is_number(min_delta) or min_delta < 0:
            raise Error(f"early_stopping min_delta must be a finite number >= 0, got "
                        f"{min_delta!r}", span)
        if not isinstance(options["monitor"], str):
            raise Error(f"early_stopping monitor must be a name such as val_loss, got "
                        f"{options['monitor']!r}", span)
        options["min_delta"] = float(min_delta)
        config.early_stopping = options


def _test_value(label: str, value: Any, span: Span | None) -> Any:
    """`test`: a fraction in (0, 1) of `data` (a number, or a flag's text of one), or test
    data as `data` takes it."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value                            # a path or a built-in data set's name
    if isinstance(value, bool) or value is None:
        raise Error(f"{label} must be a fraction of the data such as 0.1, or test data, got "
                    f"{value!r}", span)
    if isinstance(value, (int, float)):
        if not (math.isfinite(value) and 0 < value < 1):
            raise Error(f"{label} must be a fraction in (0, 1) of the data, got {value}", span,
                        hint="test = 0.1 holds 10% of the data out of training and validation")
        return float(value)
    return value                                    # a data set call or arrays


def _set_objective(config: TrainConfig, value: Any, span: Span | None) -> None:
    """`objective(d_loss, optimizer=Adam(lr=2e-4), every=1)`: one objective's own keys."""
    if not isinstance(value, CallValue) or len(value.args) != 1 \
            or not isinstance(value.args[0], str):
        raise Error("objective takes the loss's name, then its own keys by name, e.g. "
                    "objective(d_loss, optimizer=Adam(lr=2e-4), every=1)", span)
    name = value.args[0]
    if name in config.objectives:
        raise Error(f"objective '{name}' is set twice", span)
    own: dict[str, Any] = {}
    for key, item in value.kwargs.items():
        if key not in OBJECTIVE_KEYS:
            raise Error(f"objective({name}) has no key '{key}'", span,
                        did_you_mean(key, OBJECTIVE_KEYS) or
                        f"an objective sets: {', '.join(OBJECTIVE_KEYS)}")
        if key == "every":
            item = _number(f"objective({name}) every", item, int, span)
            if item < 1:
                raise Error(f"objective({name}) every must be at least 1, got {item}", span)
        own[key] = item
    config.objectives[name] = own
    config.spans[f"objective {name}"] = span
    config.for_objective(name)           # check its keys now, at this line


def monitor_names(metrics: list[str]) -> list[str]:
    """What early_stopping and reduce_on_plateau can monitor: the number columns of the epoch
    table."""
    from .metrics import MATRICES
    scalars = [name for name in metrics if name not in MATRICES]     # a matrix, not a score
    return ["loss", "val_loss"] + scalars + [f"val_{name}" for name in scalars]


def monitor_mode(monitor: str) -> str:
    """"min" when a smaller `monitor` is better (a loss), "max" for accuracy, precision,
    recall, f1 and iou."""
    return "min" if monitor in ("loss", "val_loss") else "max"


def monitors(config: TrainConfig) -> list[tuple[str, str, Span | None]]:
    """(what, column, span) of every column the config watches: early_stopping's monitor and
    each reduce_on_plateau schedule's (the section's, then each objective's)."""
    found = []
    if config.early_stopping is not None:
        found.append(("early_stopping", config.early_stopping["monitor"],
                      config.spans.get("early_stopping")))
    configs = [config] + [config.for_objective(name) for name in config.objectives
                          if "schedule" in config.objectives[name]]
    for each in configs:
        if each.schedule == "reduce_on_plateau":
            monitor = each.schedule_args.get("monitor", "val_loss")
            if "monitor" not in each.schedule_args and len(each.schedule_positional) > 2:
                monitor = each.schedule_positional[2]
            found.append(("reduce_on_plateau", monitor, each.spans.get("schedule")))
    return found


def check_monitor(config: TrainConfig) -> None:
    """Each monitor names a column (checked once all the keys are read)."""
    names = monitor_names(config.metrics)
    for what, monitor, where in monitors(config):
        if not isinstance(monitor, str):
            continue                      # the schedule's own check says what it must be
        if monitor not in names:
            raise Error(f"{what} cannot monitor '{monitor}': it is not a column of the "
                        f"training table", where,
                        did_you_mean(monitor, names) or f"it can monitor: {', '.join(names)}")
    if config.early_stopping is not None:
        config.early_stopping["mode"] = monitor_mode(config.early_stopping["monitor"])


def check_validation_monitors(config: TrainConfig, has_validation: bool) -> None:
    """Without validation data the val_ columns are never filled: watching one would be
    silent, so it is an error before training."""
    if has_validation:
        return
    for what, monitor, span in monitors(config):
        if isinstance(monitor, str) and monitor.startswith("val_"):
            raise Error(f"{what} monitors {monitor}, but there is no validation data "
                        f"(split = {config.split:g})", span,
                        hint=f"monitor={monitor[4:]} (the training column), or give a "
                             "validation set or a split below 1")


def _number(key: str, value: Any, kind: type, span: Span | None) -> Any:
    """`value` as a `kind` (int, float or bool); `key` names it in messages."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise Error(f"{key} must be true or false, got {value!r}", span)
    if isinstance(value, str):
        text = value
        try:
            value = int(text) if kind is int and text.strip().lstrip("+-").isdigit() \
                else float(text)
        except (ValueError, OverflowError):
            raise Error(f"{key} must be a number, got '{text}'", span) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Error(f"{key} must be a number, got {value!r}", span)
    if kind is int:
        if isinstance(value, float) and not (math.isfinite(value) and value == int(value)):
            raise Error(f"{key} must be a whole number, got {value}", span)
        return int(value)
    try:
        return float(value)
    except OverflowError:
        raise Error(f"{key} must be a finite number, got {value}", span) from None


def with_overrides(config: TrainConfig, overrides: dict[str, Any],
                   origin: str = "command line") -> TrainConfig:
    """A copy with keys overridden (`--epochs 3`, `fit(lr=0.1)`), each checked."""
    config = replace(config, optimizer_options=dict(config.optimizer_options),
                     spans=dict(config.spans), key_spans=dict(config.key_spans))
    lr, optimizer = overrides.get("lr"), overrides.get("optimizer")
    if lr is not None and isinstance(optimizer, CallValue) and "lr" in optimizer.kwargs \
            and optimizer.kwargs["lr"] != lr:
        # Both are the learning rate; one would be dropped without a word.
        names = ("--lr", "--optimizer") if origin == "command line" else ("lr", "optimizer")
        where = "" if origin == "command line" else f" ({origin})"
        raise Error(f"{names[0]} {lr} and {names[1]} {optimizer.name}(lr="
                    f"{optimizer.kwargs['lr']}) give two learning rates{where}",
                    hint=f"give it once: {names[0]}, or lr= inside {names[1]}")
    for key, value in overrides.items():
        if value is None:
            continue
        config.key_spans.pop(key, None)         # no longer what the file says
        if key not in KEYS:
            raise Error(f"unknown training option '{key}' ({origin})",
                        hint=did_you_mean(key, KEYS) or f"options: {', '.join(KEYS)}")
        if key == "metrics" and isinstance(value, str):
            # `accuracy,f1`, or as the train section writes it: `[accuracy, f1]`.
            text = value.strip()
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            value = [m.strip() for m in text.split(",") if m.strip()]
        label = f"--{key.replace('_', '-')}" if origin == "command line" else \
            f"{key} (in {origin})"
        set_key(config, key, value, None, label)
    check_monitor(config)
    return config
