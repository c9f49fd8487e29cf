"""`netdsl train --log run.csv` (or `run.jsonl`): the training history, one line per epoch.

Every column of the epoch table and more: each loss, `val_` columns, metrics, each objective's
learning rate, `seconds` and `examples_per_second`.  The file is rewritten whole and atomically
after every epoch (files.write_atomically), so at any moment, including after a kill, it holds
every finished epoch and no half line.  CSV has one column per number, in the order they first
appear (a matrix such as `confusion` is left out of CSV); JSON Lines keeps every value, arrays
as nested lists.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .files import check_output, write_atomically

EXTENSIONS = (".csv", ".jsonl")


def _plain(value: Any) -> Any:
    """A JSON-able copy: arrays as lists, numpy scalars as Python numbers, NaN/inf as strings
    (JSON has no literal for them)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class RunLog:
    """The log file of one training run; `write(history)` after every epoch."""

    def __init__(self, path: str | Path):
        self.path = check_output(path, "log", EXTENSIONS)
        self.kind = self.path.suffix.lower()[1:]

    def write(self, history: list[dict[str, Any]]) -> None:
        """Replace the file with every row of `history` (one dict per epoch)."""
        write_atomically(self.path, self.render(history), "log", EXTENSIONS)

    def render(self, history: list[dict[str, Any]]) -> str:
        if self.kind == "jsonl":
            return "".join(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n"
                           for row in history)
        columns: list[str] = []
        for row in history:
            columns += [k for k, v in row.items() if is_number(v) and k not in columns]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for row in history:
            writer.writerow([_plain(row[k]) if k in row else "" for k in columns])
        return text.getvalue()
