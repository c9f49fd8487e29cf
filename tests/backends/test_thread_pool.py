"""Numba's thread pool as netdsl starts it: TBB where it loads, else workqueue, never OpenMP
unless asked (numba_cpu/target.py says why)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPORT_LAYER = ("from netdsl.backends.numba_cpu.target import _start_thread_pool; "
                "_start_thread_pool(); import numba; print(numba.threading_layer())")


def _layer(environment: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", REPORT_LAYER], capture_output=True, text=True,
                            env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _tbb_loads() -> bool:
    """Whether Numba's TBB layer loads here (the tbb package, a recent enough version)."""
    check = ("import numba; numba.config.THREADING_LAYER = 'tbb'; numba.get_num_threads(); "
             "print(numba.threading_layer())")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=120)
    return result.returncode == 0 and result.stdout.strip().endswith("tbb")


def _environment(**changes) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    environment.update(changes)
    return environment


def test_the_pool_runs_on_tbb_where_it_loads_else_on_workqueue():
    assert _layer(_environment()) == ("tbb" if _tbb_loads() else "workqueue")


@pytest.mark.parametrize("layer", ["workqueue"])
def test_numba_threading_layer_still_decides(layer):
    assert _layer(_environment(NUMBA_THREADING_LAYER=layer)) == layer
