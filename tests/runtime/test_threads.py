"""NETDSL_BLAS_THREADS: unset (or 0) leaves BLAS its own count (the compiled products pick
theirs by size), a number limits it while netdsl runs, anything else is an error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netdsl.errors import Error
from netdsl.runtime.threads import blas_thread_count, limited_blas_threads

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value, count", [("", None), ("0", None), ("1", 1), (" 2 ", 2)])
def test_the_count(monkeypatch, value, count):
    monkeypatch.setenv("NETDSL_BLAS_THREADS", value)
    assert blas_thread_count() == count


def test_unset_is_no_limit(monkeypatch):
    monkeypatch.delenv("NETDSL_BLAS_THREADS", raising=False)
    assert blas_thread_count() is None
    from threadpoolctl import threadpool_info
    before = [info["num_threads"] for info in threadpool_info()]
    with limited_blas_threads():
        assert [info["num_threads"] for info in threadpool_info()] == before


@pytest.mark.parametrize("value", ["x", "-1", "1.5", "1e9", "9999999"])
def test_anything_else_is_an_error(monkeypatch, value):
    monkeypatch.setenv("NETDSL_BLAS_THREADS", value)
    with pytest.raises(Error, match="NETDSL_BLAS_THREADS must be a whole number"):
        blas_thread_count()


def test_train_says_so_and_exits_1():
    done = subprocess.run([sys.executable, "-m", "netdsl", "train", "examples/xor.net",
                           "--epochs", "1"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NETDSL_BLAS_THREADS": "two"}, timeout=300)
    assert done.returncode == 1
    assert "error: NETDSL_BLAS_THREADS must be a whole number of threads, got 'two'" in \
        done.stderr and "Traceback" not in done.stderr
