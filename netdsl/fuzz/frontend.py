"""Front-end fuzzing: mutated `.net` programs through `netdsl check`, looking for anything but
an answer or a clean error.

    python -m netdsl.fuzz.frontend --programs 10000 --seed 0 [--jobs 2] [--out findings]

Valid programs (examples/*.net, the tests' .net files, the standard library, a few built-in
seeds covering the syntax, and programs of netdsl.fuzz.generate) are mutated at the token and
the character level: tokens deleted, duplicated or swapped, numbers replaced by huge, negative,
fractional or zero values, names by near misses, strings by hostile paths, element types
changed, deep nesting and long chains inserted, blocks made recursive, layers wrapped in
repeat, random bytes (invalid UTF-8, NUL) inserted, lines shuffled and spliced from other
programs, the text truncated (netdsl/fuzz/mutants.py).  Each program is checked in process, through `netdsl.cli.main`,
in a worker process with a time limit and a memory limit.

A finding is: an internal error (exit status 2, `internal error in <stage>`: an exception the
front end did not turn into a user error; the worker runs with --debug, so the traceback is
saved), an exit status other than 0, 1 and 2, a status-1 answer whose first line is not
`file:line:col: error: ...` or `error: ...`, a Python traceback in the output, a hang (longer
than --timeout seconds, default 2), a memory blow-up (more than --memory MiB), or a worker
that died.  Each is saved with its program under --out/<kind>/, a few per distinct signature
(kind, exception, innermost netdsl frame), and the summary gives programs tried, exit codes
and findings by kind.  The exit status is 0 when there were no findings, 1 otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parents[2]

from .mutants import corpus, mutant

# ---- checking in a worker process ------------------------------------------------------------

HEADLINE = re.compile(r"^(?:[^\n]+:\d+:\d+: )?error: \S")


WARM_UP = b"model W {\n    in x: f32[B, 2]\n    out y = x |> Dense(2) |> relu\n}\n"


def _check(path: Path):
    """`netdsl --debug check path` in this process: (status, stdout, stderr, seconds)."""
    from netdsl.cli import main
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["--debug", "check", path.name])
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        except BaseException as error:          # noqa: BLE001 - anything main let through
            import traceback
            traceback.print_exc()
            status = f"escaped {type(error).__name__}"
    seconds = time.perf_counter() - started
    return status, _clip(out.getvalue()), _clip(err.getvalue()), seconds


def _clip(text: str, keep: int = 10000) -> str:
    """The head (where the first error line is) and the tail (where a traceback ends) of a
    long output."""
    if len(text) <= 2 * keep:
        return text
    return f"{text[:keep]}\n[... {len(text) - 2 * keep:,} characters ...]\n{text[-keep:]}"


def _worker(connection, folder: str, memory: int) -> None:
    """Check the programs sent over `connection`, one at a time, until it closes."""
    try:
        import resource
        # A backstop above what the process already holds (a forked worker starts with its
        # parent's memory: a test process may hold gigabytes of compiled code); the parent
        # polls the RSS's growth.
        with open("/proc/self/statm") as handle:
            held = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = held + memory * 1024 * 1024 * 4
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    os.chdir(folder)
    os.environ["NETDSL_CACHE_DIR"] = os.path.join(folder, "cache")
    path = Path(folder) / "fuzz.net"
    while True:
        try:
            data = connection.recv_bytes()
        except EOFError:
            return
        path.write_bytes(data)
        connection.send(_check(path))


class Worker:
    """A worker process and the program it is checking."""

    def __init__(self, context, memory: int):
        self.folder = tempfile.mkdtemp(prefix="netdsl-fuzz-frontend-")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, self.folder, memory),
                                       daemon=True)
        self.process.start()
        child.close()
        self.task: tuple[int, bytes] | None = None
        self.started = 0.0
        self.connection.send_bytes(WARM_UP)         # imports everything, untimed
        if not self.connection.poll(120):
            raise RuntimeError("the fuzz worker did not start")
        self.connection.recv()
        # What the worker holds before any program: forked, it shares its parent's pages,
        # so the memory limit applies to the growth over this.
        self.baseline = self.rss_mib()

    def submit(self, index: int, data: bytes) -> None:
        self.task = (index, data)
        self.started = time.monotonic()
        self.connection.send_bytes(data)

    def rss_mib(self) -> float:
        try:
            with open(f"/proc/{self.process.pid}/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
        except (OSError, ValueError, IndexError):
            return 0.0

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.connection.close()
        import shutil
        shutil.rmtree(self.folder, ignore_errors=True)


# ---- the campaign ----------------------------------------------------------------------------


@dataclass
class Finding:
    index: int
    kind: str                   # internal, exit, format, traceback, hang, memory, crash
    signature: str
    mutations: list[str]
    output: str


@dataclass
class Summary:
    tried: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    slowest: float = 0.0

    @property
    def by_kind(self) -> Counter:
        return Counter(f.kind for f in self.findings)

    @property
    def by_signature(self) -> Counter:
        return Counter(f"{f.kind}: {f.signature}" for f in self.findings)

    def format(self) -> str:
        lines = [f"programs tried: {self.tried} in {self.seconds:.0f} s "
                 f"(slowest check {self.slowest:.2f} s)",
                 "exit statuses: " + ", ".join(f"{status}: {count}" for status, count
                                               in sorted(self.statuses.items(), key=str)),
                 f"findings: {len(self.findings)}"]
        lines += [f"  {count:5d}  {kind}" for kind, count in self.by_kind.most_common()]
        if self.findings:
            lines.append("distinct signatures:")
            lines += [f"  {count:5d}  {sig}" for sig, count in self.by_signature.most_common()]
        return "\n".join(lines)


def _signature(kind: str, output: str) -> str:
    """What makes two findings the same bug: the exception and the innermost netdsl frame."""
    if kind in ("hang", "memory", "crash"):
        return kind
    frames = re.findall(r'File "([^"]*netdsl/[^"]+)", line \d+, in (\S+)', output)
    where = ""
    if frames:
        file, function = frames[-1]
        where = f" at {file.split('netdsl/', 1)[1]}:{function}"
    exception = re.findall(r"^(\w+(?:Error|Exception|Exit|Interrupt)\b[^\n]{0,60})", output,
                           re.M)
    internal = re.search(r"internal error in ([\w ]+): (\w+)", output)
    head = internal.group(0) if internal else (exception[-1] if exception else
                                               output.strip().split("\n")[0][:80])
    return head + where


def classify(status, stdout: str, stderr: str) -> str | None:
    """The kind of finding a finished check is, or None when it answered properly."""
    output = stdout + stderr
    if status == 2 or "internal error" in stderr:
        return "internal"
    if status not in (0, 1):
        return "exit"
    if "Traceback" in output:
        return "traceback"
    if status == 1:
        first = stderr.split("\n", 1)[0]
        if not HEADLINE.match(first):
            return "format"
    return None


def run_campaign(programs: int = 10000, seed: int = 0, jobs: int = 1, timeout: float = 2.0,
                 memory: int = 1024, out: Path | None = None, generated: int = 200,
                 keep: int = 3, progress: bool = False,
                 indices: Iterable[int] | None = None) -> Summary:
    """Check `programs` mutants in `jobs` workers (or only the mutants `indices`, to rerun
    findings); save findings under `out`."""
    texts = corpus(generated)
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    summary = Summary()
    started = time.monotonic()
    workers = [Worker(context, memory) for _ in range(max(1, jobs))]
    saved: Counter = Counter()
    pending = iter(range(programs) if indices is None else list(indices))
    mutations: dict[int, tuple[bytes, list[str]]] = {}
    # A check that ran past `timeout` is checked once more with five times the time before it
    # counts as a hang: the limit is wall-clock time, and a busy machine stretches it.
    retry: list[int] = []
    second_try: set[int] = set()

    def limit(index: int) -> float:
        return timeout * 5 if index in second_try else timeout

    def record(index: int, kind: str, output: str) -> None:
        data, done = mutations[index]
        finding = Finding(index, kind, _signature(kind, output), done, output)
        summary.findings.append(finding)
        key = f"{kind}: {finding.signature}"
        saved[key] += 1
        if out is not None and saved[key] <= keep:
            folder = out / kind
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{seed}-{index}"
            (folder / f"{name}.net").write_bytes(data)
            (folder / f"{name}.txt").write_text(
                f"signature: {finding.signature}\nmutations: {', '.join(done)}\n"
                f"seed {seed}, program {index}\n\n{output[-8000:]}\n",
                encoding="utf-8", errors="replace")

    def feed(worker: Worker) -> bool:
        if retry:
            index = retry.pop()
            worker.submit(index, mutations[index][0])
            return True
        index = next(pending, None)
        if index is None:
            worker.task = None
            return False
        text, done = mutant(seed, index, texts)
        data = text.encode("utf-8", "surrogateescape")
        mutations[index] = (data, done)
        worker.submit(index, data)
        return True

    try:
        active = [w for w in workers if feed(w)]
        while active:
            time.sleep(0.005)
            for position, worker in enumerate(list(active)):
                index = worker.task[0]
                elapsed = time.monotonic() - worker.started
                problem = None
                if worker.connection.poll():
                    try:
                        status, stdout, stderr, seconds = worker.connection.recv()
                    except (EOFError, OSError):
                        problem = "crash"
                    else:
                        kind = classify(status, stdout, stderr)
                        if kind is None and seconds > limit(index):
                            if index not in second_try:      # slow: check it again
                                second_try.add(index)
                                retry.append(index)
                                if not feed(worker):
                                    active.remove(worker)
                                continue
                            kind = "hang"
                        summary.tried += 1
                        summary.statuses[status] += 1
                        summary.slowest = max(summary.slowest, seconds)
                        if kind is not None:
                            record(index, kind, stdout + stderr)
                        mutations.pop(index, None)
                        if progress and summary.tried % 500 == 0:
                            print(f"  {summary.tried} programs, {len(summary.findings)} "
                                  f"findings", file=sys.stderr, flush=True)
                        if not feed(worker):
                            active.remove(worker)
                        continue
                elif not worker.process.is_alive():
                    problem = "crash"
                elif elapsed > limit(index):
                    problem = "hang"
                elif worker.rss_mib() - worker.baseline > memory:
                    problem = "memory"
                if problem is None:
                    continue
                if problem == "hang" and index not in second_try:
                    second_try.add(index)
                    retry.append(index)
                else:
                    summary.tried += 1
                    summary.statuses[problem] += 1
                    record(index, problem, f"{problem} after {elapsed:.1f} s (rss "
                                           f"{worker.rss_mib():.0f} MiB, "
                                           f"{worker.baseline:.0f} MiB at the start)")
                    mutations.pop(index, None)
                worker.kill()
                replacement = Worker(context, memory)
                workers[workers.index(worker)] = replacement
                active.remove(worker)
                if feed(replacement):
                    active.append(replacement)
    finally:
        for worker in workers:
            worker.kill()
    summary.seconds = time.monotonic() - started
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netdsl.fuzz.frontend",
                                     description="Fuzz the front end: mutated programs through "
                                                 "`netdsl check`, in process.")
    parser.add_argument("--programs", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds a check may take (default 2)")
    parser.add_argument("--memory", type=int, default=1024,
                        help="MiB a worker may hold (default 1024)")
    parser.add_argument("--generated", type=int, default=200,
                        help="programs of netdsl.fuzz.generate in the corpus (default 200)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-frontend-findings"),
                        help="where findings go (default ./fuzz-frontend-findings)")
    args = parser.parse_args(argv)
    summary = run_campaign(args.programs, args.seed, args.jobs, args.timeout, args.memory,
                           args.out, args.generated, progress=True)
    print(summary.format())
    if summary.findings:
        print(f"findings saved under {args.out}/")
    return 1 if summary.findings else 0


if __name__ == "__main__":
    sys.exit(main())
