"""The BLAS netdsl's compiled products call (numba_cpu/blas_library.py): how it is chosen, and
every product agreeing with NumPy on each library installed here (SciPy's OpenBLAS always; MKL
where the mkl package is)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netdsl.backends.numba_cpu.blas_library import (
    _mkl_path,
    _openblas_held_back,
    choose,
    own_by_default,
)
from netdsl.backends.numba_cpu.processor import intel
from netdsl.errors import Error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("requested, installed, intel, expected", [
    ("", True, True, "mkl"), ("auto", True, False, "openblas"), ("", False, True, "openblas"),
    ("openblas", True, True, "openblas"), ("MKL", True, False, "mkl"),
    (" OpenBLAS ", False, False, "openblas"),
])
def test_the_choice(requested, installed, intel, expected):
    assert choose(requested, installed, intel) == expected


@pytest.mark.parametrize("installed, held_back, expected", [
    (True, True, "mkl"), (True, False, "openblas"), (False, True, "openblas")])
def test_amd_takes_mkl_where_openblas_is_held_below_its_avx512_kernels(installed, held_back,
                                                                      expected):
    assert choose("", installed, False, held_back) == expected
    assert choose("openblas", installed, False, held_back) == "openblas"


@pytest.mark.parametrize("installed, intel, avx512, expected", [
    (True, False, False, "mkl"), (True, False, True, "openblas"), (False, False, False,
                                                                    "openblas"),
    (True, True, False, "mkl")])
def test_amd_without_avx512_takes_mkl(installed, intel, avx512, expected):
    # Both libraries run AVX2 kernels there, and MKL's ran the steps faster (blas_library.py).
    assert choose("auto", installed, intel, False, avx512) == expected
    assert choose("openblas", installed, intel, False, avx512) == "openblas"


AVX512 = frozenset({"fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"})


@pytest.mark.parametrize("coretype, flags, expected", [
    ("Haswell", AVX512, True), (" zen ", AVX512, True), ("SkylakeX", AVX512, False),
    ("COOPERLAKE", AVX512, False), ("sapphirerapids", AVX512, False), (None, AVX512, False),
    ("", AVX512, False), ("Haswell", frozenset({"fma", "avx2"}), False),
    ("Haswell", AVX512 - {"avx512vl"}, False)])
def test_openblas_held_back(coretype, flags, expected):
    assert _openblas_held_back(coretype, flags) is expected


@pytest.mark.parametrize("flags, intel, blas, held_back, expected", [
    (AVX512, False, "openblas", False, True), (AVX512, False, "mkl", False, True),
    (AVX512, False, "openblas", True, True), (AVX512, True, "mkl", False, False),
    (AVX512, True, "openblas", False, False), (AVX512, True, "openblas", True, True),
    (frozenset({"fma", "avx2"}), False, "openblas", False, False),
    (frozenset({"fma", "avx2"}), True, "openblas", True, False)])
def test_own_float32_kernels_run_by_default_on_avx512_but_intels_with_its_blas(
        flags, intel, blas, held_back, expected):
    assert own_by_default(flags, intel, blas, held_back) is expected


def test_mkl_asked_for_where_it_is_not_installed_is_an_error():
    with pytest.raises(Error) as error:
        choose("mkl", False, True)
    assert "not installed" in str(error.value) and "pip install mkl" in str(error.value)


@pytest.mark.parametrize("variable, value, message", [
    ("NETDSL_BLAS", "bogus", "error: NETDSL_BLAS must be openblas, mkl or auto, got 'bogus'"),
    ("NETDSL_SGEMM", "fast", "error: NETDSL_SGEMM must be netdsl, blas or auto, got 'fast'")])
def test_an_unknown_choice_through_the_cli_is_one_line_and_exit_1(variable, value, message,
                                                                  tmp_path):
    environment = dict(os.environ, NETDSL_CACHE_DIR=str(tmp_path), **{variable: value})
    result = subprocess.run([sys.executable, "-m", "netdsl", "train", str(EXAMPLES / "xor.net"),
                             "--epochs", "1"], capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


PRODUCTS = """
import itertools, numpy as np
from netdsl.backends.numba_cpu.blas_library import chosen, narrow_library, own_sgemm
from netdsl.backends.numba_cpu.jit import python_entry
from netdsl.backends.numba_cpu.lowerings import linalg
from netdsl.backends.numba_cpu import own_entry
own_entry.load()                    # what a compile does before its graph runs
matmul_2d = python_entry(linalg.matmul_2d)
rng = np.random.default_rng(0)
# The later shapes for netdsl's own kernels where NETDSL_SGEMM chose them (float32 but
# aᵀ @ bᵀ): a @ bᵀ in tiles of 4 x 4 dot products, or from 16 rows through b transposed
# (16 x 16 blocks, the last one of K overlapping) and a @ b's tiles; a @ b and aᵀ @ b in tiles
# of 8, 4 and 1 rows by 32 and 16 columns, and the columns left over; K from 1 to a few
# vector widths.  Narrower than 16 columns (or K below 16 for a @ bᵀ) the BLAS takes them
# (linalg.OWN_MIN_COLUMNS): (5, 20, 15) and (5, 15, 16) fall just below, (5, 16, 16) on it;
# a @ b's and aᵀ @ b's columns past the last whole 16 go to the BLAS too ((24, 40, 17): 16
# and 1, (64, 784, 37): 32 and 5).  (64, 2048, 100): K deep enough that the own kernels run in
# passes of 32 columns (own_gemm.PANEL_BYTES), a @ bᵀ transposing b a pass at a time.
for dtype, (m, k, n), ta, tb in itertools.product(
        (np.float32, np.float64), [(37, 301, 100), (5, 3, 2), (0, 4, 4), (4, 0, 4), (1, 9, 1),
                                   (1, 1, 1), (4, 16, 4), (7, 33, 9), (13, 100, 6),
                                   (64, 784, 37), (8, 5, 48), (6, 70, 81), (16, 32, 48),
                                   (24, 40, 17), (64, 16, 16), (70, 15, 40), (5, 20, 15),
                                   (5, 15, 16), (5, 16, 16), (64, 2048, 100)],
        (False, True), (False, True)):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    out = np.full((m, n), 7, dtype)
    matmul_2d(a, b, out, ta, tb)
    expected = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    assert np.allclose(out, expected, rtol=tolerance, atol=tolerance), (dtype, m, k, n, ta, tb)
# Large enough to be cut into one block per thread where the BLAS runs one (MKL; OpenBLAS
# held to one thread), in rows and in columns.
matmul_2d_parallel = python_entry(linalg.matmul_2d_parallel)
from netdsl.backends.numba_cpu.target import _start_thread_pool
_start_thread_pool()
for (m, k, n), ta, tb in itertools.product([(300, 400, 200), (70, 500, 333)], (False, True),
                                           (False, True)):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    out = np.full((m, n), 7, np.float32)
    matmul_2d_parallel(a, b, out, ta, tb)
    expected = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert np.allclose(out, expected, rtol=1e-4, atol=1e-3), (m, k, n, ta, tb)
print(narrow_library().name, chosen().name, own_sgemm())
"""


# sgemm: NETDSL_SGEMM, whether float32 a @ bᵀ runs in netdsl's own kernel (gemm_nt.py) or
# the BLAS; both everywhere, whatever this processor's automatic choice.
@pytest.mark.parametrize("library, blas_threads, sgemm", [
    ("openblas", "2", "blas"), ("openblas", "1", "blas"), ("mkl", "2", "blas"),
    ("openblas", "2", "netdsl"), ("mkl", "2", "netdsl")])
def test_every_product_agrees_with_numpy_on_each_library(library, blas_threads, sgemm,
                                                         tmp_path):
    if library == "mkl" and _mkl_path() is None:
        pytest.skip("Intel MKL is not installed (pip install mkl)")
    environment = dict(os.environ, NETDSL_BLAS=library, NUMBA_CACHE_DIR=str(tmp_path),
                       NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS=blas_threads,
                       NETDSL_SGEMM=sgemm)
    result = subprocess.run([sys.executable, "-c", PRODUCTS], capture_output=True, text=True,
                            env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    # Out of 2 to 15 columns in OpenBLAS where MKL is chosen on a processor not Intel's
    # (blas_library.narrow_library): the shapes above of such width ran there.
    narrow = "openblas" if library == "mkl" and not intel() else library
    assert result.stdout.split()[-3:] == [narrow, library, str(sgemm == "netdsl")]


ENTRY = """
import sys
from backend_helpers import assert_matches_reference, mlp_graph, training_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import blas_library, compile_helper, own_entry, own_gemm
helper_fails = sys.argv[1] == "fails"
if helper_fails:
    def failing():
        raise RuntimeError("the helper fails")
    own_entry._compile = failing
spawned, spawn = [], compile_helper._spawn
compile_helper._spawn = lambda work: spawned.append(spawn(work)) or spawned[-1]
assert blas_library._OWN_SGEMM_FLAG.value == 0     # every product on the BLAS until loaded
graph = training_graph(mlp_graph((40, 24, 3)), "adam")
compiled = compile_graph(graph)
assert blas_library._OWN_SGEMM_FLAG.value == 1
assert spawned and spawned[0] > 0                  # the first helper: the entry point's
# which compiled it, and this process loaded it; or which failed, and this process compiled it
assert own_gemm.entry().cache_hits == (0 if helper_fails else 1)
assert_matches_reference(graph, training_arrays(graph, batch=20), compiled=compiled, steps=2,
                         rtol=1e-4, atol=1e-5)
print("ok")
"""


@pytest.mark.parametrize("helper", ["works", "fails"])
def test_the_own_kernels_compile_beside_the_first_compile_and_load_before_it_runs(helper,
                                                                                  tmp_path):
    """own_entry.py: a cold compile forks a helper that compiles the entry point into Numba's
    cache; the compiled graph comes back with the flag raised and the entry point loaded from
    that cache (or compiled here where the helper failed), and agrees with the reference."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
                       NETDSL_CACHE_DIR=str(tmp_path / "netdsl"), NETDSL_SGEMM="netdsl",
                       NETDSL_COMPILE_JOBS="2",
                       PYTHONPATH=os.pathsep.join([str(Path(__file__).parent),
                                                   os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", ENTRY, helper], capture_output=True,
                            text=True, env=environment, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "ok"


FIRST_CALL = """
import os
from netdsl.backends.numba_cpu import blas_library
from netdsl.backends.numba_cpu import blas_threads      # binds the symbols: MKL's first call
call = blas_library._first_call
assert call is not None and call.name == "netdsl-mkl-first-call"
pid = os.fork()                                          # waits for it first (register_at_fork)
if pid == 0:
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
assert blas_library._first_call is None and not call.is_alive()
print("ok")
"""


def test_mkls_first_call_runs_beside_and_a_fork_waits_for_it():
    """blas_library.bind makes MKL's first call (its set-up, ~10 ms) on a thread of its own;
    ready() joins it, which every fork does first."""
    if _mkl_path() is None:
        pytest.skip("Intel MKL is not installed (pip install mkl)")
    result = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True,
                            env=dict(os.environ, NETDSL_BLAS="mkl"), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1:] == ["ok"]


PRELOAD = """
import os, sys
from netdsl.backends.numba_cpu import blas_library
blas_library.preload()
thread = blas_library._preload
assert thread is not None and thread.name == "netdsl-blas-load"
blas_library.preload()                                   # once per process
assert blas_library._preload is thread
pid = os.fork()                                          # waits for it first (register_at_fork)
if pid == 0:
    os._exit(0 if blas_library.chosen() is not None else 1)
assert os.waitpid(pid, 0)[1] == 0 and not thread.is_alive()
library = blas_library.chosen()
assert blas_library.narrow_library() is blas_library.narrow_library()
print(library.name, library.own_threads == blas_library._own_threads(library.name))
"""

BAD_CHOICE = """
from netdsl.backends.numba_cpu import blas_library
from netdsl.errors import Error
blas_library.preload()
blas_library._preload.join()                             # failed there, quietly
try:
    blas_library.chosen()
except Error as error:
    print("raised", "NETDSL_BLAS" in str(error))
"""


@pytest.mark.parametrize("library", ["openblas", "mkl"])
def test_the_libraries_load_on_a_thread_that_chosen_and_forks_wait_for(library):
    """blas_library.preload loads the chosen library and the narrow products' on a thread of
    its own; chosen() and a fork wait for it and find the same library a plain load finds."""
    if library == "mkl" and _mkl_path() is None:
        pytest.skip("Intel MKL is not installed (pip install mkl)")
    result = subprocess.run([sys.executable, "-c", PRELOAD], capture_output=True, text=True,
                            env=dict(os.environ, NETDSL_BLAS=library), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == [library, "True"]


def test_a_bad_choice_fails_where_the_compile_asks_not_on_the_loading_thread():
    result = subprocess.run([sys.executable, "-c", BAD_CHOICE], capture_output=True, text=True,
                            env=dict(os.environ, NETDSL_BLAS="bogus"), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["raised", "True"]
    assert "Traceback" not in result.stderr
