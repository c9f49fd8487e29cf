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

    def child() -> dict:
        result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], env=env,
                                capture_output=True, text=True, timeout=300,
                                cwd=Path(__file__).parents[2])
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    first, second = child(), child()
    assert first["value"] == second["value"] == 2.0 * (0 + 1 + 2 + 3) + 4
    assert first["compiles"] >= 2 and second["compiles"] == 0
