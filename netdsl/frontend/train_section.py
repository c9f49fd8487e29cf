"""The `train` section's syntax read into a checked `TrainConfig` (runtime/train_config.py).

Each `key = value` line becomes a Python value (literals, consts, bare names, calls as
`CallValue`) and is checked and stored by the runtime's `set_key`; every problem in the
section is reported at once, each at its key or value.
"""
from __future__ import annotations

from typing import Any

from ..errors import Diagnostics, Error, did_you_mean
from ..runtime.train_config import KEYS, CallValue, TrainConfig, check_monitor, set_key
from ..source import Span
from . import ast


def read_train(train: ast.Train | None, consts: dict[str, Any]) -> TrainConfig:
    """Read a train section; every problem in it is reported at once."""
    config, diagnostics = read_train_partly(train, consts)
    diagnostics.raise_if_any()
    return config


def read_train_partly(train: ast.Train | None,
                      consts: dict[str, Any]) -> tuple[TrainConfig, Diagnostics]:
    """The section's config with the keys that could be read, and the problems of the others
    (`netdsl check` goes on to check what the readable keys name: data files, metrics)."""
    config, diagnostics = TrainConfig(), Diagnostics()
    if train is None:
        return config, diagnostics
    seen: dict[str, Span | None] = {}
    for entry in train.entries:
        try:
            key, value = _entry(entry, consts)
            if key == "objective":           # one line per objective: checked by set_key
                set_key(config, key, value, entry.span)
                continue
            if key in seen:
                raise Error(f"train key '{key}' is set twice", entry.key_span or entry.span)
            seen[key] = config.key_spans[key] = entry.key_span or entry.span
            set_key(config, key, value, entry.value.span or entry.span)
        except Error as error:
            diagnostics.extend(error)
    try:
        check_monitor(config)
    except Error as error:
        diagnostics.extend(error)
    return config, diagnostics


def read_flag_value(key: str, text: str, consts: dict[str, Any] | None = None) -> Any:
    """A flag's value written as in a train section: `--optimizer "Adam(lr=1e-2)"`,
    `--schedule "step(every=5)"`, `--early-stopping "patience=3, monitor=val_loss"` (the
    call's name may be left out).  Errors name the flag, not a file position."""
    from .parser import parse
    name = "--" + key.replace("_", "-")
    source = text.strip()
    if key == "early_stopping" and not source.startswith("early_stopping"):
        source = f"early_stopping({source})"
    if key == "early_stopping":
        program = f"train Flag {{\n    {source}\n}}\n"
    else:
        program = f"train Flag {{\n    {key} = {source}\n}}\n"
    try:
        module = parse(program, file=name)
        train = next(item for item in module.items if isinstance(item, ast.Train))
        entries = [_entry(entry, consts or {}) for entry in train.entries]
    except (Error, StopIteration) as error:
        why = f": {error.diagnostics[0].message}" if isinstance(error, Error) else ""
        raise Error(f"{name}: cannot read {text!r} as a train-section value{why}", None,
                    hint={"optimizer": 'e.g. --optimizer "Adam(lr=1e-2)"',
                          "schedule": 'e.g. --schedule "cosine()"',
                          "early_stopping": 'e.g. --early-stopping "patience=3, '
                                            'monitor=val_loss"'}.get(key)) from None
    if len(entries) != 1 or entries[0][0] != key:
        raise Error(f"{name}: {text!r} is not one value for {key}")
    return entries[0][1]


def _entry(entry: ast.TrainEntry, consts: dict[str, Any]) -> tuple[str, Any]:
    if entry.key is None:
        call = entry.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                and call.func.id in ("early_stopping", "objective"):
            return call.func.id, _literal(call, consts)
        raise Error("a train section holds `key = value` lines (and early_stopping(...), "
                    "objective(...))", entry.span)
    if entry.key not in KEYS:
        raise Error(f"unknown train key '{entry.key}'", entry.key_span or entry.span,
                    did_you_mean(entry.key, KEYS) or f"train keys: {', '.join(KEYS)}")
    return entry.key, _literal(entry.value, consts)


def _literal(expr: ast.Expr, consts: dict[str, Any]) -> Any:
    """Train values: literals, consts, bare names (data set, metric names) and calls."""
    from .loader import eval_const
    if isinstance(expr, ast.Name):
        return consts.get(expr.id, expr.id)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        return CallValue(expr.func.id, tuple(_literal(a, consts) for a in expr.args),
                         {k.name: _literal(k.value, consts) for k in expr.kwargs})
    if isinstance(expr, (ast.List, ast.Tuple)):
        return [_literal(item, consts) for item in expr.items]
    return eval_const(expr, consts)
