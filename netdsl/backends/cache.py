"""The compile cache: generated modules in a content-addressed directory, compiled by Numba with
`cache=True` so that compiling an unchanged model again does not invoke LLVM.

Key: sha256 of the generated source (which spells out every kernel, inlined scalar constant and
option), the target, the Python, NumPy and Numba versions, and a fingerprint of netdsl's own op
and backend sources (emitted lines call library kernels defined beside the ops, whose changes
the generated text would not show).  The module is written once, atomically (temporary file +
rename), as `<dir>/nd_<key>.py` and never rewritten: Numba's cache index beside it, in
`__pycache__`, is keyed on the file's modification time.  Directory: `cache_dir` argument, else
$NETDSL_CACHE_DIR, else `platformdirs.user_cache_dir("netdsl")`.

`LLVMCounter` counts Numba "numba:compile" events (fired only when a dispatcher really
compiles, never on a cache load): a cache hit is a load with zero of them.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import tempfile
from pathlib import Path

_fingerprint: str | None = None


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where generated modules live (created if missing)."""
    if override is None:
        override = os.environ.get("NETDSL_CACHE_DIR")
    if override is None:
        import platformdirs
        override = platformdirs.user_cache_dir("netdsl")
    path = Path(override)
    path.mkdir(parents=True, exist_ok=True)
    return path


def netdsl_fingerprint() -> str:
    """Hash of the netdsl sources that generated code depends on (ops, backends)."""
    global _fingerprint
    if _fingerprint is None:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for folder in ("ops", "backends"):
            for path in sorted((root / folder).glob("*.py")):
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        _fingerprint = digest.hexdigest()
    return _fingerprint


def cache_key(source: str, target: str) -> str:
    """Content address of a generated module."""
    import numba
    import numpy
    digest = hashlib.sha256()
    for part in (source, target, platform.python_version(), numpy.__version__,
                 numba.__version__, netdsl_fingerprint(), platform.machine()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def write_module(directory: Path, key: str, source: str) -> tuple[Path, bool]:
    """Write the module for `key` unless it is there; returns (path, already there)."""
    path = directory / f"nd_{key}.py"
    if path.exists():
        return path, True
    handle, temporary = tempfile.mkstemp(prefix=".nd_", suffix=".tmp", dir=directory)
    with os.fdopen(handle, "w") as stream:
        stream.write(source)
    if path.exists():                        # another process won the race: keep its file
        os.unlink(temporary)
        return path, True
    os.replace(temporary, path)
    return path, False


def import_module(path: Path, key: str):
    """Import a generated module from its file (once per process)."""
    name = f"netdsl_generated_{key}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


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


__all__ = ["LLVMCounter", "cache_dir", "cache_key", "import_module", "netdsl_fingerprint",
           "write_module"]
