"""Timing: interleaved blocks of steps for the fast contenders, a few steps for the slow one.

Medians and p10/p90 per step, in milliseconds; the garbage collector is off while timing.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Idle time before each block: the previous contender's threads go to sleep first.
# OpenBLAS's worker spins ~0.1 s after a threaded product (2^28 cycles) and torch's OpenMP
# threads ~10 ms; one untimed step does not absorb that, and a block begun meanwhile shares the
# two cores with the spinning threads (torch's MLP step, 2 threads, after netdsl's block on
# OpenBLAS: p90 5.3 ms against 1.1 ms at p10).
SETTLE_S = 0.15


@dataclass
class Timing:
    """Per-step milliseconds: median, 10th and 90th percentiles, number of steps timed."""

    median: float
    p10: float
    p90: float
    n: int

    @staticmethod
    def of(samples_ns: list[int]) -> "Timing":
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        return Timing(float(np.median(ms)), float(np.percentile(ms, 10)),
                      float(np.percentile(ms, 90)), len(ms))


def _warm_up(fn, seconds: float, minimum: int = 3) -> float:
    """Run fn for `seconds` (at least `minimum` calls); the median seconds per call (robust
    to the stalls of a loaded machine, which would make the blocks too short)."""
    clock = time.perf_counter
    times: list[float] = []
    start = clock()
    while len(times) < minimum or clock() - start < seconds:
        before = clock()
        fn()
        times.append(clock() - before)
    return float(np.median(times))


def interleaved(contenders: dict[str, Callable], rounds: int, block_s: float,
                warmup_s: float, budget_s: float) -> dict[str, Timing]:
    """Time every contender step by step in blocks of ~block_s, alternating A B | B A | ...

    Each block begins after SETTLE_S of idle time (the previous block's thread pools stop
    spinning) and one untimed step (cold caches are paid outside the measurement).  `rounds`
    rounds, fewer (at least 4) when they would take longer than `budget_s`, as slow steps on a
    loaded machine do.  The garbage collector is off while timing."""
    estimate = {name: _warm_up(fn, warmup_s) for name, fn in contenders.items()}
    block = {name: int(min(20000, max(1, round(block_s / max(estimate[name], 1e-7)))))
             for name in contenders}
    per_round = sum((block[name] + 1) * estimate[name] for name in contenders)
    rounds = max(min(4, rounds), min(rounds, int(budget_s / max(per_round, 1e-9))))
    samples: dict[str, list[int]] = {name: [] for name in contenders}
    names = list(contenders)
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                fn, out = contenders[name], samples[name]
                time.sleep(SETTLE_S)
                fn()
                for _ in range(block[name]):
                    start = clock()
                    fn()
                    out.append(clock() - start)
    finally:
        gc.enable()
    return {name: Timing.of(values) for name, values in samples.items()}


def timed_steps(fn, steps: int, budget_s: float) -> Timing:
    """A few steps of a slow contender (the NumPy reference): at most `steps`, or until the
    budget is spent.  The first step is a warm-up, kept only when it alone ran past the budget."""
    clock = time.perf_counter_ns
    start = clock()
    fn()
    first = clock() - start
    if first > budget_s * 1e9:
        return Timing.of([first])
    samples: list[int] = []
    begin = clock()
    while len(samples) < steps and (not samples or clock() - begin < budget_s * 1e9):
        start = clock()
        fn()
        samples.append(clock() - start)
    return Timing.of(samples)


