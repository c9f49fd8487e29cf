"""The training loop's batches: `data.batches` without a dict or a new array per batch.

`Batcher.order(shuffle, rng)` draws an epoch's order exactly as `data.batches` does (one
`rng.permutation(examples)` per epoch when shuffling, so the generator's stream, resumes and the
non-finite watch's replays are unchanged), and `gather(order, number)` returns batch `number`
of it as a list of arrays, one per name: gathered with `ndarray.take(..., out=)` into buffers
allocated once per batch size (from the model's memory pool, memory_pool.py, when `fit` passes
it) and reused, or, unshuffled, views of the data (consecutive rows
of a C-contiguous array are one).  The arrays of a batch stay valid until the next `gather`:
the compiled step reads them during its call and keeps nothing.
"""
from __future__ import annotations

import numpy as np


class Batcher:
    """Batches of `batch_size` examples of `data[name]` for each of `names` (the last one
    shorter when the sizes do not divide)."""

    def __init__(self, data: dict[str, np.ndarray], batch_size: int, names: list[str],
                 pool=None):
        self.names = list(names)
        self.pool = pool                # where buffers come from (memory_pool.py), if given
        self.arrays = [np.ascontiguousarray(data[name]) for name in self.names]
        self.examples = len(next(iter(data.values()))) if data else 0
        self.batch_size = batch_size
        self.count = -(-self.examples // batch_size)
        self._buffers: dict[int, list[np.ndarray]] = {}

    def order(self, shuffle: bool, rng: np.random.Generator) -> np.ndarray | None:
        """The epoch's order of the examples: a permutation, or None for the stored order."""
        return rng.permutation(self.examples) if shuffle else None

    def size(self, number: int) -> int:
        """The number of examples in batch `number` (from 0)."""
        start = number * self.batch_size
        return min(start + self.batch_size, self.examples) - start

    def gather(self, order: np.ndarray | None, number: int) -> list[np.ndarray]:
        """Batch `number` (from 0) of the epoch whose order is `order` (what `order` returned:
        a permutation of the examples, or None): one array per name."""
        start = number * self.batch_size
        stop = min(start + self.batch_size, self.examples)
        if order is None:
            return [array[start:stop] for array in self.arrays]
        buffers = self._buffers.get(stop - start)
        if buffers is None:
            specs = [((stop - start,) + array.shape[1:], array.dtype) for array in self.arrays]
            buffers = self._buffers[stop - start] = self.pool.arrays(specs) \
                if self.pool is not None else [np.empty(*spec) for spec in specs]
        index = order[start:stop]
        # mode="clip": `order` is a permutation of the examples, so no index is out of range,
        # and NumPy's default mode ("raise") with `out=` gathers into a temporary first and
        # then copies it (34 against 10 us for the MLP's 128 rows of 784 floats).
        for array, buffer in zip(self.arrays, buffers):
            array.take(index, axis=0, out=buffer, mode="clip")
        return buffers

    def chunk(self, order: np.ndarray | None, number: int) -> dict[str, np.ndarray]:
        """Batch `number` as `data.batches` yields it: a dict by name (of reused arrays)."""
        return dict(zip(self.names, self.gather(order, number)))


__all__ = ["Batcher"]
