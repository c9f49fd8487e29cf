"""A fuzzing campaign: programs from consecutive seeds, checked until a time or count budget
runs out, failures shrunk and written as `.net` files, a summary by kind at the end.

    python -m netdsl.fuzz --minutes 30 --seed 7 [--out fuzz-findings] [--jobs 2]

Programs are checked in worker processes (`--jobs`), one compile cache for the campaign.  A
worker that dies (a segfault in generated code) is itself a finding: the campaign restarts the
worker and records the program as `crash:process`.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .generate import Config, generate
from .oracle import Finding, check, header, options_for

# --focus: menu weights (generate.Config.weights) that make one family of programs common.
# scan: loops in two programs of three rather than one in ten, so that the passes on loops
# (scan_hoist's and scan_residuals' rewrites, the rows split of scan_rows) meet many more of
# them: scan_residuals' reuse of the forward loop's values rewrote 49 of 200 programs against
# 9 of 400 unfocused.
FOCUSES: dict[str, dict[str, int]] = {"scan": {"scan": 12}}


@dataclass
class Result:
    """One program's outcome."""

    seed: int
    finding: Finding | None
    seconds: float
    tags: list[str] = field(default_factory=list)


@dataclass
class Summary:
    tried: int = 0
    seconds: float = 0.0
    by_kind: Counter = field(default_factory=Counter)
    by_tag: Counter = field(default_factory=Counter)
    failures: list[Result] = field(default_factory=list)
    shrunk: list[Path] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"programs tried: {self.tried} in {self.seconds:.0f} s "
                 f"({self.tried / max(self.seconds, 1e-9) * 60:.1f} per minute)",
                 f"failures: {len(self.failures)}"]
        for kind, count in self.by_kind.most_common():
            lines.append(f"  {count:4d}  {kind}")
        if self.shrunk:
            lines.append("shrunk programs:")
            lines += [f"  {path}" for path in self.shrunk]
        return "\n".join(lines)


def check_seed(seed: int, statements: int = 12, cache_dir: str | None = None,
               rotate: bool = False, target: str = "cpu", focus: str | None = None) -> Result:
    """Generate and check the program of one seed (runs in a worker process).  `rotate`
    checks one mode per program (grad, forward, train in turn) instead of all three; `focus`
    (a FOCUSES key) weights the menu towards one family of programs."""
    start = time.perf_counter()
    program = generate(seed, Config(statements=statements, weights=FOCUSES.get(focus)))
    options = options_for(seed, rotate, target, program.tags)
    options.cache_dir = cache_dir
    finding = check(program, options)
    return Result(seed, finding, time.perf_counter() - start, getattr(program, "tags", []))


def run_campaign(seed: int = 0, *, minutes: float | None = None, programs: int | None = None,
                 jobs: int = 1, statements: int = 12, out: Path | None = None,
                 shrink: bool = True, cache_dir: str | None = None, rotate: bool = False,
                 report: Callable[[str], None] = print, target: str = "cpu",
                 focus: str | None = None) -> Summary:
    """Check programs seed, seed+1, ... until `minutes` or `programs` runs out."""
    summary = Summary()
    deadline = time.monotonic() + minutes * 60 if minutes else None
    limit = programs if programs is not None else (None if minutes else 100)
    owned = None
    if cache_dir is None:
        owned = tempfile.TemporaryDirectory(prefix="netdsl-fuzz-cache-")
        cache_dir = owned.name
    started = last_report = time.monotonic()
    try:
        for result in _results(seed, jobs, statements, cache_dir, rotate, deadline, limit,
                               target, focus):
            summary.tried += 1
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                report(f"... {summary.tried} programs in {last_report - started:.0f} s, "
                       f"{len(summary.failures)} failures")
            summary.by_tag.update(result.tags)
            if result.finding is not None:
                summary.failures.append(result)
                summary.by_kind[result.finding.kind] += 1
                report(f"seed {result.seed}: {result.finding.kind}: "
                       f"{result.finding.detail.splitlines()[0][:200]}")
        summary.seconds = time.monotonic() - started
        if shrink and out is not None:
            summary.shrunk = _shrink_failures(summary.failures, out, statements, rotate, report,
                                              target, focus)
    finally:
        if owned is not None:
            owned.cleanup()
    return summary


def _results(seed, jobs, statements, cache_dir, rotate, deadline, limit, target="cpu",
             focus=None):
    """Results in completion order, from `jobs` worker processes (or this one for jobs=1)."""
    def more(issued: int) -> bool:
        return (limit is None or issued < limit) and \
            (deadline is None or time.monotonic() < deadline)

    arguments = (statements, cache_dir, rotate, target, focus)
    if jobs <= 1:
        issued = 0
        while more(issued):
            yield check_seed(seed + issued, *arguments)
            issued += 1
        return
    issued = 0
    pending: dict = {}
    pool = _pool(jobs)
    try:
        while more(issued) or pending:
            while more(issued) and len(pending) < jobs:
                pending[pool.submit(check_seed, seed + issued, *arguments)] = seed + issued
                issued += 1
            done, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for future in done:
                program_seed = pending.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    # A worker died (a segfault in generated code?): find out which program
                    # killed it by running each unfinished one alone in a fresh process.
                    pool.shutdown(cancel_futures=True)
                    for suspect in sorted([program_seed] + list(pending.values())):
                        yield _alone(suspect, arguments)
                    pending.clear()
                    pool = _pool(jobs)
                    break
    finally:
        pool.shutdown(cancel_futures=True)


def _pool(jobs: int) -> futures.ProcessPoolExecutor:
    return futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                       max_tasks_per_child=50)


def _alone(seed: int, arguments) -> Result:
    pool = _pool(1)
    try:
        return pool.submit(check_seed, seed, *arguments).result()
    except BrokenProcessPool as error:
        return Result(seed, Finding("crash:process", f"the worker process died: {error}"), 0.0)
    finally:
        pool.shutdown(cancel_futures=True)


def _shrink_failures(failures: list[Result], out: Path, statements: int, rotate: bool,
                     report: Callable[[str], None], target: str = "cpu",
                     focus: str | None = None) -> list[Path]:
    """Shrink the first failure of each kind and write it as `out/<kind>-<seed>.net`."""
    from .shrink import shrink
    out.mkdir(parents=True, exist_ok=True)
    written, seen = [], set()
    for result in failures:
        kind = result.finding.kind
        if kind in seen or kind == "crash:process":
            continue
        seen.add(kind)
        program = generate(result.seed, Config(statements=statements,
                                               weights=FOCUSES.get(focus)))
        options = options_for(result.seed, rotate, target, program.tags)
        small, finding = shrink(program, options, result.finding)
        name = kind.replace(":", "-") + f"-{result.seed}.net"
        path = out / name
        options = dataclasses.replace(options, modes=(finding.mode,) if finding.mode else
                                      options.modes)
        text = (f"found by netdsl.fuzz, seed {result.seed}"
                + (f" (--focus {focus})" if focus else "") + f", shrunk\n{finding.kind}: "
                f"{finding.detail.splitlines()[0][:300]}\n"
                + header(small.data_spec(), options))
        path.write_text(small.text(text))
        report(f"shrunk seed {result.seed} ({kind}) to {len(small.stmts)} statements: {path}")
        written.append(path)
    return written


__all__ = ["FOCUSES", "Result", "Summary", "check_seed", "run_campaign"]
