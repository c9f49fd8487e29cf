"""Parallel calls (numba_cpu/parallel_calls.py): a function run once per index on Numba's
threads: every index once, its exceptions raised by the caller, on each threading layer, and a
cached caller loading in a new process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MODULE = '''
import numba
import numpy as np
from netdsl.backends.numba_cpu.jit import kernel, njit
from netdsl.backends.numba_cpu.parallel_calls import in_parallel


@kernel(cache=True)
def mark(i, out, threads, scale):
    if scale < 0:
        raise ValueError("negative scale")
    out[i] += (i + 1) * scale
    threads[i] = numba.get_thread_id()


_mark = in_parallel(mark)


@njit(cache=True)
def run(count, out, threads, scale):
    _mark(count, out, threads, scale)
    return out.sum()
'''

CHILD = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from numba.core import event
compiles = []
class Count(event.Listener):
    def on_start(self, ev): compiles.append(ev.data["dispatcher"].py_func.__name__)
    def on_end(self, ev): pass
event.register("numba:compile", Count())
from netdsl.backends.numba_cpu.target import _start_thread_pool
from numba.np.ufunc.parallel import threading_layer
_start_thread_pool()            # netdsl's choice (TBB where it loads), or NUMBA_THREADING_LAYER
import parallel_fixture as fixture
results = {}
for count in (0, 1, 2, 7, 100):
    out, threads = np.zeros(100), np.full(100, -1)
    total = fixture.run(count, out, threads, 2.0)
    results[count] = [float(total), out.tolist(), threads[:count].tolist()]
try:
    fixture.run(3, np.zeros(3), np.zeros(3, np.int64), -1.0)
    raised = None
except ValueError as error:
    raised = str(error)
print(json.dumps({"results": results, "raised": raised, "compiles": compiles,
                  "layer": threading_layer()}))
'''


def _child(tmp_path, layer):
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="2")
    environment.pop("NUMBA_THREADING_LAYER", None)
    if layer is not None:
        environment["NUMBA_THREADING_LAYER"] = layer
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True,
                            text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("layer", ["workqueue", None])       # None: netdsl's choice (TBB)
def test_every_index_runs_once_on_the_threads_and_errors_reach_the_caller(tmp_path, layer):
    (tmp_path / "parallel_fixture.py").write_text(MODULE)
    first = _child(tmp_path, layer)
    assert first["layer"] == (layer or first["layer"])
    for count, (total, out, threads) in first["results"].items():
        count = int(count)
        expected = [2.0 * (i + 1) if i < count else 0.0 for i in range(100)]
        assert out == expected and total == sum(expected)
        assert all(0 <= thread < 2 for thread in threads)
    if layer == "workqueue":        # its split is fixed: the first half on thread 0, then 1
        assert first["results"]["100"][2] == [0] * 50 + [1] * 50
        assert first["results"]["1"][2] == [0]         # one index: one thread
    assert first["raised"] == "negative scale"
    assert {"run", "mark"} <= set(first["compiles"])
    # A new process loads the caller and the function from Numba's cache: nothing compiles.
    again = _child(tmp_path, layer)
    assert again["results"] == first["results"] and again["raised"] == "negative scale"
    assert again["compiles"] == []
