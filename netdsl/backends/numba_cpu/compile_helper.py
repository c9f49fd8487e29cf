"""Cold compiles on two cores: forked helpers compile into the caches what this process is
about to need (a driver's reversed twin of its library calls, a split driver's parts, a fit's
validation graph) while it compiles the rest.

Numba compiles one function at a time under a process-wide lock, so a cold compile uses one
core however many the machine has.  A driver cut into parts (parts.py) calls every part
separately (separate.py), with the driver's own argument types, and each part is cached on
its own by Numba: the parts, the segments and library kernels they call, are independent
units of work.  `helping(module, names, signature)` forks this process (the child shares the
imported modules and the loaded code; nothing to start).  The child first types the driver's
twin `warm_up` (parts.warm_up) where `names` holds it: typing it compiles the driver's
library kernels last first while this process compiles them from the first, and the twin
itself is never lowered (`_type_only`).  Then both processes take the parts, the first
first and then the largest, each passing over a part the other is compiling (`take_parts`),
and this process types the driver, which finds every part compiled.  With the parts alone,
and the helper taking them from the last, a part was the smallest unit of work: LeNet-5's
first part holds every forward kernel (4.2 of its 6.8 s serial compile) and the helper, done
with the later parts, waited for it.  LeNet-5's cold step compile, alternated runs:
4.31 -> 4.04 s with the twin first, 3.78 -> 3.50 s with the parts taken in order (a quieter
hour); deep_residual's 5.80 -> 5.36 s with the twin.  `ahead(work)` runs a whole compile in
a helper (`fit` compiles its validation graph so while it compiles the training step) and
`join()` waits for it before this process compiles the same graph, which then loads from the
caches.

Two processes must never compile the same function at once: Numba numbers a function's cache
data files by the entries its index held when it saved, so two concurrent saves of different
types can pick the same file.  Every separately compiled function is therefore compiled under
an exclusive lock on a file named after it (`function_lock`, an flock: the kernel releases it
if its holder dies), in a directory private to this compile; the second process to want a
function waits for the lock, then loads the first's result from Numba's cache.  A call graph
has no cycles, so two processes each holding a lock can never wait for each other's.

A helper never outlives its compile: it is killed once this process has its driver (by then
it can only be loading what this process already has) or has joined it, or when this process
ends at once on a signal (`abandon`, which also removes the lock directory), its output goes to
/dev/null, an alarm ends it after HELPER_SECONDS whatever happens, and this process stops its
helpers when it has waited WAIT_SECONDS for a lock or a join.  If a helper dies, this process
compiles what was left, as it would without one.  Helpers start no helpers.
$NETDSL_COMPILE_JOBS=1 turns helpers off; they are also off on one core and without fork.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

HELPER_SECONDS = 900                 # a helper's alarm: a backstop, never a compile's length
WAIT_SECONDS = 300                   # the parent's longest wait for a lock, then helpers go
_session: Path | None = None         # the lock directory of the compiles in progress
_depth = 0                           # nesting of `_active_session()`
_helpers: set[int] = set()           # live helpers' pids, in the parent
_in_helper = False


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


def _may_fork() -> bool:
    return jobs() >= 2 and hasattr(os, "fork") and not _in_helper


@contextlib.contextmanager
def function_lock(module: str, name: str, wait: bool = True):
    """Hold the compile lock of `module.name` while a session is active (else nothing);
    yields whether it is held, which is always so unless `wait=False` found another process
    holding it."""
    session = _session
    if session is None:
        yield True
        return
    import fcntl
    digest = hashlib.sha256(f"{module}.{name}".encode()).hexdigest()[:24]
    descriptor = os.open(session / f"{digest}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    held = False
    try:
        started = time.monotonic()
        while not held:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                if not wait:
                    break
                if _helpers and time.monotonic() - started > WAIT_SECONDS:
                    for pid in list(_helpers):  # one is stuck for minutes: do its work here
                        _stop(pid)
                time.sleep(0.005)
        yield held
    finally:
        os.close(descriptor)                  # closing releases the lock


def take_parts(module, names: list[str], signature: tuple) -> None:
    """Compile (or load) the separately called functions `names` of `module` for
    `signature`, the first first, then the largest first, passing over one that the other
    process is compiling and coming back to it after the rest.  Both processes take parts so,
    this one before typing the driver and the helper after the twin: each takes the next part
    nobody has, and neither waits while a part is left.  (The helper used to take the parts
    from the last: LeNet-5's third, then its second, for which this process, done with the
    first, waited 0.45 s.)  The first first: this process compiles the kernels of the first
    part in order while the helper types the twin, which compiles them from the last.  Then
    the largest: deep_residual's four parts compile in ~1.8, 1.7, 2.4 and 0.8 s, and taken in
    order this process compiled the third (the largest) last, alone for a second.  The size
    is the length of a part's bytecode (14, 20, 26 and 13 kB there)."""
    pending = names[:1] + sorted(names[1:], key=lambda name: -_size(module, name))
    while pending:
        for name in pending:
            if _compile(module, name, signature, wait=False):
                pending.remove(name)
                break
        else:                               # the other process holds every one left
            _compile(module, pending.pop(0), signature, wait=True)


def _dispatcher(module, name: str):
    """The Numba dispatcher of `module.name` (a separate.py call holds it as `.dispatcher`)."""
    value = getattr(module, name)
    return getattr(value, "dispatcher", value)


def _size(module, name: str) -> int:
    return len(_dispatcher(module, name).py_func.__code__.co_code)


def _compile(module, name: str, signature: tuple, wait: bool) -> bool:
    """Compile `module.name` for `signature` under its lock (into Numba's cache, or loaded
    from it where the other process compiled it); False where `wait` is False and the other
    process holds the lock."""
    dispatcher = _dispatcher(module, name)
    with function_lock(dispatcher.py_func.__module__, dispatcher.py_func.__name__,
                       wait) as held:
        if held:
            dispatcher.compile(signature)
        return held


@contextlib.contextmanager
def _active_session():
    """The lock directory shared by this process and its helpers (nested uses share one)."""
    global _session, _depth
    if _session is None:
        _session = Path(tempfile.mkdtemp(prefix="netdsl-compile-"))
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _remove_session()


def _remove_session() -> None:
    """Remove the lock directory, once (`abandon` may have removed it already)."""
    global _session
    if _session is not None:
        shutil.rmtree(_session, ignore_errors=True)
        _session = None


@contextlib.contextmanager
def helping(module, names: list[str], signature: tuple):
    """While the body compiles `module`'s driver, a forked helper compiles the separately
    called functions `names` (module attributes) for `signature`, last first."""
    if not names or not _may_fork():
        yield
        return
    with _active_session():
        pid = _spawn(lambda: _compile_parts(module, names, signature))
        try:
            yield
        finally:
            _stop(pid)


class Ahead:
    """A compile running in a helper (`ahead`); `join()` waits for it to end."""

    def __init__(self, pid: int):
        self.pid = pid

    def join(self) -> None:
        started = time.monotonic()
        while self.pid and self.pid in _helpers:
            try:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                done = self.pid
            if done:
                _helpers.discard(self.pid)
            elif time.monotonic() - started > WAIT_SECONDS:
                _stop(self.pid)
            else:
                time.sleep(0.01)
        self.pid = 0


@contextlib.contextmanager
def ahead(work):
    """Run `work()` (a compile, for its cache entries) in a forked helper while the body runs;
    the handle's `join()` waits for it.  Without a helper (one job, or inside a helper) the
    handle does nothing and the body compiles as it would have."""
    if not _may_fork():
        yield Ahead(0)
        return
    with _active_session():
        handle = Ahead(_spawn(work))
        try:
            yield handle
        finally:
            _stop(handle.pid)


def beside(work) -> Ahead | None:
    """Run `work()` (a compile, for its cache entries) in a forked helper from now on, past
    the compile that starts it (own_entry.py); the handle's `join()` waits for it.  None
    without a helper (one job, or inside a helper)."""
    if not _may_fork():
        return None
    pid = _spawn(work)
    return Ahead(pid) if pid else None


def in_helper() -> bool:
    """Whether this process is a compile's helper (which only compiles into the caches)."""
    return _in_helper


def _compile_parts(module, names: list[str], signature: tuple) -> None:
    """The helper's work: type the twin (TWIN) where `names` has it, then take the parts."""
    if TWIN in names:
        _type_only(getattr(module, TWIN), signature)
    take_parts(module, [name for name in names if name != TWIN], signature)


TWIN = "warm_up"                    # a driver's reversed twin (parts.warm_up): typed only


class _Typed(Exception):
    """Ends a compile once its types are inferred (`_type_only`)."""


def _type_only(dispatcher, signature: tuple) -> None:
    """Infer the types of `dispatcher` for `signature`, and stop there.  Typing its calls
    compiles the functions it calls separately (separate.py) into Numba's cache, which is
    all the twin is for; lowering and optimising the twin itself (the whole driver's
    statements in one function) would be work for nothing."""
    compiler_of = dispatcher._compiler
    usual, compiler_of.pipeline_class = compiler_of.pipeline_class, _typing_pipeline()
    try:
        with contextlib.suppress(_Typed):
            dispatcher.compile(signature)
    finally:
        compiler_of.pipeline_class = usual


@functools.lru_cache(maxsize=1)
def _typing_pipeline():
    """A Numba compiler class whose pipeline ends after type inference (raising _Typed), its
    pass registered with Numba once per process."""
    from numba.core import compiler, typed_passes
    from numba.core.compiler_machinery import FunctionPass, PassManager, register_pass

    @register_pass(mutates_CFG=False, analysis_only=True)
    class _StopAfterTyping(FunctionPass):
        _name = "netdsl_stop_after_typing"

        def __init__(self):
            FunctionPass.__init__(self)

        def run_pass(self, state):
            raise _Typed()

    class TypeOnly(compiler.CompilerBase):
        def define_pipelines(self):
            self.state.cr = None              # read after each pipeline: none ends this one
            typing = PassManager("netdsl typing only")
            typing.add_pass(typed_passes.NopythonTypeInference, "nopython frontend")
            typing.add_pass(_StopAfterTyping, "stop")
            typing.finalize()
            return [compiler.DefaultPassBuilder.define_untyped_pipeline(self.state), typing]
    return TypeOnly


def abandon() -> None:
    """This process is ending at once (the CLI's exit on a signal: os._exit runs no `finally`):
    stop its helpers and remove its compile's lock directory, which would otherwise stay in
    the temporary directory, one per interrupted compile.  A helper leaves both alone: its
    parent still uses them."""
    if _in_helper:
        return
    for pid in list(_helpers):
        _stop(pid)
    _remove_session()


def _stop(pid: int) -> None:
    if not pid:
        return
    _helpers.discard(pid)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)


def _spawn(work) -> int:
    """Fork a helper running `work()` (its pid; 0 where fork failed)."""
    global _in_helper
    import warnings
    parent = os.getpid()
    try:
        with warnings.catch_warnings():    # Python >= 3.12 warns on fork beside threads: the
            warnings.simplefilter("ignore", DeprecationWarning)   # helper only compiles
            pid = os.fork()
    except OSError:
        return 0
    if pid:
        _helpers.add(pid)
        return pid
    status = 1
    try:
        _in_helper = True
        _helpers.clear()
        _die_with(parent)
        signal.alarm(HELPER_SECONDS)
        sink = os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        # New stream objects: another thread of the parent (a spinner) may have held the old
        # ones' locks at the fork, and nothing in this process would ever release them.
        sys.stdout = sys.stderr = open(os.devnull, "w")
        work()
        status = 0
    finally:
        os._exit(status)


def _die_with(parent: int) -> None:
    """Have the kernel kill this helper when its parent dies (Linux's PR_SET_PDEATHSIG), so
    that a parent killed outright leaves no compile running; elsewhere the alarm does."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)       # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:                           # it died before that took effect
        os._exit(1)


__all__ = ["Ahead", "ahead", "beside", "function_lock", "helping", "in_helper", "jobs"]
