"""Shared test set-up: one compile cache for the whole session (each model is compiled by LLVM
once, even across test files), and the repository root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NETDSL_CACHE_DIR", str(ROOT / ".netdsl-cache"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
