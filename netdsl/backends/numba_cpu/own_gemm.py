"""The C entry point of netdsl's own float32 products (gemm_nt.py, gemm_nn.py), which compiled
products call through the symbol blas_library.OWN_GEMM where blas_library.own_sgemm() holds
(own_entry.py: a trampoline, pointed at `entry()` once it is loaded).

One C function, reached by symbol like the BLAS's gemm, so that only a process that runs the
kernels compiles them (or loads them from Numba's cache: own_entry.load) and no product's
kernel types them into its own compile.  One rather than one per kernel: each C wrapper cost
~0.2 s of a cold compile.  The kernels are inlined into it (`inline="always"`, one call site
each), one LLVM module: Numba links a called function's module into its caller's and
optimises it again there, and the entry point's compile took 2.1 s with them as calls (three
levels deep), 1.0 s inlined.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import carray, types

from .builtins_inline import max2, min2
from .gemm_nn import gemm_nn
from .gemm_nt import dot_tiles, packed_until
from .gemm_pack import transpose
from .support import view

# Pointers to a, b and out (C-contiguous), M, N, K, the product's kind and the block of out:
# kind 0 is a [M, K] @ b [N, K]ᵀ, 1 a [M, K] @ b [K, N], 2 a [K, M]ᵀ @ b [K, N].
SIGNATURE = types.void(types.CPointer(types.float32), types.CPointer(types.float32),
                       types.CPointer(types.float32), types.int64, types.int64, types.int64,
                       types.int64, types.int64, types.int64, types.int64, types.int64)


# The columns of out one pass of gemm_nn's tiles covers, all of its rows, before the next:
# about PANEL_BYTES of b (K times the columns).  Within a pass the tiles of every 8 rows read
# the same columns of b again, from L2 (1 MB a core on a Zen 4); over all of N, a [1024, 1024]
# b is 4 MB, read again from L3 by every 8 rows.  Measured at one thread on the Zen 4 EPYC of
# 2026-12-06, whole against in passes, the two entry points alternated in one process (30
# rounds each): [128, 1024] @ [1024, 1024] 2,766 against 2,594 us, [128, 784] @ [784, 1024]
# 2,089 against 1,880, [1024, 128]ᵀ @ [128, 1024] 2,878 against 2,554, and a @ bᵀ, whose b is
# now transposed a pass at a time into a panel of that size, [128, 1024] @ [1024, 1024]ᵀ 2,927
# against 2,706; the MLP's products (K 128-784, N 256-784) within 3 %.  2^17 bytes measured
# the same, 2^19 lost a @ b's gain.  Each element still sums its K products in order: the
# outputs were identical, bit for bit.
PANEL_BYTES = 1 << 18


def _own_gemm(a, b, out, m, n, k, kind, m0, m1, n0, n1):
    """out[m0:m1, n0:n1] of the product `kind` of arrays given by their first elements.  a @ bᵀ
    runs where gemm_nt.packed_until says through b's rows transposed into a panel
    (gemm_pack.py) and gemm_nn's tiles, the columns left by the dot-product tiles; gemm_nn
    runs in passes of columns (PANEL_BYTES)."""
    c = carray(out, (m, n))
    # Columns a pass: whole 32-wide tiles (the panel's transposition takes sixteens).
    width = max2(32, PANEL_BYTES // (4 * k) // 32 * 32)
    # Every gemm_nn call is one call site with run-time values: literal arguments (a shift of
    # 0, transpose_a False) would compile it once more for each.
    b_rows = carray(b, (n, k))                # kind 0's b; unused by the others
    panel = carray(out, (m * n,))             # kind 0's panel, allocated below; unused else
    if kind == 0:
        a_rows = carray(a, (m, k))
        last = packed_until(m1 - m0, k, n0, n1)
        if last < n1:
            dot_tiles(a_rows, b_rows, c, m0, m1, last, n1)
        if last == n0:
            return
        left = a_rows
        width = min2(width, last - n0)
        panel = np.empty(k * width, np.float32)
        right = view(panel, 0, (k, width))    # typed here; each pass views its own columns
    else:
        left, right = carray(a, (k, m) if kind == 2 else (m, k)), carray(b, (k, n))
        last = n1
    start = n0
    while start < last:
        stop = min2(last, start + width)
        shift = 0
        if kind == 0:
            # b's rows start:stop as the panel's columns; out's column j is the panel's j - start.
            right = view(panel, 0, (k, stop - start))
            transpose(b_rows, start, stop, right)
            shift = start
        gemm_nn(left, right, shift, c, kind == 2, m0, m1, start, stop)
        start = stop


@lru_cache(maxsize=1)
def _function():
    """_own_gemm as a cfunc, as `@cfunc(SIGNATURE, cache=True)` makes it but not compiled yet,
    loaded from Numba's cache without its registry refresh (numba_cache.guard_cfunc: ~0.1 s of
    a warm start, which otherwise loads cached code without it)."""
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    from .numba_cache import guard_cfunc
    function = CFunc(_own_gemm, sigutils.normalize_signature(SIGNATURE), locals={}, options={})
    function.enable_caching()
    _stamp_with_kernels(function)
    guard_cfunc(function)
    return function


@lru_cache(maxsize=1)
def entry():
    """The entry point, compiled (or loaded from Numba's cache) on the first call."""
    function = _function()
    function.compile()
    return function


def cached() -> bool:
    """Whether Numba's cache holds the entry point for these kernels' files (without loading
    it)."""
    from .numba_cache import holds_any
    return holds_any(_function())


def _stamp_with_kernels(function) -> None:
    """The entry point takes gemm_nt.py's, gemm_nn.py's, gemm_pack.py's and tile_ir.py's code
    in (the kernels are not cached on their own: this is their one cache entry), but Numba
    checks only this file's stamp (modification time and size) before loading it from its
    cache: the kernels' files go into the stamp too, so that a change to them alone compiles
    it again."""
    import os

    from . import gemm_nn as nn_module
    from . import gemm_nt as nt_module
    from . import gemm_pack as pack_module
    from . import tile_ir as ir_module
    cache_file = getattr(getattr(function, "_cache", None), "_cache_file", None)
    stamp = getattr(cache_file, "_source_stamp", None)
    if stamp is None:                      # Numba's internals are not what this expects
        return
    kernels = tuple((os.stat(module.__file__).st_mtime, os.stat(module.__file__).st_size)
                    for module in (nt_module, nn_module, pack_module, ir_module))
    cache_file._source_stamp = (stamp, kernels)


__all__ = ["SIGNATURE", "cached", "entry"]
