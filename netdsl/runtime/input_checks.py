"""Checks of data before it is used: .npy headers against the bytes behind them, indices in
range, floats finite.

`check_npz_sizes` / `check_npy_size` read only an .npy header (shape and dtype, alone or inside
an .npz) and compare the bytes it claims with the bytes that can back it (the file, or the
archive member's stored and declared sizes; deflate expands at most 1032 times) and with the
machine's memory, so a 300-byte file that claims terabytes is an error, not a MemoryError.

`index_ranges(graph)` finds the integer inputs whose values are used as indices, and the range
[0, n) each must lie in:

* ids of an `Embedding` (the indices of `take`): n is the number of rows of the table;
* labels given to `one_hot`: n is the depth;
* class labels of `cross_entropy` (`softmax_cross_entropy`): n is the number of classes.

An input counts when it reaches the index operand directly or through ops that move values
without changing them (reshape, slice, transpose, concat, a cast, ...).  An index computed
from the inputs (`ids + 1`) is not checked here; the compiled kernels still refuse it with an
IndexError rather than read or write out of bounds (ops/indexing.py).

`check_index_ranges(arrays, ranges)` costs one min and one max per checked input (argwhere only
on failure), so the train loop checks the whole data set once, before the first step, and
inference checks each call's inputs.  `check_finite` refuses NaN and inf in float data with one
float64 sum (a finite sum proves every element finite; argwhere only on failure).
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import Diagnostic, Error
from ..ir.graph import Graph, Value
from ..source import Span

# Ops whose output holds the values of their data operands (positions of the operands listed),
# so an index that went through them is still the input's value.
_PASSTHROUGH = {"reshape": (0,), "expand_dims": (0,), "squeeze": (0,), "transpose": (0,),
                "slice": (0,), "broadcast_to": (0,), "identity": (0,), "stop_gradient": (0,),
                "cast": (0,), "concat": None, "where": (1, 2)}

NONFINITE_HINT = ("remove or impute those values, or set `allow_nonfinite = true` in the train "
                  "section to use them as they are")


@dataclass(frozen=True)
class IndexRange:
    """An input whose values index something: they must lie in [0, high)."""

    input: str
    high: int
    use: str                     # what the values are: "ids of emb.weight (20 rows)"
    span: Span | None            # the op that uses them
    hint: str = ""
    note: str = "used as indices here"


def index_ranges(graph: Graph) -> list[IndexRange]:
    """The inputs of `graph` used as indices, with their ranges (see the module docstring)."""
    found: dict[tuple, IndexRange] = {}
    for node in graph.nodes:
        use = _index_use(node)
        if use is None:
            continue
        operand, high, what, hint, note = use
        if not isinstance(high, (int, np.integer)):
            continue                      # a symbolic bound: the kernels' guard still holds
        for value in _sources(node.inputs[operand]):
            if value.kind == "input" and value.name and not value.name.startswith("__"):
                key = (value.name, int(high))
                found.setdefault(key, IndexRange(value.name, int(high), what, node.span, hint,
                                                 note))
    return list(found.values())


def _index_use(node) -> tuple[int, object, str, str, str] | None:
    """(operand, n, what the values are, hint, note) when `node` uses an operand as indices."""
    name = node.op.name
    if name == "take":
        table, axis = node.inputs[0], node.attrs.get("axis", 0)
        n = table.shape[axis % max(table.rank, 1)]
        owner = table.name if table.kind in ("param", "state") and table.name else "a table"
        return (1, n, f"ids of {owner} ({n} rows)",
                "ids count from 0 and must be below the Embedding's vocabulary size: raise "
                "the vocabulary (the first argument of Embedding) or remap the ids",
                "used as ids here")
    if name in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
        n = node.inputs[0].shape[-1]
        return (1, n, f"class labels of cross_entropy ({n} classes)",
                f"class labels count from 0: for labels 1..{n}, subtract 1 from them or give "
                f"the model {n + 1} outputs" if isinstance(n, int) else "",
                "used as class labels here")
    if name == "one_hot":
        n = node.attrs.get("depth")
        return (0, n, f"labels of one_hot (depth {n})",
                "one_hot(labels, depth) takes labels in [0, depth)", "used as labels here")
    return None


def _sources(value: Value) -> list[Value]:
    """The values that flow unchanged into `value` through passthrough ops (itself if none)."""
    result, stack, seen = [], [value], set()
    while stack:
        current = stack.pop()
        if current.id in seen:
            continue
        seen.add(current.id)
        producer = current.producer
        operands = _PASSTHROUGH.get(producer.op.name, ()) if producer is not None else ()
        if producer is None or operands == ():
            result.append(current)
            continue
        positions = range(len(producer.inputs)) if operands is None else operands
        stack.extend(producer.inputs[p] for p in positions if p < len(producer.inputs))
    return result


def check_index_ranges(arrays: Mapping[str, np.ndarray], ranges: list[IndexRange],
                       spans: Mapping[str, Span | None] | None = None,
                       what: str = "input") -> None:
    """Raise an Error naming the input, the first value outside its range and its position."""
    for check in ranges:
        array = arrays.get(check.input)
        if array is None:
            continue
        array = np.asarray(array)
        if array.size == 0 or array.dtype.kind not in "biuf":
            continue
        values = np.trunc(array) if array.dtype.kind == "f" else array   # as a cast truncates
        low, high = values.min(), values.max()
        if low >= 0 and high < check.high:          # NaN fails both comparisons
            continue
        bad = ~((values >= 0) & (values < check.high))
        where = [int(i) for i in np.argwhere(bad)[0]]
        value = array[tuple(where)]
        shown = int(value) if array.dtype.kind in "biu" else float(value)
        span = (spans or {}).get(check.input)
        notes = [(check.span, check.note)] if check.span is not None else []
        raise Error(Diagnostic(
            f"{what} '{check.input}' holds {shown} at index {where}, outside [0, {check.high}): "
            f"its values are the {check.use}", span, check.hint or None, notes))


def check_finite(name: str, array: np.ndarray, span: Span | None = None,
                 what: str = "input") -> None:
    """Raise an Error naming the first NaN or inf of a float array and its position."""
    array = np.asarray(array)
    if array.dtype.kind not in "fc" or array.size == 0:
        return
    with np.errstate(all="ignore"):
        if np.isfinite(np.add.reduce(array.reshape(-1), dtype=np.float64)):
            return
    bad = ~np.isfinite(array)
    if not bad.any():
        return                      # the float64 sum overflowed; every element is finite
    where = [int(i) for i in np.argwhere(bad)[0]]
    count = int(bad.sum())
    more = f" ({count} non-finite values in all)" if count > 1 else ""
    raise Error(f"{what} '{name}' holds {array[tuple(where)]} at index {where}{more}", span,
                NONFINITE_HINT)


# Deflate never expands data more than 1032 times; a member that claims more is forged.
_DEFLATE_RATIO = 1032


def npy_header(handle) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) from the header of an .npy stream, reading nothing else."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    return tuple(int(d) for d in shape), np.dtype(dtype), handle.tell()


def check_npz_sizes(path: Path, span: Span | None) -> None:
    """Every .npy member's header against its member's stored and declared sizes."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                shape, dtype, header = npy_header(member)
            stored = info.compress_size if info.compress_type == zipfile.ZIP_STORED \
                else info.compress_size * _DEFLATE_RATIO
            available = min(info.file_size, stored, path.stat().st_size * _DEFLATE_RATIO)
            check_npy_size(f"{path}: array '{info.filename[:-4]}'", shape, dtype,
                           available - header, span)


def check_npy_size(what: str, shape: tuple[int, ...], dtype: np.dtype, available: int,
                   span: Span | None) -> None:
    """An Error when an array's header claims more bytes than can back it or than fit."""
    claimed = math.prod(shape) * dtype.itemsize          # a Python int: no overflow
    described = f"{list(shape)} {dtype}"
    if claimed > max(available, 0):
        raise Error(f"{what}: its header claims a {described} array ({_bytes(claimed)}) but "
                    f"the file holds at most {_bytes(max(available, 0))} for it", span,
                    hint="the file is truncated or not what it says; write it again with "
                         "numpy.save / numpy.savez")
    limit = memory_limit()
    if limit is not None and claimed > limit:
        raise Error(f"{what}: a {described} array needs {_bytes(claimed)}, more than this "
                    f"machine's memory ({_bytes(limit)})", span,
                    hint="use a smaller data set, or split it into several files")


def memory_limit() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _bytes(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count} bytes" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"


__all__ = ["IndexRange", "NONFINITE_HINT", "check_finite", "check_index_ranges",
           "check_npy_size", "check_npz_sizes", "index_ranges", "memory_limit", "npy_header"]
