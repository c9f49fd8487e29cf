"""Resuming a training run: what a checkpoint must hold to continue it exactly.

`netdsl train --out` (at the end, on Ctrl-C, and every `--checkpoint-every` epochs) writes a
`"resume"` dict into the checkpoint's meta beside the weights and the optimisers' state
(`optimizer/` arrays):

* where the run is: `epoch` (the one to run next, or the one in progress), `step` (batches of
  it already done: 0 unless an interrupt stopped it midway), `global_step` (batches of the whole
  run; it gives every objective's update count, so the schedules and Adam's bias correction,
  and the counter of the in-graph random ops);
* `rng`: the data-shuffling generator's `bit_generator.state` as the epoch began (its
  permutation is drawn again and the first `step` batches skipped);
* `fingerprint`: the model and the train settings the epoch/step arithmetic depends on (batch,
  the training data's size and checksum, the objectives and how often each runs); resuming
  with other ones is an error, not a silently different run;
* the history so far (a matrix such as `confusion` as nested lists, an array again on
  resume), the loss sums of a partial epoch, early stopping's best value and
  patience (its best weights are stored as `optimizer/__best__.<param>`), `--save-best`'s
  best value, and each reduce_on_plateau schedule's rate, best value and counters.

The meta of a checkpoint is untrusted input: `ResumeState.from_checkpoint` checks every field's
type and range and raises a netdsl Error naming the file, never a traceback.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Error

VERSION = 1
BEST_PREFIX = "__best__."            # early stopping's best weights, among the optimiser arrays
_MAX_INT = 1 << 62
_INIT_HINT = "--init {path} starts from its weights with fresh optimisers instead"


@dataclass
class ResumeState:
    """Everything `fit` needs to continue a run where a checkpoint left it."""

    epoch: int                          # the epoch to run next (or in progress), from 1
    step: int                           # batches of it already done
    global_step: int                    # batches of the whole run
    rng: dict                           # the shuffling generator's state as `epoch` began
    fingerprint: Mapping               # a dict, or a LazyFingerprint (fit's own states)
    history: list[dict] = field(default_factory=list)
    # A partial epoch's sums: loss per step, examples per step, loss per column term, and
    # each training metric's running confusion matrix.
    partial: dict = field(default_factory=dict)
    early: dict = field(default_factory=dict)        # {"best": float, "waited": int}
    save_best: dict | None = None                    # {"value": float, "epoch": int}
    finished: bool = False                           # early stopping ended the run
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    # Per training step, its reduce_on_plateau state (schedules.Plateau.state) or None.
    schedules: list = field(default_factory=list)
    source: str = "the resume state"                 # the checkpoint it came from, for errors

    def meta(self) -> dict:
        """The JSON-able dict stored under the checkpoint meta's "resume" key."""
        out = {"version": VERSION, "epoch": self.epoch, "step": self.step,
               "global_step": self.global_step, "rng": self.rng,
               "fingerprint": dict(self.fingerprint),
               "history": [{key: _to_json(value) for key, value in row.items()}
                           for row in self.history],
               "partial": self.partial, "early": self.early, "finished": self.finished,
               "schedules": self.schedules}
        if self.save_best is not None:
            out["save_best"] = self.save_best
        return out

    @classmethod
    def from_checkpoint(cls, path: str, model) -> "ResumeState":
        """Read and check the resume state of checkpoint `path` for `model`."""
        from .checkpoint import load_checkpoint, load_optimizer_state
        checkpoint = load_checkpoint(path)
        meta = checkpoint.meta
        hint = _INIT_HINT.format(path=path)
        saved_for = meta.get("model")
        if not isinstance(saved_for, str):
            raise Error(f"cannot resume from {path}: it names no model (it was not written "
                        "by `netdsl train --out`)", hint=hint)
        if saved_for != model.name:
            raise Error(f"cannot resume from {path}: it is a checkpoint of model "
                        f"{saved_for[:80]}, not {model.name}", hint="resume with the model it "
                        "was saved for (--model NAME), or " + hint)
        data = meta.get("resume")
        if not isinstance(data, dict):
            raise Error(f"cannot resume from {path}: it has no resume state (not written by "
                        "`netdsl train --out`, or by --save-best)", hint=hint)
        check = _Checker(path)
        if data.get("version") != VERSION:
            raise check.error("resume state of an unknown version")
        state = cls(epoch=check.integer(data, "epoch", 1), step=check.integer(data, "step", 0),
                    global_step=check.integer(data, "global_step", 0),
                    rng=check.mapping(data, "rng"), fingerprint=check.mapping(data, "fingerprint"),
                    history=check.history(data.get("history", [])),
                    partial=check.mapping(data, "partial", optional=True),
                    early=check.mapping(data, "early", optional=True),
                    save_best=check.mapping(data, "save_best", optional=True) or None,
                    finished=data.get("finished") is True,
                    schedules=check.listing(data, "schedules"))
        state.early = {"best": check.number(state.early, "best", np.inf),
                       "waited": check.integer(state.early, "waited", 0, default=0)}
        if state.save_best is not None:
            state.save_best = {"value": check.number(state.save_best, "value", None),
                               "epoch": check.integer(state.save_best, "epoch", 1)}
        model.check_weights(checkpoint.weights, source=path, meta=checkpoint.meta)
        state.weights = dict(checkpoint.weights)
        state.optimizer = load_optimizer_state(path)
        state.source = str(path)
        return state

    # -- in fit ----------------------------------------------------------------------------
    def check_against(self, expected: dict, path: str = "the checkpoint") -> None:
        """The run being resumed had the same model, batches and data as this one."""
        names = {"params": "the model's parameters", "batch": "the batch size",
                 "examples": "the number of training examples",
                 "data_crc": "the training data", "objectives": "the objectives (or `every`)",
                 "shuffle": "shuffle"}
        for key, what in names.items():
            if self.fingerprint.get(key) != expected[key]:
                was = self.fingerprint.get(key)
                detail = f" ({_short(was)} then, {_short(expected[key])} now)" \
                    if key in ("batch", "examples", "shuffle") else ""
                raise Error(f"cannot resume from {path}: {what} changed since it was saved"
                            f"{detail}, so its epoch and step would not be this run's",
                            hint="resume with the train settings and data it was saved with, "
                                 "or " + _INIT_HINT.format(path=path))
        per_epoch = expected["steps_per_epoch"]
        if self.step >= per_epoch or \
                self.global_step != (self.epoch - 1) * per_epoch + self.step:
            raise Error(f"cannot resume from {path}: its epoch {self.epoch}, step {self.step} "
                        f"and global step {self.global_step} do not agree with "
                        f"{per_epoch} steps per epoch", hint="the checkpoint's meta was edited "
                        "or damaged; " + _INIT_HINT.format(path=path))

    def restore(self, storage: dict[str, np.ndarray], parameters, rng: np.random.Generator,
                path: str = "the checkpoint") -> dict[str, np.ndarray] | None:
        """Write the optimisers' state into the plan's storage (in place: the compiled steps
        hold those arrays) and the generator's state into `rng`; return early stopping's best
        weights, if saved."""
        hint = "the optimiser or the model changed since it was saved; " + \
            _INIT_HINT.format(path=path)
        best = {name[len(BEST_PREFIX):]: array for name, array in self.optimizer.items()
                if name.startswith(BEST_PREFIX)}
        stored = {name: array for name, array in self.optimizer.items()
                  if not name.startswith(BEST_PREFIX)}
        wanted = [name for name in storage if name not in parameters]
        missing = [name for name in wanted if name not in stored]
        extra = [name for name in stored if name not in storage]
        if missing or extra:
            which = f"lacks {_names(missing)}" if missing else f"has {_names(extra)} besides"
            raise Error(f"cannot resume from {path}: its optimiser state {which} what this "
                        "run's optimisers keep", hint=hint)
        for name in wanted:
            array = np.asarray(stored[name])
            if array.shape != storage[name].shape or array.dtype.kind not in "fiu":
                raise Error(f"cannot resume from {path}: optimiser array '{name}' has shape "
                            f"{list(array.shape)}, this run's has {list(storage[name].shape)}",
                            hint=hint)
        for name in wanted:
            storage[name][...] = stored[name]
        for name in parameters:
            storage[name][...] = self.weights[name]
        try:
            rng.bit_generator.state = self.rng
        except (TypeError, ValueError, KeyError, OverflowError, AttributeError):
            raise Error(f"cannot resume from {path}: its random state is not a "
                        f"{type(rng.bit_generator).__name__} state", hint=hint) from None
        if set(best) == set(parameters) and all(
                best[name].shape == storage[name].shape for name in parameters):
            return {name: np.array(best[name], dtype=storage[name].dtype) for name in parameters}
        return None


class LazyFingerprint(Mapping):
    """`fingerprint(...)`, computed when first read: its CRC of the training data costs about
    0.4 ms per MB (2.7 ms of the MLP benchmark's 56 ms fit), and a fit that neither resumes nor
    saves a resume state never reads it.  Until then it holds the training data it will sum
    (the data as it is when read: change the arrays in place after `fit` and a saved resume
    state describes the changed data)."""

    def __init__(self, compute: Callable[[], dict]):
        self._compute: Callable[[], dict] | None = compute
        self._value: dict | None = None

    def _dict(self) -> dict:
        if self._value is None:
            self._value, self._compute = self._compute(), None
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return repr(self._dict()) if self._value is not None else "LazyFingerprint(not read)"


def fingerprint(model, config, train_data: dict[str, np.ndarray], objectives: list) -> dict:
    """What a resumed run must share with the one that saved it (see the module docstring)."""
    crc = 0
    for name in sorted(train_data):
        array = np.ascontiguousarray(train_data[name])
        crc = zlib.crc32(name.encode() + str(array.dtype).encode() + str(array.shape).encode(),
                         crc)
        crc = zlib.crc32(memoryview(array).cast("B"), crc)
    params = zlib.crc32(repr(sorted((name, tuple(shape)) for name, (shape, _) in
                                    model.parameter_shapes.items())).encode())
    from .data import num_examples
    examples = num_examples(train_data)
    return {"model": model.name, "params": params, "batch": config.batch,
            "examples": examples, "data_crc": crc, "shuffle": bool(config.shuffle),
            "steps_per_epoch": -(-examples // config.batch),
            "objectives": [[name or "", config.every(name)] for name in objectives]}


class _Checker:
    """Type and range checks of the resume meta; every failure is one clean Error."""

    def __init__(self, path: str):
        self.path = path

    def error(self, what: str) -> Error:
        return Error(f"cannot resume from {self.path}: {what}",
                     hint="the checkpoint's meta was edited or damaged; " +
                          _INIT_HINT.format(path=self.path))

    def integer(self, data: dict, key: str, low: int, default: int | None = None) -> int:
        value = data.get(key, default)
        if type(value) is not int or not low <= value <= _MAX_INT:
            raise self.error(f"its {key} is {_short(value)}, not a whole number from {low}")
        return value

    def number(self, data: dict, key: str, default) -> float:
        value = data.get(key, default)
        if type(value) not in (int, float) or np.isnan(value):
            raise self.error(f"its {key} is {_short(value)}, not a number")
        return float(value)

    def listing(self, data: dict, key: str) -> list:
        """An optional list (each item is checked by what reads it)."""
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.error(f"its {key} is {_short(value)}, not a list")
        return value

    def mapping(self, data: dict, key: str, optional: bool = False) -> dict:
        value = data.get(key, {} if optional else None)
        if not isinstance(value, dict):
            raise self.error(f"its {key} is {_short(value)}, not a dict")
        return value

    def history(self, rows: Any) -> list[dict]:
        """The rows, each value a number, None, or a matrix (nested lists: an array again)."""
        error = self.error("its history is not a list of rows of numbers")
        if not isinstance(rows, list) or not all(
                isinstance(row, dict) and all(isinstance(k, str) for k in row) for row in rows):
            raise error
        out = []
        for row in rows:
            out.append({})
            for key, value in row.items():
                if type(value) is list:
                    value = matrix_from_json(value)
                    if value is None:
                        raise error
                elif type(value) not in (int, float, type(None)):
                    raise error
                out[-1][key] = value
        return out


def _to_json(value: Any) -> Any:
    """A history value as JSON data: an array (a confusion matrix) as nested lists, a numpy
    scalar as a Python number."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


def matrix_from_json(value: list) -> np.ndarray | None:
    """Nested lists of numbers as the array `_to_json` stored (int64 or float64); None if
    they are not a rectangular array of numbers."""
    try:
        array = np.array(value)
    except ValueError:                      # ragged
        return None
    if array.dtype.kind == "i":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _names(names: list[str]) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def monitored(config, row: dict) -> tuple[str, float]:
    """(`--save-best`'s column, its score: lower is better): early stopping's monitor if set,
    else val_loss when there is validation data, else loss."""
    early = config.early_stopping or {}
    column = early.get("monitor") or ("val_loss" if "val_loss" in row else "loss")
    value = row.get(column, row["loss"])
    return column, (-value if early.get("mode") == "max" else value)


def partial_sums(partial: dict, steps: int, terms: int, source: str) -> tuple[list, list, list]:
    """A resumed partial epoch's loss sums (the module docstring), checked: they are meta."""
    out = []
    for key, length in (("totals", steps), ("counts", steps), ("terms", terms)):
        values = partial.get(key)
        if not isinstance(values, list) or len(values) != length or \
                not all(type(v) in (int, float) for v in values):
            raise Error(f"cannot resume from {source}: its partial-epoch {key} are not "
                        f"{length} numbers", hint="the checkpoint's meta was edited or damaged")
        out.append(list(values))
    return out[0], out[1], out[2]


def partial_metrics(partial: dict, metrics: dict, source: str) -> None:
    """Restore a resumed partial epoch's training metrics: each one's running confusion
    matrix, checked (the meta is untrusted).  A checkpoint saved before they were kept has
    none: its metrics then count only the steps after the resume."""
    saved = partial.get("metrics", {})
    for name, metric in metrics.items():
        value = saved.get(name) if isinstance(saved, dict) else []
        if value is None:
            continue
        matrix = matrix_from_json(value) if isinstance(value, list) else None
        if matrix is None or matrix.dtype != np.int64 or matrix.ndim != 2 or \
                matrix.shape[0] != matrix.shape[1] or (matrix.size and matrix.min() < 0):
            raise Error(f"cannot resume from {source}: its partial-epoch metrics are not "
                        "confusion matrices", hint="the checkpoint's meta was edited or damaged")
        metric.matrix = matrix


__all__ = ["BEST_PREFIX", "LazyFingerprint", "ResumeState", "fingerprint", "matrix_from_json", "monitored",
           "partial_metrics", "partial_sums"]
