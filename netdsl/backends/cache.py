"""The compile cache: generated modules in a content-addressed directory, compiled by Numba with
`cache=True` so that compiling an unchanged model again does not invoke LLVM.

Key: sha256 of the generated source (which spells out every kernel, inlined scalar constant and
option), the target and its toolchain (the Numba version), the Python and NumPy versions, and a fingerprint of netdsl's own op
and backend sources (emitted lines call library kernels defined beside the ops, whose changes
the generated text would not show).  The module is `<dir>/nd_<key>.py`; Numba's cache files for
its functions (`__pycache__/nd_<key>.<function>-<line>.py311.nbi` and `.nbc`) sit beside it.

Safety.  The directory (`cache_dir` argument, else $NETDSL_CACHE_DIR unless empty, else
`platformdirs.user_cache_dir("netdsl")`) must be the user's own: userdirs.private_dir creates it
with mode 0700 and refuses, with a netdsl.Error, one that another user owns or could write to,
because Numba loads its .nbi/.nbc files with pickle: only that protection covers them (likewise
$NUMBA_CACHE_DIR when set, where Numba then keeps them).  The module is never imported from
the file: its bytes are compared with the source just generated (the text the key is a digest
of, so this checks the digest and more, in ~0.02 ms), and the code that runs is compiled from
that in-memory source; the file is there for Numba (which hashes it into its index) and for
tracebacks.  Compiling the source costs ~8-12 ms where importlib would read a .pyc (of a warm
compile of 0.5-1.3 s on the loaded development machine, most of it Numba's cache load), and
leaves no .pyc to damage.

Damage.  A damaged entry must not fail later runs: a module that differs from its source
(empty, truncated, garbage, edited; discarded with its Numba files), something else where the
module or `__pycache__` should be, and a function's Numba cache files when they fail to load or
save (empty, truncated, garbage, a directory; discarded alone, the module's other functions keep
theirs) are discarded with one line on stderr (`note: discarded a damaged compile cache entry
<path> (<why>); recompiling`), and compiled again.  Writes are atomic (temporary file in the same
directory, fsync, rename), so a run killed mid-write leaves no half module (Numba writes its own
files the same way).

The Numba side (its .nbi/.nbc files, $NUMBA_CACHE_DIR, counting compiles) is in
numba_cpu/numba_cache.py: this module imports no compiler.
"""
from __future__ import annotations

import glob
import hashlib
import os
import platform
import shutil
import stat
import sys
import types
from pathlib import Path

from ..userdirs import cache_location, private_dir

_fingerprint: str | None = None


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where generated modules live: created (mode 0700) if missing; netdsl.Error if another
    user could write into it.  An empty override or NETDSL_CACHE_DIR counts as unset."""
    directory = private_dir(cache_location(override), "compile cache directory")
    pycache = directory / "__pycache__"
    try:
        info = os.lstat(pycache)
    except FileNotFoundError:
        return directory
    if not stat.S_ISDIR(info.st_mode):
        _discard(pycache, f"{_kind(info)} where Numba's cache directory should be")
    elif not os.access(pycache, os.R_OK | os.W_OK | os.X_OK):
        note(f"made the compile cache directory {pycache} writable again "
             f"(mode {stat.S_IMODE(info.st_mode):03o})")
        os.chmod(pycache, 0o700)
    return directory


def netdsl_fingerprint() -> str:
    """Hash of the netdsl sources that generated code depends on (ops, backends)."""
    global _fingerprint
    if _fingerprint is None:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for folder in ("ops", "backends"):
            for path in sorted((root / folder).rglob("*.py")):
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
        _fingerprint = digest.hexdigest()
    return _fingerprint


def cache_key(source: str, target: str, toolchain: str = "") -> str:
    """Content address of a generated module; `toolchain` names the target's compiler and its
    version (the Numba CPU target: numba_cache.toolchain())."""
    import numpy
    digest = hashlib.sha256()
    for part in (source, target, toolchain, platform.python_version(), numpy.__version__,
                 netdsl_fingerprint(), platform.machine()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def write_module(directory: Path, key: str, source: str) -> tuple[Path, bool]:
    """Make `<directory>/nd_<key>.py` hold exactly `source`; returns (path, already there).

    A file there that holds anything else is damage: it is discarded with its Numba cache files
    (and a note on stderr) and written again."""
    path = directory / f"nd_{key}.py"
    content = source.encode("utf-8")
    problem = module_problem(path, content)
    if problem is None:
        return path, True
    if problem != "missing":
        _discard_entry(path, problem)
    try:
        handle, temporary = _temporary(directory)
    except OSError as error:
        from ..errors import Error
        raise Error(f"cannot write to the compile cache directory {directory}: "
                    f"{error.strerror or error}",
                    hint="make it writable (`chmod 700` it), or set NETDSL_CACHE_DIR to "
                         "another directory of your own") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        if module_problem(path, content) is None:      # another process wrote it meanwhile:
            os.unlink(temporary)                       # keep its file (and Numba's stamp)
            return path, True
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path, False


def _temporary(directory: Path) -> tuple[int, str]:
    import tempfile
    return tempfile.mkstemp(prefix=".nd_", suffix=".tmp", dir=directory)


def module_problem(path: Path, content: bytes) -> str | None:
    """None if `path` is a regular file holding exactly `content`; "missing"; else what is
    wrong with it (a phrase for the note)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"cannot be examined: {error.strerror or error}"
    if not stat.S_ISREG(info.st_mode):
        return f"{_kind(info)} where the module should be"
    if info.st_size == 0:
        return "empty module"
    if info.st_size < len(content):
        return f"truncated module: {info.st_size} of {len(content)} bytes"
    if info.st_size > len(content):
        return f"module of {info.st_size} bytes, {len(content)} expected"
    try:
        with open(path, "rb") as stream:
            on_disk = stream.read(len(content) + 1)
    except OSError as error:
        return f"unreadable module: {error.strerror or error}"
    if on_disk != content:
        return "module content does not match its key (digest mismatch)"
    return None


def import_module(path: Path, key: str, source: str, prepare=None):
    """The generated module for `key` (once per process), run from `source` itself (which the
    file at `path` was checked to hold); `prepare(module, path)` then readies it for its target
    (the Numba CPU target guards its functions' cache loads and saves: numba_cache.guard)."""
    name = f"netdsl_generated_{key}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    module = types.ModuleType(name)
    module.__file__ = str(path)
    code = compile(source, str(path), "exec", dont_inherit=True)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    if prepare is not None:
        prepare(module, path)
    return module


def _discard_entry(module_path: Path, why: str) -> None:
    """Discard a damaged module and its Numba cache files, with a note.  A file (or link) in
    the module's place stays until the rename of the new module replaces it, so that no other
    process ever finds the module missing; a directory there is removed."""
    note(f"discarded a damaged compile cache entry {module_path} ({why}); recompiling")
    try:
        if stat.S_ISDIR(os.lstat(module_path).st_mode):
            _remove(module_path)
    except FileNotFoundError:
        pass
    for leftover in (module_path.parent / "__pycache__").glob(glob.escape(module_path.stem) + ".*"):
        _remove(leftover)


def _discard(path: Path, why: str) -> None:
    note(f"discarded a damaged compile cache entry {path} ({why}); recompiling")
    _remove(path)


def _remove(path: Path) -> None:
    """Delete a file, link or directory tree (never following a link); gone already is fine."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _kind(info: os.stat_result) -> str:
    if stat.S_ISDIR(info.st_mode):
        return "a directory"
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    if stat.S_ISREG(info.st_mode):
        return "a file"
    return "a special file"


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def note(message: str) -> None:
    """One line on stderr about what the cache did (not an error: compiling goes on)."""
    print(f"note: {message}", file=sys.stderr, flush=True)


__all__ = ["cache_dir", "cache_key", "import_module", "module_problem",
           "netdsl_fingerprint", "note", "write_module"]
