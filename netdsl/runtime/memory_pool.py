"""Memory a model's fits hand on to its next fit: storage and batch buffers without page faults.

Every `fit` binds its steps to storage of its own (a copy of the weights, zeroed optimiser
state; steps.build_plan) and gathers batches into buffers of its own (batcher.py), and the
result keeps that storage (`FitResult.weights` are the run's own arrays).  When a caller fits
the same model again (a notebook, a sweep, the fit benchmark) after dropping the last result,
the allocator often gives the new arrays fresh pages from the kernel rather than the ones just
freed: glibc returns large freed blocks to the system (a block above its mmap threshold, or
the top of the heap above its trim threshold), and each fresh page faults on first touch,
~4 us in this VM.  Measured on the MLP benchmark's fit (784-256-256-10, Adam, 48 steps of
128, two threads) in a process that also ran the benchmark's other contenders: 880 faults a
fit and 31.4 ms, against none and 28.9 ms with the pool; in a process that also ran the step
alone, 1,262 faults and 33.0 ms against none and 29.4 ms.

`MemoryPool.arrays(specs)` gives arrays whose memory goes back to the pool, not to the
allocator, once nothing refers to them: they are views of one `_Block` whose `__del__` hands
its bytes to the pool, and the next request for that many bytes takes them back, already
resident.  fit asks for the weights in one block, each step's optimiser state in another and
the batch buffers in a third, so a caller who keeps the trained weights keeps their block
alone (a block per array added ~0.3 ms to the MLP fit's 1.8 ms setup).  The pool keeps at
most what one fit (from `begin()` on) asked for of each size: no more than the largest fit's
storage, while its model lives or until `clear()`.  The arrays are ordinary C-contiguous, writeable, 64-byte
aligned ndarrays whose `base` is the block (NumPy's `resize` refuses them, as any view).
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import numpy as np

ALIGN = 64              # bytes: a cache line, and a whole AVX-512 vector


class MemoryPool:
    """Blocks of bytes, by size, that arrays it gave out have returned (see above)."""

    def __init__(self) -> None:
        self._free: dict[int, list[np.ndarray]] = {}     # nbytes -> spare raw blocks
        self._asked: dict[int, int] = {}                # nbytes -> blocks given since begin()
        self._wanted: dict[int, int] = {}               # nbytes -> most given between begins

    def begin(self) -> None:
        """A new fit starts: what it asks for from here on is what the pool keeps for the
        next one."""
        self._asked = {}

    def arrays(self, specs: Sequence[tuple[tuple[int, ...], np.dtype]]) -> list[np.ndarray]:
        """An uninitialised C-contiguous array per (shape, dtype), all in one block (from the
        pool when it holds one of that size), each at a 64-byte boundary."""
        layout, nbytes = [], 0
        for shape, dtype in specs:
            dtype = np.dtype(dtype)
            size = math.prod(shape) * dtype.itemsize      # np.prod: ~5 us an array
            layout.append((nbytes, size, shape, dtype))
            nbytes += -(-size // ALIGN) * ALIGN
        if nbytes == 0:
            return [np.empty(shape, dtype) for _, _, shape, dtype in layout]
        asked = self._asked[nbytes] = self._asked.get(nbytes, 0) + 1
        self._wanted[nbytes] = max(self._wanted.get(nbytes, 0), asked)
        block = np.asarray(_Block(self._take(nbytes), self))        # its base: the _Block
        return [block[start:start + size].view(dtype).reshape(shape)
                for start, size, shape, dtype in layout]

    def _take(self, nbytes: int) -> np.ndarray:
        spare = self._free.get(nbytes)
        if spare:
            try:
                return spare.pop()
            except IndexError:              # another thread took the last one meanwhile
                pass
        raw = np.empty(nbytes + ALIGN, np.uint8)
        start = -raw.ctypes.data % ALIGN
        return raw[start:start + nbytes]

    def _give(self, raw: np.ndarray) -> None:
        spare = self._free.setdefault(raw.nbytes, [])
        if len(spare) < self._wanted.get(raw.nbytes, 0):
            spare.append(raw)

    @property
    def spare_bytes(self) -> int:
        """Bytes held for the next request."""
        return sum(raw.nbytes for spare in self._free.values() for raw in spare)

    def clear(self) -> None:
        """Give the held bytes back to the allocator (a caller done with fitting this model
        who keeps the model: `model.memory_pool.clear()`); arrays given out are untouched."""
        self._free = {}
        self._wanted = {}


class _Block:
    """The owner of one request's bytes: NumPy views it through `__array_interface__` and
    keeps it as the base of the request's arrays; when the last of them goes, its bytes go
    back to the pool."""

    __slots__ = ("__array_interface__", "pool", "raw")

    def __init__(self, raw: np.ndarray, pool: MemoryPool):
        self.raw = raw
        self.pool = weakref.ref(pool)
        self.__array_interface__ = {"shape": (raw.nbytes,), "typestr": "|u1",
                                    "data": (raw.ctypes.data, False), "version": 3}

    def __del__(self):
        pool = self.pool()
        if pool is not None:
            pool._give(self.raw)


__all__ = ["MemoryPool"]
