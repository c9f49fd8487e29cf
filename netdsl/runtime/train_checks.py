"""Every problem of a model's train section, found without training (`netdsl check`).

Reading the section (frontend/train_section.py `read_train_partly`) checks each key and value;
this goes on to what the values of the config it read name: that the data, validation and test
files exist (relative to the .net file; nothing is loaded) or are built-in data sets, that the
metrics have an `out` and a label to compare (runtime/metrics.py `metric_sources`, as training
does), that each schedule's arguments are right (runtime/schedules.py, as training builds it), and
that each `objective(...)` line names a loss declared `wrt` (runtime/steps.py, as
training does).  Problems are returned, not raised, so that check reports all of them at once
with the model's own.
"""
from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import Diagnostic, Error
from ..source import Span
from .train_config import CallValue, TrainConfig

# What load_data reads (runtime/data.py): a file of one of these types, or a folder.
_DATA_SUFFIXES = (".npz", ".npy", ".csv")


def train_problems(model, config: TrainConfig) -> list[Diagnostic]:
    """The problems of what `config` (`model`'s train section, as far as it could be read)
    names: data files, metrics and objective lines; empty when they are right."""
    problems: list[Diagnostic] = []
    for key in ("data", "validation", "test"):
        if not isinstance(getattr(config, key), float):     # test = 0.1: a share of data
            _collect(problems, check_data_source, getattr(config, key), model.base_dir,
                     config.spans.get(key))
    _collect(problems, _check_metrics, model, config)
    for name in [None] + [name for name in config.objectives
                          if "schedule" in config.objectives[name]]:
        _collect(problems, _check_schedule, config, name)
    for name in config.objectives:           # one diagnostic per wrong objective line
        _collect(problems, _check_objective, model, config, name)
    return problems


def in_file_order(problems: list[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics by line and column (those without a place last), as a reader goes."""
    return sorted(problems, key=lambda d: (d.span is None, d.span.line if d.span else 0,
                                           d.span.column if d.span else 0))


def _collect(problems: list[Diagnostic], check, *args: Any) -> None:
    try:
        check(*args)
    except Error as error:
        problems.extend(error.diagnostics)


def check_data_source(spec: Any, base_dir: str | Path, span: Span | None) -> None:
    """A `data = ...` value names a built-in data set (with its options) or an existing file
    of a type load_data reads, resolved against `base_dir`; nothing is loaded."""
    from .datasets import BUILTIN_DATASETS, load_builtin
    if spec is None or isinstance(spec, dict):
        return
    if isinstance(spec, CallValue):
        if spec.args:
            raise Error(f"write the options of data set '{spec.name}' by name: "
                        f"{spec.name}(option=value, ...)", span)
        if spec.name not in BUILTIN_DATASETS:
            load_builtin(spec.name, span)    # raises "unknown data set" with did-you-mean
        accepted = [p for p in inspect.signature(BUILTIN_DATASETS[spec.name]).parameters
                    if p != "base_dir"]
        for key in spec.kwargs:
            if key not in accepted:
                # load_builtin's own message: it checks the options before loading anything.
                load_builtin(spec.name, span, options={key: spec.kwargs[key]})
        return
    if not isinstance(spec, str):
        raise Error(f"data must be a data set name or a path in quotes, got {spec!r}", span)
    path = Path(spec)
    looks_like_name = path.suffix == "" and len(path.parts) == 1
    if looks_like_name and spec in BUILTIN_DATASETS:
        return
    resolved = path if path.is_absolute() else Path(base_dir) / path
    if not resolved.exists():
        if looks_like_name:
            load_builtin(spec, span)         # raises "unknown data set" with did-you-mean
        raise Error(f"data file not found: {resolved}", span,
                    hint=f"relative paths are resolved against {Path(base_dir)} (the .net "
                         f"file's folder)")
    if resolved.is_file() and resolved.suffix.lower() not in _DATA_SUFFIXES:
        raise Error(f"unsupported data file type '{resolved.suffix}': {resolved}", span,
                    hint="use .npz, .npy, .csv, or a folder of IDX or .npy files")


def _check_metrics(model, config: TrainConfig) -> None:
    """The metrics have an `out` to score and one label input to compare it with."""
    if config.metrics:
        from .train import _label_and_prediction
        _label_and_prediction(model, config)


def _check_schedule(config: TrainConfig, objective: str | None) -> None:
    """The schedule's arguments, as training builds it (runtime/steps.py build_plan); the
    steps per epoch are not known without the data, and no argument's check needs them."""
    from .schedules import make_schedule
    own = config.for_objective(objective)
    make_schedule(own.schedule, own.schedule_args, own.optimizer_spec().lr, 1, own.epochs,
                  own.spans.get("schedule"), positional=own.schedule_positional)


def _check_objective(model, config: TrainConfig, name: str) -> None:
    """`objective(name, ...)` names one of the model's objectives (losses declared `wrt`)."""
    from .steps import _check_objective_lines, objectives
    only = replace(config, objectives={name: config.objectives[name]})
    _check_objective_lines(only, objectives(model.training_forward), model.name)


__all__ = ["check_data_source", "in_file_order", "train_problems"]
