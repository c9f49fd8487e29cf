"""The Numba side of the compile cache (backends/cache.py keeps the generated modules): Numba's
own cache files for each generated function (`__pycache__/nd_<key>.<function>-<line>.py311.nbi`
and `.nbc` beside the module, or under $NUMBA_CACHE_DIR), and how compiles are counted.

Numba loads its .nbi/.nbc files with pickle, so $NUMBA_CACHE_DIR, when set, must be private
like the cache directory itself (`check_cache_dir`).  A function's Numba cache files that fail
to load or save (empty, truncated, garbage, a directory) are discarded alone, with one note on
stderr, and the function compiles again (`guard`).  `LLVMCounter` counts Numba "numba:compile"
events (fired only when a dispatcher really compiles, never on a cache load): a cache hit is a
load with zero of them.
"""
from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

from ..cache import _remove, _shorten, note


# Bumped when the machine code netdsl caches changes meaning for the same source (2: parallel
# loops' gufuncs private to their caller, jit.py), so that no older entry is loaded.
OBJECT_FORMAT = 2


def toolchain() -> str:
    """What the compile cache key names for this target's compiler: Numba and its version,
    and netdsl's OBJECT_FORMAT."""
    import numba
    return f"numba {numba.__version__}; objects {OBJECT_FORMAT}"


def guard(module, module_path: Path) -> None:
    """Guard the cache loads and saves of every Numba dispatcher of a generated module."""
    for value in list(vars(module).values()):
        _guard(getattr(value, "dispatcher", value), module_path)   # separate.py's calls


def check_cache_dir() -> None:
    """$NUMBA_CACHE_DIR, where Numba then keeps the .nbi/.nbc pickles, must be private too."""
    from numba.core import config
    location = getattr(config, "CACHE_DIR", "")
    if not location or not os.path.isdir(location):
        return
    from ...userdirs import unsafe_reason
    problem = unsafe_reason(Path(location).resolve())
    if problem is not None:
        from ...errors import Error
        raise Error(f"Numba's cache directory (NUMBA_CACHE_DIR) {location} {problem}",
                    hint="Numba loads its cache files with pickle, so that directory must be "
                         f"yours alone: `chmod 700 {location}`, or unset NUMBA_CACHE_DIR")


def guard_function(dispatcher) -> None:
    """`guard` for one dispatcher outside a generated module (a library kernel that generated
    code calls separately, separate.py), once."""
    import inspect
    if not getattr(dispatcher, "_netdsl_guarded", False):
        _guard(dispatcher, Path(inspect.getfile(dispatcher.py_func)))


def _index(dispatcher) -> dict:
    """Numba's cache index of `dispatcher` (a key per saved signature), read from its file
    without loading any code; raises where Numba's internals are not what this expects."""
    return dispatcher._cache._cache_file._load_index()


def holds(dispatcher, signature: tuple) -> bool:
    """Whether Numba's cache holds `dispatcher` compiled for `signature` (without loading it);
    False where Numba's internals are not what this expects."""
    try:
        key = dispatcher._cache._index_key(signature, dispatcher.targetctx.codegen())
        return key in _index(dispatcher)
    except Exception:
        return False


def holds_any(function) -> bool:
    """Whether Numba's cache holds `function` (a dispatcher, or a cfunc with caching on) for
    any types (without loading it); False where Numba's internals are not what this expects."""
    try:
        return bool(_index(function))
    except Exception:
        return False


def separate_uncached(module) -> bool:
    """Whether a function that `module` (a generated module) calls separately, a library
    kernel or one of its own, has no entry at all in Numba's cache (a machine, or a cache
    directory, that never compiled it); False where Numba's internals are not what this
    expects."""
    for value in vars(module).values():
        dispatcher = getattr(value, "dispatcher", None)
        if dispatcher is None:
            continue
        try:
            if not _index(dispatcher):
                return True
        except Exception:
            return False
    return False


def _guard(dispatcher, module_path: Path) -> None:
    """Make a Numba dispatcher's cache treat a failing load or save as a damaged entry: its
    files are discarded, a note is printed, and Numba compiles (and saves) afresh."""
    from numba.core.caching import Cache
    from numba.core.dispatcher import Dispatcher
    if not isinstance(dispatcher, Dispatcher):
        return
    numba_cache = getattr(dispatcher, "_cache", None)
    if not isinstance(numba_cache, Cache):
        return
    dispatcher._netdsl_guarded = True
    _guard_cache(numba_cache, module_path)


def guard_cfunc(function) -> None:
    """`guard` for a Numba cfunc made with caching on but not yet compiled (own_gemm.py): its
    cache loads without Numba's registry refresh, and a damaged entry compiles again."""
    import inspect

    from numba.core.caching import Cache
    numba_cache = getattr(function, "_cache", None)
    if isinstance(numba_cache, Cache):
        _guard_cache(numba_cache, Path(inspect.getfile(function._pyfunc)))


def _guard_cache(numba_cache, module_path: Path) -> None:
    load, save = numba_cache.load_overload, numba_cache.save_overload

    def load_overload(sig, target_context):
        try:
            return _load_without_refresh(numba_cache, load, sig, target_context)
        except Exception as error:
            _discard_numba_files(numba_cache, module_path, error)
            return None                            # a miss: Numba compiles it

    def save_overload(sig, data):
        try:
            return save(sig, data)
        except Exception as error:
            _discard_numba_files(numba_cache, module_path, error)
        try:
            save(sig, data)
        except Exception:
            pass                                   # not cached this time; it still runs

    numba_cache.load_overload = load_overload
    numba_cache.save_overload = save_overload


def _load_without_refresh(numba_cache, load, sig, target_context):
    """Numba's `Cache.load_overload` without its `target_context.refresh()`: the refresh
    imports and installs every typing and lowering registry (0.2-0.5 s of a warm start here),
    which only compiling needs; rebuilding cached machine code needs Numba's runtime (NRT)
    alone.  A miss still compiles as before (Numba's compiler refreshes the contexts itself).
    Falls back to Numba's own method where its internals are not what this expects."""
    private = getattr(numba_cache, "_load_overload", None)
    guard_io = getattr(numba_cache, "_guard_against_spurious_io_errors", None)
    if private is None or guard_io is None:
        return load(sig, target_context)
    from numba.core.runtime import rtsys
    rtsys.initialize(target_context)
    with guard_io():
        return private(sig, target_context)
    return None                 # the guard swallowed a spurious I/O error: a miss


def _discard_numba_files(numba_cache, module_path: Path, error: Exception) -> None:
    """Discard one function's Numba cache files (its index and data files), with a note; all of
    the module's when Numba's internals are not what this expects."""
    index = getattr(getattr(numba_cache, "_cache_file", None), "_index_path", None)
    directory = Path(numba_cache.cache_path)
    if isinstance(index, str) and index.endswith(".nbi"):
        shown, pattern = index, glob.escape(Path(index).name[:-len(".nbi")]) + ".*"
    else:
        pattern = glob.escape(module_path.stem) + ".*"
        shown = str(directory / pattern)
    reason = _shorten(f"{type(error).__name__}: {error}".strip().rstrip(":"))
    note(f"discarded a damaged compile cache entry {shown} ({reason}); recompiling")
    for leftover in directory.glob(pattern):
        _remove(leftover)


def keyed_data_files() -> None:
    """Name each Numba cache data file after its index key rather than after the first number
    no entry of the index uses (once per process; jit.py calls it).

    Numba's `IndexDataCacheFile.save` reads the index, picks that number, writes the index,
    then the data.  Two processes saving two signatures of one function at once (two test
    workers, two `netdsl train` runs on a fresh cache) could pick the same number: the index
    then named one signature's file holding the other's code, which a later load ran.  It
    crashed workers of the suite (test_batched_matmul, 3 of 4 runs of tests/backends with
    tests/layers on two workers, at 43d9aaa too).  Named after the key, two saves of one key
    write one file (each atomically: Numba writes a temporary file and renames it) and two
    keys never share one; a save that loses the race for the index only drops the other's
    entry, which compiles again when next wanted."""
    from numba.core.caching import IndexDataCacheFile
    if getattr(IndexDataCacheFile, "_netdsl_keyed", False):
        return

    def save(self, key, data):
        overloads = self._load_index()
        # Numba's pattern takes an integer: 60 bits of the key's digest.
        data_name = self._data_name(int(hashlib.sha256(repr(key).encode()).hexdigest()[:15], 16))
        if overloads.get(key) != data_name:
            overloads[key] = data_name
            self._save_index(overloads)
        self._save_data(data_name, data)

    IndexDataCacheFile.save = save
    IndexDataCacheFile._netdsl_keyed = True


class LLVMCounter:
    """Context manager counting Numba compilations (not cache loads) while it is active."""

    def __init__(self):
        self.count = 0

    def __enter__(self) -> "LLVMCounter":
        from numba.core import event

        counter = self

        class _Listener(event.Listener):
            def on_start(self, ev):
                counter.count += 1

            def on_end(self, ev):
                pass

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> None:
        from numba.core import event
        event.unregister("numba:compile", self._listener)


__all__ = ["LLVMCounter", "check_cache_dir", "guard", "holds", "keyed_data_files", "toolchain"]
