"""Shared test set-up: one compile cache for the whole session (each model is compiled by LLVM
once, even across test files), and the repository root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NETDSL_CACHE_DIR", str(ROOT / ".netdsl-cache"))
# pytest-xdist runs one worker per core: fits holding a second, spinning OpenBLAS thread each
# would oversubscribe them (tests/runtime/test_threads.py checks the default, no limit).
os.environ.setdefault("NETDSL_BLAS_THREADS", "1")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
