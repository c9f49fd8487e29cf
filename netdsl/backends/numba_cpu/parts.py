"""A long step driver split into parts: functions of a few dozen statements that the driver
calls in order (separately, separate.py), each carving only the buffers it names.

LLVM's SROA pass, which turns Numba's one stack slot per variable into registers, takes time
superlinear in the size of a function: alone on deep_residual's driver (1,828 slots, 836
blocks) it took 4.9 s on a quiet machine and 33 s beside a test run, on the same net with 6
blocks 5.3 s and with 3 blocks 1.9 s (both beside the test run).  Parts of about
PART_STATEMENTS top-level statements keep each function small: deep_residual's step compiles
in 16.2-19.7 s (median 16.5) against 18.4-23.4 s (19.9) whole, three runs each, alternated,
with Numba's library kernels cached.  Parts also let a cold compile use both cores: the
compile helper's process (compile_helper.py) compiles one while this one compiles another,
where one process compiled the whole driver while the other, its kernels done, waited (a
shorter driver is split for that where its step is busy enough: SPLIT_BUSY_ABOVE).  A part
takes the driver's own arguments; the dims are
read again from the inputs' shapes and its buffers are views made again from the arena (a few
instructions each).

Parts are cut only between statements where no local assigned before the cut is read after it
(a group's loop nest and the scalars it reads stay together); where a local would cross
every cut, or the return reads one, the driver stays whole.
"""
from __future__ import annotations

import ast
import functools
import re

# Drivers with more top-level statements than SPLIT_ABOVE are split into parts of about
# PART_STATEMENTS (deep_residual: 10, 20 and 40 compiled alike, ~17 s; each part is a cache
# load of its own in a warm start, so the largest).  It was 120 while long loop bodies were
# inline (kernel_nests.LONG_BODY), each 15-25 statements of the count: as calls, the VAE
# example's driver fell from 136 to 112 and compiled whole in one process while the helper
# waited, its cold compile +0.57 s (4 alternated pairs); at 100 it is split as before.
SPLIT_ABOVE = 100
PART_STATEMENTS = 40
# A driver of more than SPLIT_BUSY_ABOVE statements is split too where its step touches at
# least BUSY_ELEMENTS elements (parameters and arena slots, symbolic dims at the size hint):
# then the compile helper's process compiles a part while this one compiles another, where it
# waited for the whole driver.  A part's call costs ~0.15 us (XOR's driver in three parts:
# 4.2 -> 4.6 us a step), nothing beside a step that reads and writes a quarter of a million
# floats.  The MLP benchmark (784-256-256-10, Adam: 1.1 M elements, 70 statements) in two
# parts, cold, against whole, on the AMD EPYC (Zen 3) of 2026-12-07: the medians of 8
# alternated pairs' differences -0.26 and -0.38 s (each tree first in one series; medians
# 3.23 against 3.32 s and 3.76 against 3.93 s), where the parent process had waited ~1.7 s
# for the helper's driver; its step 2.0 ms either way.
SPLIT_BUSY_ABOVE = 50
BUSY_ELEMENTS = 1 << 18
# A driver that parts of PART_STATEMENTS would cut in two is cut in LEAST_PARTS instead: in two,
# the first part (the forward pass and the loss's gradient, their loop nests inline) was this
# process's alone, the helper's second done 0.45 s before it.  The MLP benchmark in three
# parts against two, cold, on the AMD EPYC (Zen 3) of 2026-12-07: paired medians of
# alternated runs -0.28 s (12 pairs; medians 3.10 against 3.25 s) and -0.19 s (10 pairs).
LEAST_PARTS = 3
_CONTINUES = re.compile(r"(else|elif|except|finally)\b")


def split_driver(prologue: list[str], body: list[str], returned: list[str],
                 carves: dict[str, str], arguments: list[str], known: set[str],
                 define, elements: int = 0) -> list[str] | None:
    """The driver lines calling parts for `body` (top-level statements and their indented
    lines), or None where it is short or cannot be split.  `returned` are the lines after
    it (the return), which must read no local of the body; `carves` maps each buffer or
    parameter-view name to the line making it; `define(name, lines)` adds a part (its
    definition lines) to the module and returns the name to call; `elements`: what the step
    touches (see BUSY_ELEMENTS)."""
    statements = _statements(body)
    count = sum(map(_count, statements))
    if count <= (SPLIT_BUSY_ABOVE if elements >= BUSY_ELEMENTS else SPLIT_ABOVE):
        return None
    available = set(arguments) | set(carves) | known | _assigned(prologue)
    if _free(returned, available):
        return None
    length = PART_STATEMENTS if count > 2 * PART_STATEMENTS else -(-count // LEAST_PARTS)
    runs = _runs(statements, available, length)
    if runs is None:
        return None                       # a local crosses parts: keep the driver whole
    parts = [lines for lines, _ in runs]
    signature = ", ".join(arguments)
    calls = []
    for k, lines in enumerate(parts):
        definition = [f"def part_{k}({signature}):",
                      *("    " + line for line in prologue + carves_for(lines, carves) + lines),
                      "    return 0"]
        calls.append(f"{define(f'part_{k}', definition)}({signature})")
    return calls


def warm_up(prologue: list[str], body: list[str], carves: dict[str, str],
            arguments: list[str], known: set[str], separate: set[str]) -> list[str] | None:
    """The definition lines of `warm_up(arguments)`: the statements of a driver (`body`,
    whole or split into parts), in runs that share no local, those of the runs that make the
    first call of a separately compiled function (a name in `separate`) in reverse order; None
    where fewer than two runs do.  It is never run nor compiled: a helper process types it
    while this one compiles the driver (compile_helper.py), so that typing it compiles the
    separately called kernels from the driver's last (into Numba's cache) while the driver's
    own typing compiles them from the first.  Later calls of a function are left out (most
    have the same types, and the helper would start with what the driver compiles first), as
    are runs of linked loop nests only (both processes would compile them)."""
    available = set(arguments) | set(carves) | known | _assigned(prologue)
    kept, seen = [], set()
    for run, reads in _runs(_statements(body), available, 1) or []:
        calls = reads & separate
        if calls - seen:            # a first call of some function: the driver's order of
            kept.append(run)        # first calls, which the helper takes from the last
            seen |= calls
    if len(kept) < 2:
        return None
    lines = [line for run in reversed(kept) for line in run]
    return [f"def warm_up({', '.join(arguments)}):",
            *("    " + line for line in prologue + carves_for(lines, carves) + lines),
            "    return 0"]


def _runs(statements: list[list[str]], available: set[str],
          least: int) -> list[tuple[list[str], set[str]]] | None:
    """`statements` in runs of at least `least` statements (the last may be shorter), cut
    only where no local assigned before the cut is read after it, each run with the names it
    reads; None where a run would read a local that neither it assigns nor `available` holds,
    or there is one run only.  A run's names are its statements' (each statement parses
    alone), so no run is parsed again as a whole: that was a third of the driver's splitting
    in a transformer's warm compile."""
    assigned = [_assigned(lines) for lines in statements]
    read = [_loaded(lines) for lines in statements]
    loaded = [names - available for names in read]
    later: list[set[str]] = [set() for _ in range(len(statements) + 1)]
    for i in range(len(statements) - 1, -1, -1):
        later[i] = later[i + 1] | loaded[i]
    runs: list[tuple[list[str], set[str], set[str]]] = [([], set(), set())]
    before: set[str] = set()
    for i, lines in enumerate(statements):
        if _count(runs[-1][0]) >= least and not (before & later[i]):
            runs.append(([], set(), set()))
        run, run_assigned, run_read = runs[-1]
        run.extend(lines)
        run_assigned |= assigned[i]
        run_read |= read[i]
        before |= assigned[i]
    if len(runs) < 2 or any(reads - writes - available for _, writes, reads in runs):
        return None
    return [(run, reads) for run, _, reads in runs]


def _statements(body: list[str]) -> list[list[str]]:
    """`body` cut before each unindented line (a statement, or a comment) that does not
    continue the statement before it (`else:`, `elif ...:`)."""
    statements: list[list[str]] = []
    for line in body:
        if statements and (line.startswith((" ", "\t")) or _CONTINUES.match(line)):
            statements[-1].append(line)
        else:
            statements.append([line])
    return statements


def _count(lines: list[str]) -> int:
    return sum(1 for line in lines if not line.startswith((" ", "\t", "#")))


def carves_for(lines: list[str], carves: dict[str, str]) -> list[str]:
    """The carve lines `lines` need, with the views those views are made from, in the order
    of `carves` (a view's source is carved before it)."""
    needed: set[str] = set()
    pending = set(re.findall(r"[A-Za-z_]\w*", "\n".join(lines))) & set(carves)
    while pending:
        name = pending.pop()
        needed.add(name)
        pending |= (set(re.findall(r"[A-Za-z_]\w*", carves[name])) & set(carves)) - needed
    return [line for name, line in carves.items() if name in needed]


def _assigned(lines: list[str]) -> set[str]:
    return set(_names("\n".join(lines))[0])


def _loaded(lines: list[str]) -> set[str]:
    """Names `lines` read, the targets of augmented assignments (`o += n`) among them."""
    return set(_names("\n".join(lines))[1])


@functools.lru_cache(maxsize=4096)
def _names(text: str) -> tuple[frozenset, frozenset]:
    """(names assigned, names read) of a piece of driver source, parsed once: every compile,
    warm ones too, builds the twin (warm_up) to key the module by its source, and the same
    statements are asked about several times (13.7 of the MLP's 39 ms of code generation
    before)."""
    assigned, loaded = set(), set()
    for node in ast.walk(ast.parse(text or "pass")):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            assigned.add(node.id)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loaded.add(node.id)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            loaded.add(node.target.id)
    return frozenset(assigned), frozenset(loaded)


def _free(lines: list[str], available: set[str]) -> set[str]:
    """Names `lines` read that neither they assign nor `available` holds."""
    return _loaded(lines) - _assigned(lines) - available


__all__ = ["BUSY_ELEMENTS", "PART_STATEMENTS", "SPLIT_ABOVE", "SPLIT_BUSY_ABOVE", "carves_for",
           "split_driver", "warm_up"]
