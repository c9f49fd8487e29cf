"""Loading training data, binding it to a model's inputs by name, splitting and batching it.

`load_data(spec, base_dir)` accepts:

* a built-in data set name (`xor`, `spirals`, `digits`, `mnist`; see `datasets.py`), or one
  called with options by name, `chars(path="text.txt", length=64)` (a train section's CallValue);
* `file.npz`: every key becomes an input name;
* `file.npy`: one array, named by the file's stem (`x.npy` feeds `in x`);
* `file.csv`: a header row names the columns, every other row is one example.  Columns whose
  names share a prefix followed by an index, `x0, x1, x2` or `x.0, x.1, x.2`, are stacked in
  index order into one input `x` of shape [N, k].  The dotted form always groups (`x.0` alone
  gives `x` [N, 1]); the undotted form groups only when two or more columns share the prefix, so
  a lone `y1` stays `y1`.  Any other column (`label`, `y`) is its own 1-D input.  A column (or
  group) whose every cell is written as an integer becomes int64, anything else float32;
* a folder of MNIST IDX files (`train-images-idx3-ubyte[.gz]` ...), or a folder of `.npy` files,
  one per input, each named by its stem.

Relative paths resolve against `base_dir`, the directory of the `.net` file.

Before an `.npy` array (alone or inside an `.npz`) is read, its header's shape and dtype are
checked against the bytes that can back it (the file, or the archive member's size) and against
the machine's memory (input_checks.py), so a 300-byte file that claims terabytes is an error,
not a MemoryError.
`bind_inputs` then refuses NaN and inf in float inputs (unless allowed), values of integer
inputs that are not whole numbers, ids and labels outside their range (runtime/input_checks.py)
and data with no examples.  `hold_out` sets the test share aside first (`test = 0.1`), then
`split` divides the rest into training and validation, both drawn with the train seed.
"""
from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Diagnostic, Error, did_you_mean
from ..source import Span
from .datasets import BUILTIN_DATASETS, is_mnist_folder, load_builtin, load_mnist
from .input_checks import (IndexRange, check_finite, check_index_ranges, check_npy_size,
                           check_npz_sizes, npy_header, sums_finite)
from .train_config import CallValue

DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}

# `x.3` (always a group) or `x3` (a group when siblings exist): prefix, optional dot, index.
_GROUPED_COLUMN = re.compile(r"^(?P<prefix>.*?[^\d.])(?P<dot>\.?)(?P<index>\d+)$")


def load_data(spec: Any, base_dir: str | Path = ".", span: Span | None = None) -> dict[str, np.ndarray]:
    """Load data from a built-in name, a .npz/.npy/.csv file or a folder (see module doc)."""
    if isinstance(spec, dict):
        return {str(key): np.asarray(value) for key, value in spec.items()}
    if isinstance(spec, CallValue):
        if spec.args:
            raise Error(f"write the options of data set '{spec.name}' by name: "
                        f"{spec.name}(option=value, ...)", span)
        return load_builtin(spec.name, span, base_dir=base_dir, options=spec.kwargs)
    text = str(spec)
    path = Path(text)
    looks_like_name = path.suffix == "" and len(path.parts) == 1
    if looks_like_name and text in BUILTIN_DATASETS:
        return load_builtin(text, span, base_dir=base_dir)
    resolved = path if path.is_absolute() else Path(base_dir) / path
    if not resolved.exists():
        if looks_like_name:
            load_builtin(text, span)  # raises "unknown data set" with did-you-mean
        raise Error(f"data file not found: {resolved}", span,
                    hint=f"relative paths are resolved against {Path(base_dir)}")
    if resolved.is_dir():
        return load_folder(resolved, span)
    suffix = resolved.suffix.lower()
    if suffix == ".npz":
        return load_npz(resolved, span)
    if suffix == ".npy":
        return {resolved.stem: load_npy(resolved, span)}
    if suffix == ".csv":
        return load_csv(resolved, span)
    raise Error(f"unsupported data file type '{resolved.suffix}': {resolved}", span,
                hint="use .npz, .npy, .csv, or a folder of IDX or .npy files")


def load_npz(path: Path, span: Span | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz archive by key."""
    try:
        check_npz_sizes(path, span)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise Error(f"cannot read {path}: {_reason(error)}", span,
                    hint="it should be written by numpy.savez with plain numeric arrays") from None
    if not arrays:
        raise Error(f"{path} holds no arrays", span)
    return arrays


def load_npy(path: Path, span: Span | None = None) -> np.ndarray:
    """The one array of an .npy file."""
    try:
        with open(path, "rb") as handle:
            shape, dtype, header = npy_header(handle)
        check_npy_size(f"{path}", shape, dtype, path.stat().st_size - header, span)
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise Error(f"cannot read {path}: {_reason(error)}", span,
                    hint="it should be written by numpy.save with a plain numeric array") from None


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_folder(folder: Path, span: Span | None = None) -> dict[str, np.ndarray]:
    """An MNIST IDX folder, or a folder of .npy files (one input each)."""
    if is_mnist_folder(folder):
        return load_mnist(folder, "train", span)
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise Error(f"data folder {folder} has neither MNIST IDX files nor .npy files", span,
                    hint="put one .npy per input (image.npy, label.npy) or the four MNIST IDX files there")
    return {file.stem: load_npy(file, span) for file in files}


def load_csv(path: Path, span: Span | None = None) -> dict[str, np.ndarray]:
    """A CSV with a header row; grouped columns stack into one input (see module doc)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows, line_numbers = [], []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines (often a trailing one) carry no example
                rows.append(row)
                line_numbers.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise Error(f"cannot read {path}: {_reason(error)}", span) from None
    if header is None or all(not name.strip() for name in header):
        raise Error(f"{path} is empty", span, hint="the first line must name the columns, e.g. x0,x1,label")
    names = [name.strip() for name in header]
    for index, name in enumerate(names):
        if not name:
            raise Error(f"{path}: column {index + 1} of the header has no name", span)
        if names.index(name) != index:
            raise Error(f"{path}: column '{name}' appears twice in the header", span)
    if not rows:
        raise Error(f"{path} has a header but no rows of data", span)
    for row, line in zip(rows, line_numbers):
        if len(row) != len(names):
            values = "1 value" if len(row) == 1 else f"{len(row)} values"
            raise Error(f"{path}:{line}: row has {values} but the header has "
                        f"{len(names)} columns", span)
    cells = np.array(rows, dtype=str)
    columns = {name: _parse_column(cells[:, index], path, name, index, line_numbers, span)
               for index, name in enumerate(names)}
    return _group_columns(columns, path, span)


def _parse_column(cells: np.ndarray, path: Path, name: str, index: int,
                  line_numbers: list[int], span: Span | None) -> np.ndarray:
    """One CSV column as int64 when every cell is an integer literal, else float32."""
    stripped = np.char.strip(cells)
    try:
        return stripped.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    try:
        return stripped.astype(np.float64).astype(np.float32)
    except ValueError:
        pass
    # Find the first bad cell in Python only on this failure path; the fast path stays vectorised.
    for row, cell in enumerate(stripped):
        try:
            float(cell)
        except ValueError:
            shown = f"'{cell}'" if cell else "an empty cell"
            raise Error(f"{path}:{line_numbers[row]}: column {index + 1} ('{name}'): "
                        f"{shown} is not a number", span) from None
    raise Error(f"{path}: column '{name}' could not be read as numbers", span)


def _group_columns(columns: dict[str, np.ndarray], path: Path, span: Span | None) -> dict[str, np.ndarray]:
    """Stack `x0, x1` / `x.0, x.1` columns into one [N, k] input; keep the others 1-D."""
    groups: dict[str, list[tuple[int, str, bool]]] = {}
    for name in columns:
        match = _GROUPED_COLUMN.match(name)
        if match:
            groups.setdefault(match["prefix"], []).append((int(match["index"]), name, bool(match["dot"])))
    result: dict[str, np.ndarray] = {}
    grouped: set[str] = set()
    for prefix, members in groups.items():
        if len(members) < 2 and not members[0][2]:
            continue  # a lone undotted `y1` keeps its own name
        if prefix in columns:
            raise Error(f"{path}: column '{prefix}' clashes with the column group "
                        f"{', '.join(name for _, name, _ in members)}", span,
                        hint=f"rename '{prefix}' or the grouped columns")
        indices = [index for index, _, _ in members]
        if len(set(indices)) != len(indices):
            raise Error(f"{path}: the column group '{prefix}' repeats an index: "
                        f"{', '.join(name for _, name, _ in members)}", span)
        members.sort()
        parts = [columns[name] for _, name, _ in members]
        dtype = np.int64 if all(part.dtype == np.int64 for part in parts) else np.float32
        result[prefix] = np.stack(parts, axis=1).astype(dtype)
        grouped.update(name for _, name, _ in members)
    for name, column in columns.items():
        if name not in grouped:
            result[name] = column
    return result


def num_examples(data: dict[str, np.ndarray]) -> int:
    """The length of the example (first) axis shared by every array."""
    return len(next(iter(data.values()))) if data else 0


def bind_inputs(data: dict[str, np.ndarray], input_specs: Sequence[tuple], *,
                data_span: Span | None = None, ranges: Sequence[IndexRange] = (),
                allow_nonfinite: bool = False) -> dict[str, np.ndarray]:
    """Check data against the model's inputs and return {input name: array of the declared dtype}.

    `input_specs` holds (name, dtype, shape[, span]) per `in` declaration; dtype is "f32", "i64", ...
    and shape a tuple of ints and symbol names whose first entry is the example (batch) axis.
    A trailing axis of size 1 is added or dropped when that is the only difference
    (a CSV `y` column feeds `in y: f32[B, 1]`).  `data_span` marks the `data =` line.
    The data must hold at least one example, no NaN or inf in a float input unless
    `allow_nonfinite`, and every input named in `ranges` (input_checks.index_ranges of the
    model's graph) within its range: ids below the vocabulary, labels below the classes.
    """
    problems: list[Diagnostic] = []
    bound: dict[str, np.ndarray] = {}
    spans: dict[str, Span | None] = {}
    for spec in input_specs:
        name, dtype, shape = spec[0], spec[1], tuple(spec[2])
        span = spec[3] if len(spec) > 3 and spec[3] is not None else data_span
        spans[name] = span
        if name not in data:
            available = ", ".join(sorted(data)) or "none"
            suggestion = did_you_mean(name, data)
            problems.append(Diagnostic(f"no data for input '{name}'", span,
                                       (suggestion + " " if suggestion else "") + f"the data has: {available}"))
            continue
        try:
            bound[name] = _conform(name, np.asarray(data[name]), dtype, shape, span)
        except Error as error:
            problems.extend(error.diagnostics)
    if problems:
        raise Error(problems)
    _check_shared_dims(bound, input_specs, spans, data_span)
    if bound and num_examples(bound) == 0:
        raise Error("the data has no examples (every input's first axis has length 0)",
                    data_span)
    if not allow_nonfinite:
        for name, array in bound.items():
            check_finite(name, array, data_span or spans.get(name))
    check_index_ranges(bound, list(ranges), spans)
    return bound


def _conform(name: str, array: np.ndarray, dtype: str, shape: tuple, span: Span | None) -> np.ndarray:
    """Reshape a trailing size-1 axis if needed, check fixed dims, and cast to the declared dtype."""
    declared = f"{dtype}[{', '.join(str(d) for d in shape)}]"
    if array.ndim == len(shape) + 1 and array.ndim >= 2 and array.shape[-1] == 1:
        array = array.reshape(array.shape[:-1])
    elif array.ndim + 1 == len(shape) and array.ndim >= 1 and shape[-1] == 1:
        array = array.reshape(array.shape + (1,))
    if array.ndim != len(shape) or array.ndim == 0:
        raise Error(f"input '{name}' is declared {declared} (rank {len(shape)}) but its data has "
                    f"shape {list(array.shape)} (rank {array.ndim})", span,
                    hint="the first axis of every input's data indexes the examples")
    for axis, (want, got) in enumerate(zip(shape, array.shape)):
        if axis > 0 and isinstance(want, (int, np.integer)) and want != got:
            raise Error(f"input '{name}' is declared {declared} but its data has shape "
                        f"{list(array.shape)}: axis {axis} is {got}, not {want}", span)
    return cast_array(array, dtype, name, span)


def cast_array(array: np.ndarray, dtype: str, name: str = "array", span: Span | None = None) -> np.ndarray:
    """Cast to f32/f64/i32/i64/bool, refusing casts that would change values."""
    if dtype not in DTYPES:
        raise Error(f"input '{name}' has unsupported element type '{dtype}'", span,
                    hint=f"use one of {', '.join(DTYPES)}")
    target = np.dtype(DTYPES[dtype])
    if array.dtype == target:
        return array
    if array.dtype.kind not in "biuf":
        raise Error(f"input '{name}' needs numbers but its data has type {array.dtype}", span)
    if target.kind in "iub" and array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise Error(f"input '{name}' is {dtype} but its data has non-integer values "
                        f"(e.g. {array[where]} at index {list(where)})", span,
                        hint="integer inputs (ids, class labels) hold whole numbers; declare the "
                             "input f32 if it is continuous")
    if target.kind == "b" and array.size and not np.isin(array, (0, 1)).all():
        raise Error(f"input '{name}' is bool but its data holds values other than 0 and 1", span)
    if target.kind == "i" and array.size and array.dtype.kind in "iuf":
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise Error(f"input '{name}' is {dtype} but its data has values outside "
                        f"[{info.min}, {info.max}]", span)
    with np.errstate(over="ignore", invalid="ignore"):
        result = array.astype(target)
    # One pass proves the cast made no inf (float64 data cast to f32: 0.06 against 0.40 ms
    # with the float64 sum this took, for the MLP benchmark's 1.6M values).
    overflowed = target.kind == "f" and array.size and not sums_finite(result)
    if overflowed:                      # only when the cast may have made an inf
        bad = np.isinf(result) & np.isfinite(array)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise Error(f"input '{name}' is {dtype} but its data has values too large for it "
                        f"(e.g. {array[where]} at index {list(where)})", span,
                        hint="scale the data, or declare the input f64")
    return result


def _check_shared_dims(bound: dict[str, np.ndarray], input_specs: Sequence[tuple],
                       spans: dict[str, Span | None], data_span: Span | None) -> None:
    """Every input has the same number of examples, and a symbol such as T has one size."""
    lengths = {name: len(array) for name, array in bound.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"'{name}' has {length}" for name, length in lengths.items())
        raise Error(f"inputs disagree on the number of examples: {listed}", data_span,
                    hint="every input's first axis indexes the same examples")
    seen: dict[str, tuple[str, int, int]] = {}
    for spec in input_specs:
        name, shape = spec[0], tuple(spec[2])
        for axis, symbol in enumerate(shape[1:], start=1):
            if not (isinstance(symbol, str) and symbol.isidentifier()):
                continue
            size = bound[name].shape[axis]
            if symbol in seen and seen[symbol][2] != size:
                other, other_axis, other_size = seen[symbol]
                raise Error(f"dimension {symbol} is {other_size} in input '{other}' (axis {other_axis}) "
                            f"but {size} in input '{name}' (axis {axis})", spans.get(name))
            seen.setdefault(symbol, (name, axis, size))


def split(data: dict[str, np.ndarray], fraction: float, seed: int | None = 0,
          span: Span | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Shuffle with `seed` and split into (train, validation); `fraction` is the training share.

    With fraction < 1 each side gets at least one example, and fewer than two examples are an
    error (`span`: the `split =` line): an empty validation set would report a val_loss of 0.
    fraction == 1 gives an empty validation set (zero-length arrays).
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise Error(f"split must be a fraction in (0, 1], got {fraction}", span,
                    hint="split = 0.8 keeps 80% for training and 20% for validation")
    total = num_examples(data)
    if fraction < 1.0 and total < 2:
        examples = "1 example" if total == 1 else f"{total} examples"
        raise Error(f"split = {fraction:g} of {examples} leaves no example for validation",
                    span, hint="use more data, or split = 1.0 to train on all of it without "
                               "a validation set")
    train_count = int(round(total * float(fraction)))
    if fraction < 1.0 and total >= 2:
        train_count = min(max(train_count, 1), total - 1)
    order = np.random.default_rng(seed).permutation(total)
    train_index, validation_index = order[:train_count], order[train_count:]
    return ({name: array[train_index] for name, array in data.items()},
            {name: array[validation_index] for name, array in data.items()})


def hold_out(data: dict[str, np.ndarray], fraction: float, seed: int | None = 0,
             span: Span | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the rest, the test set): `fraction` of the examples, drawn with `seed`, held out of
    training and validation (`test = 0.1`, `span` its line); each side gets at least one."""
    total = num_examples(data)
    if total < 2:
        examples = "1 example" if total == 1 else f"{total} examples"
        raise Error(f"test = {fraction:g} of {examples} leaves no example for training", span,
                    hint="use more data, or give separate test data (test = \"test.npz\")")
    return split(data, 1.0 - float(fraction), seed, span)


def batches(data: dict[str, np.ndarray], batch_size: int, shuffle: bool = True,
            rng: np.random.Generator | int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Yield dicts of `batch_size` examples; the last batch is shorter when sizes do not divide."""
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise Error(f"batch size must be a positive integer, got {batch_size!r}")
    total = num_examples(data)
    if shuffle:
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        order = generator.permutation(total)
    else:
        order = np.arange(total)
    for start in range(0, total, batch_size):
        index = order[start:start + batch_size]
        yield {name: array[index] for name, array in data.items()}


def num_batches(data: dict[str, np.ndarray], batch_size: int) -> int:
    """How many batches `batches` yields (counting the short last one)."""
    return -(-num_examples(data) // batch_size)
