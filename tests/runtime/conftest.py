"""Helpers shared by the runtime tests: writing IDX files like MNIST's."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
               np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of an array: magic (0, 0, type, rank), big-endian dims, big-endian data."""
    array = np.asarray(array)
    big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = _TYPE_CODES[np.dtype(big_endian)]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(big_endian).tobytes()


def write_idx_file(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(array)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist_folder(folder: Path, train: int = 5, test: int = 3, compress: bool = False,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny MNIST-shaped folder; returns the raw arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, count in (("train", train), ("t10k", test)):
        if count == 0:
            continue
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        write_idx_file(folder / f"{part}-images-idx3-ubyte", images, compress)
        write_idx_file(folder / f"{part}-labels-idx1-ubyte", labels, compress)
        arrays[f"{part}_images"], arrays[f"{part}_labels"] = images, labels
    return arrays


@pytest.fixture
def mnist_folder(tmp_path):
    """A folder with 5 training and 3 test MNIST-format examples, and the arrays in it."""
    folder = tmp_path / "mnist"
    return folder, write_mnist_folder(folder)


class IdxTools:
    """The helpers above, handed to tests as a fixture (test modules never import conftest)."""

    idx_bytes = staticmethod(idx_bytes)
    write_idx_file = staticmethod(write_idx_file)
    write_mnist_folder = staticmethod(write_mnist_folder)


@pytest.fixture
def idx_tools():
    return IdxTools
