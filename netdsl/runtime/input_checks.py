"""Checks of data before it is used: .npy headers against the bytes behind them, indices in
range, floats finite.

`check_npz_sizes` / `check_npy_size` read only an .npy header (shape and dtype, alone or inside
an .npz) and compare the bytes it claims with the bytes that can back it (the file, or the
archive member's stored and declared sizes; deflate expands at most 1032 times) and with the
machine's memory, so a 300-byte file that claims terabytes is an error, not a MemoryError.

Index ranges (`index_ranges`, `check_index_ranges`, re-exported here) live in
ir/index_ranges.py: the targets use them too, to name the input when a kernel refuses an index.

The train loop checks index ranges over the whole data set once, before the first step, and
inference checks each call's inputs.  `check_finite` refuses NaN and inf in float data with one
pass (`sums_finite`: a finite sum of squares, or sum, proves every element finite; argwhere
only on failure).
"""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import Error
from ..ir.index_ranges import IndexRange, check_index_ranges, index_ranges  # noqa: F401 (re-exported)
from ..source import Span

_BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
NONFINITE_HINT = ("remove or impute those values, or set `allow_nonfinite = true` in the train "
                  "section to use them as they are")


def sums_finite(array: np.ndarray) -> bool:
    """Whether one pass over a float array proves every element finite.  False only says
    that the pass met a NaN or an inf, or overflowed on large finite values: an exact test
    must tell which."""
    # float32 and float64 as a BLAS dot product with itself (NaN and inf carry through the
    # products and the sum): 73-82 against 215-275 us for the MLP benchmark's 1.6M floats
    # with a float32 sum, itself twice as fast as a float64 one.  Other types as a sum in
    # their own precision (float32 at least: float16 overflows at 65504).
    flat = array.reshape(-1)
    with np.errstate(all="ignore"):
        total = np.dot(flat, flat) if array.dtype in _BLAS_FLOATS else \
            np.add.reduce(flat, dtype=np.result_type(array.dtype, np.float32))
    return bool(np.isfinite(total))


def check_finite(name: str, array: np.ndarray, span: Span | None = None,
                 what: str = "input") -> None:
    """Raise an Error naming the first NaN or inf of a float array and its position."""
    array = np.asarray(array)
    if array.dtype.kind not in "fc" or array.size == 0 or sums_finite(array):
        return
    bad = ~np.isfinite(array)
    if not bad.any():
        return                      # the sum overflowed; every element is finite
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
