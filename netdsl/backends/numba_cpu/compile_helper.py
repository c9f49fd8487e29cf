"""Cold compiles on two cores: a forked helper compiles a split driver's parts from the last
while this process compiles them from the first.

Numba compiles one function at a time under a process-wide lock, so a cold compile uses one
core however many the machine has.  A driver cut into parts (parts.py) calls every part
separately (separate.py), with the driver's own argument types, and each part is cached on
its own by Numba: the parts, the segments and library kernels they call, are independent
units of work.  `helping(module, names, signature)` forks this process (the child shares the
imported modules and the loaded code; nothing to start) and the child compiles the parts
`names` in reverse order for `signature` into Numba's cache, while this process types the
driver, which compiles its parts in order; the two meet in the middle.

Two processes must never compile the same function at once: Numba numbers a function's cache
data files by the entries its index held when it saved, so two concurrent saves of different
types can pick the same file.  Every separately compiled function is therefore compiled under
an exclusive lock on a file named after it (`function_lock`, an flock: the kernel releases it
if its holder dies), in a directory private to this compile; the second process to want a
function waits for the lock, then loads the first's result from Numba's cache.  A call graph
has no cycles, so two processes each holding a lock can never wait for each other's.

The child never outlives the compile: it is killed once this process has its driver (by then
it can only be loading what this process already has), its output goes to /dev/null, and an
alarm ends it after HELPER_SECONDS whatever happens.  If it dies, this process compiles what
was left, as it would without a helper.  $NETDSL_COMPILE_JOBS=1 turns the helper off; it is
also off on one core and where there is no fork.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

HELPER_SECONDS = 900                 # the child's alarm: a backstop, never a compile's length
WAIT_SECONDS = 300                   # the parent's longest wait for a lock, then the child goes
_session: Path | None = None         # the lock directory of the compile in progress
_child = 0                           # the helper's pid, in the parent


def jobs() -> int:
    """Processes a cold compile may use: $NETDSL_COMPILE_JOBS, else 2 where 2 cores are ours."""
    value = os.environ.get("NETDSL_COMPILE_JOBS", "").strip()
    if value.isdigit():
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


@contextlib.contextmanager
def function_lock(module: str, name: str):
    """Hold the compile lock of `module.name` while a helper session is active (else nothing)."""
    session = _session
    if session is None:
        yield
        return
    import fcntl
    digest = hashlib.sha256(f"{module}.{name}".encode()).hexdigest()[:24]
    descriptor = os.open(session / f"{digest}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _child and time.monotonic() - started > WAIT_SECONDS:
                    _stop(_child)           # a helper stuck for minutes: do its work here
                time.sleep(0.005)
        yield
    finally:
        os.close(descriptor)                  # closing releases the lock


@contextlib.contextmanager
def helping(module, names: list[str], signature: tuple):
    """While the body compiles `module`'s driver, a forked child compiles the separately
    called functions `names` (module attributes) for `signature`, last first."""
    global _session, _child
    if len(names) < 2 or jobs() < 2 or not hasattr(os, "fork") or _session is not None:
        yield
        return
    _session = Path(tempfile.mkdtemp(prefix="netdsl-compile-"))
    _child = _fork(module, names, signature)
    try:
        yield
    finally:
        if _child:
            _stop(_child)
        shutil.rmtree(_session, ignore_errors=True)
        _session, _child = None, 0


def _stop(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)


def _fork(module, names: list[str], signature: tuple) -> int:
    """Start the child (its pid; 0 where fork failed)."""
    import warnings
    try:
        with warnings.catch_warnings():    # Python >= 3.12 warns on fork beside threads: the
            warnings.simplefilter("ignore", DeprecationWarning)   # child only compiles
            pid = os.fork()
    except OSError:
        return 0
    if pid:
        return pid
    status = 1
    try:
        signal.alarm(HELPER_SECONDS)
        sink = os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        parent = os.getppid()
        for name in reversed(names):
            if os.getppid() != parent:
                break                                   # the compile this served is over
            dispatcher = getattr(module, name)
            dispatcher = getattr(dispatcher, "dispatcher", dispatcher)
            with function_lock(dispatcher.py_func.__module__, dispatcher.py_func.__name__):
                if signature not in dispatcher.overloads:
                    dispatcher.compile(signature)       # into Numba's cache, for the parent
        status = 0
    finally:
        os._exit(status)


__all__ = ["function_lock", "helping", "jobs"]
