"""Backend test set-up: every test shares the session's compile cache (tests/conftest.py sets
NETDSL_CACHE_DIR), so a model compiled by one test is a cache hit for the next."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """The shared compile cache directory (a session temp dir if none is configured)."""
    if "NETDSL_CACHE_DIR" not in os.environ:
        os.environ["NETDSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("netdsl-cache"))
    return Path(os.environ["NETDSL_CACHE_DIR"])


@pytest.fixture(autouse=True)
def _shared_cache(cache_dir):
    yield
