"""backends/scipy_blas.py: SciPy's cython_blas loads on its own (scipy.linalg is not
imported), is the module every later import of the name finds, and leaves scipy.linalg
importable; where scipy.linalg is already loaded, the ordinary import is used."""
from __future__ import annotations

import subprocess
import sys

ALONE = """
import sys
from netdsl.backends.scipy_blas import NAME, load_cython_blas
module = load_cython_blas()
assert module.__name__ == NAME and "sgemm" in module.__pyx_capi__, module
assert "scipy.linalg" not in sys.modules
assert load_cython_blas() is module
import scipy.linalg.cython_blas as again
from scipy.linalg import cython_blas
assert again is module and cython_blas is module
import numpy as np, scipy.linalg
assert np.allclose(scipy.linalg.solve(np.eye(2) * 2.0, np.ones(2)), 0.5)
print("ok")
"""

AFTER = """
import sys, scipy.linalg
from netdsl.backends.scipy_blas import load_cython_blas
import scipy.linalg.cython_blas as normal
assert load_cython_blas() is normal
print("ok")
"""


def _run(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_loads_alone_and_stays_the_one_module():
    assert _run(ALONE) == "ok"


def test_after_scipy_linalg_it_is_the_ordinary_import():
    assert _run(AFTER) == "ok"
