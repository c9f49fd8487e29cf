"""Separately compiled calls (numba_cpu/separate.py): the callee's code stays out of the
caller, results and exceptions come through, and a cached caller loads in a new process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from netdsl.backends.numba_cpu.separate import separately

MODULE = '''
import numpy as np
from numba import njit
from netdsl.backends.numba_cpu.separate import separately


@njit(cache=True)
def scaled(x, factor):
    if factor < 0:
        raise ValueError("negative factor")
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = x[i] * factor
    return out, x.shape[0]


_scaled = separately(scaled)


@njit(cache=True)
def caller(x, factor):
    out, n = _scaled(x, factor)
    return out.sum() + n
'''

CHILD = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from numba.core import event
compiles = []
class Count(event.Listener):
    def on_start(self, ev): compiles.append(1)
    def on_end(self, ev): pass
event.register("numba:compile", Count())
if len(sys.argv) > 2:          # the callee now publishes another symbol than the cache names
    import hashlib
    import netdsl.backends.numba_cpu.separate as separate
    separate.hashlib = type("Other", (), {"sha256": staticmethod(
        lambda data: hashlib.sha256(data + b"another return type"))})
import separate_fixture
value = separate_fixture.caller(np.arange(4, dtype=np.float32), np.float32(2.0))
print(json.dumps({"value": float(value), "compiles": len(compiles)}))
'''


@njit
def _twice(x):
    if x.shape[0] == 0:
        raise ValueError("empty input")
    return x * 2


_twice_separately = separately(_twice)


@njit
def _calls_twice(x):
    return _twice_separately(x).sum()


def test_results_and_exceptions_come_through():
    x = np.arange(5, dtype=np.float64)
    assert _calls_twice(x) == 20.0
    with pytest.raises(ValueError, match="empty input"):
        _calls_twice(np.zeros(0))


def test_the_callee_code_is_not_compiled_into_the_caller():
    _calls_twice(np.ones(3))
    caller_ir = next(iter(_calls_twice.inspect_llvm().values()))
    callee = next(iter(_twice.overloads.values())).fndesc.llvm_func_name
    assert callee not in caller_ir                        # neither defined nor named there
    assert "declare" in caller_ir and "netdsl__twice_" in caller_ir


def test_a_returned_array_is_not_leaked():
    from numba.core.runtime import _nrt_python, rtsys
    x = np.ones(16)
    _calls_twice(x)
    _nrt_python.memsys_enable_stats()
    before = rtsys.get_allocation_stats()
    for _ in range(100):
        _calls_twice(x)
    after = rtsys.get_allocation_stats()
    assert after.alloc - before.alloc == after.free - before.free


def test_a_cached_caller_loads_in_a_new_process(tmp_path):
    (tmp_path / "separate_fixture.py").write_text(MODULE)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}

    def child(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), *extra], env=env,
                              capture_output=True, text=True, timeout=300,
                              cwd=Path(__file__).parents[2])

    runs = [child(), child()]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    first, second = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    assert first["value"] == second["value"] == 2.0 * (0 + 1 + 2 + 3) + 4
    assert first["compiles"] >= 2 and second["compiles"] == 0
    # A cached caller naming a symbol the callee no longer publishes is refused with an error
    # (unguarded here; generated modules' guarded loads recompile), never called: a call to an
    # unpublished symbol is a segfault.
    mismatch = child("mismatch")
    assert mismatch.returncode == 1 and "no longer what its cached caller calls" in \
        mismatch.stderr, mismatch.stderr


STEP_CHILD = """
import json, sys
sys.path.insert(0, {helpers!r})
if len(sys.argv) > 1:
    import hashlib
    import netdsl.backends.numba_cpu.separate as separate
    separate.hashlib = type("Other", (), {{"sha256": staticmethod(
        lambda data: hashlib.sha256(data + b"another return type"))}})
from backend_helpers import mlp_graph, random_arrays, training_graph
from netdsl.backends import compile_graph
graph = training_graph(mlp_graph((3, 5, 2)), "sgd")
compiled = compile_graph(graph)
arrays = random_arrays(graph, batch=2)
print(json.dumps({{"loss": float(compiled.run(arrays)["loss"])}}))
"""


def test_a_generated_step_whose_callee_changed_compiles_again(tmp_path):
    helpers = Path(__file__).parent
    env = {**os.environ, "NETDSL_CACHE_DIR": str(tmp_path)}

    def child(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", STEP_CHILD.format(helpers=str(helpers)),
                               *extra], env=env, capture_output=True, text=True, timeout=600,
                              cwd=Path(__file__).parents[2])

    first, second = child(), child("mismatch")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "discarded a damaged compile cache entry" in second.stderr
    loss = [json.loads(run.stdout.strip().splitlines()[-1])["loss"] for run in (first, second)]
    assert loss[0] == loss[1]
