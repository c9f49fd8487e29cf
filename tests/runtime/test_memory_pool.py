"""The memory pool a model's fits share (runtime/memory_pool.py): arrays as NumPy makes them,
memory handed on only once nothing refers to it, and a fit on handed-on memory training
exactly as one on fresh memory."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

import netdsl
from netdsl.runtime.memory_pool import MemoryPool
from netdsl.runtime.train import fit
from netdsl.runtime.train_config import with_overrides

SPECS = [((3, 5), np.float32), ((7,), np.int64), ((0, 4), np.float32), ((2, 2, 2), np.float64)]


def test_arrays_are_plain_aligned_contiguous_arrays():
    arrays = MemoryPool().arrays(SPECS)
    for array, (shape, dtype) in zip(arrays, SPECS):
        assert array.shape == shape and array.dtype == dtype
        assert array.flags.c_contiguous and array.flags.writeable and array.flags.aligned
        if array.size:
            assert array.ctypes.data % 64 == 0
    arrays[0][...] = 1.5                        # the arrays do not overlap
    arrays[1][...] = -1
    arrays[3][...] = 2.0
    assert (arrays[0] == 1.5).all() and (arrays[1] == -1).all() and (arrays[3] == 2.0).all()


def test_memory_is_handed_on_only_when_nothing_refers_to_it():
    pool = MemoryPool()
    pool.begin()
    first = pool.arrays(SPECS)
    address = first[0].ctypes.data
    kept = first[1]
    kept[...] = 42
    del first
    assert pool.spare_bytes == 0                # `kept` holds the block
    pool.begin()
    second = pool.arrays(SPECS)
    assert second[0].ctypes.data != address     # fresh memory: the old block is in use
    second[1][...] = 7
    assert (kept == 42).all()
    del kept
    gc.collect()
    assert pool.spare_bytes > 0
    pool.begin()
    third = pool.arrays(SPECS)
    assert third[0].ctypes.data == address      # the first block again
    assert pool.spare_bytes == 0
    pool.clear()                                # the held bytes go; given arrays stay
    third[0][...] = 3.0
    del third
    assert pool.spare_bytes == 0                # nothing is wanted back after a clear


def test_the_pool_keeps_no_more_than_one_fit_asked_for():
    pool = MemoryPool()
    pool.begin()
    blocks = [pool.arrays(SPECS) for _ in range(3)]     # one fit, three requests
    pool.begin()
    more = [pool.arrays(SPECS) for _ in range(3)]       # another fit meanwhile
    del blocks, more
    gc.collect()
    one = sum(a.nbytes for a in MemoryPool().arrays(SPECS))
    assert 3 * one <= pool.spare_bytes <= 3 * 64 * len(SPECS) + 3 * one


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _xor_fit(model):
    data = {"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32),
            "y": np.array([[0], [1], [1], [0]], np.float32)}
    config = with_overrides(model.train_config, {"epochs": 30, "batch": 3}, origin="test")
    return fit(model, model.init(seed=3), config, data=data, verbose=False)


def test_a_fit_on_handed_on_memory_trains_as_one_on_fresh_memory():
    model = netdsl.load(EXAMPLES / "xor.net")
    first = _xor_fit(model)
    expected = {name: array.copy() for name, array in first.weights.items()}
    history = [row["loss"] for row in first.history]
    addresses = {array.ctypes.data for array in first.weights.values()}
    del first
    gc.collect()
    assert model.memory_pool.spare_bytes > 0
    second = _xor_fit(model)                    # optimiser state zeroed, weights copied in
    assert {array.ctypes.data for array in second.weights.values()} == addresses
    assert [row["loss"] for row in second.history] == history
    for name, array in second.weights.items():
        assert np.array_equal(array, expected[name]), name
    third = _xor_fit(model)                     # `second` is kept: fresh memory, same numbers
    assert not addresses & {array.ctypes.data for array in third.weights.values()}
    for name, array in expected.items():
        assert np.array_equal(second.weights[name], array), name
        assert np.array_equal(third.weights[name], array), name
