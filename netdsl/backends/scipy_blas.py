"""Load SciPy's `cython_blas`, the BLAS that Numba's compiled matrix products call, without
importing the rest of `scipy.linalg`.

Numba finds its gemm through `scipy.linalg.cython_blas` (its `__pyx_capi__` table), and netdsl
needs the same library to set BLAS's thread count (numba_cpu/blas_threads.py,
runtime/threads.py).  `import scipy.linalg.cython_blas` first runs `scipy.linalg/__init__`,
which imports all of scipy.linalg: 130-210 ms of every netdsl process that compiles or loads a
model, a fifth of `netdsl train`'s warm start.  The extension module itself loads in ~2 ms.

So, when nothing has imported `scipy.linalg` yet, `load_cython_blas` loads the extension from
its file in SciPy's `linalg` folder under its own name, `scipy.linalg.cython_blas`, exactly as
the import system would (`sys.modules` then holds it, and every later import of that name,
Numba's included, finds it there; importing `scipy.linalg` later works as before).  Anything
unexpected (no such file, SciPy laid out otherwise) falls back to the plain import.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
from types import ModuleType

NAME = "scipy.linalg.cython_blas"
# Held while loading: _load_alone puts the module in sys.modules before running it, and
# blas_library.preload loads it on a thread of its own while the compile may call this too.
_loading = threading.Lock()


def load_cython_blas() -> ModuleType:
    """SciPy's cython_blas module (ImportError without SciPy)."""
    with _loading:
        return _load()


def _load() -> ModuleType:
    module = sys.modules.get(NAME)
    if module is not None:
        return module
    if "scipy.linalg" not in sys.modules:
        try:
            module = _load_alone()
        except Exception:           # any surprise: the ordinary import below
            module = None
        if module is not None:
            return module
    return importlib.import_module(NAME)


def _load_alone() -> ModuleType | None:
    # scipy's own __init__ is light, and is imported through the import system first: the
    # extension's initialisation imports scipy._cyutility, which needs the `scipy` package.
    # Run straight from `find_spec`, this thread (blas_library.preload's) took that module's
    # lock and then waited for scipy's, while the main thread, importing numba (which imports
    # scipy), held scipy's and waited for scipy._cyutility's: Python's _DeadlockError in
    # `netdsl compile --forward`, 1 run in 30 on two busy cores.  Now this thread waits for
    # scipy's import to finish before it takes any lock of scipy's modules.
    try:
        scipy = importlib.import_module("scipy")
    except ImportError:
        return None
    folders = getattr(scipy, "__path__", None)
    if not folders:
        return None
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "linalg", "cython_blas" + suffix)
            if not os.path.isfile(path):
                continue
            loader = importlib.machinery.ExtensionFileLoader(NAME, path)
            module_spec = importlib.util.spec_from_file_location(NAME, path, loader=loader)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[NAME] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[NAME]
                raise
            return module
    return None


__all__ = ["load_cython_blas"]
