#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (the README's test command; .ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."

# Graphviz's `dot` renders diagrams; the tests render every example to SVG.
if ! command -v dot >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq graphviz >/dev/null
    else
        echo "warning: Graphviz's dot program is missing; rendering tests will be skipped" >&2
    fi
fi

python -m pip install -q --disable-pip-version-check -e ".[test]"
# PyTorch (CPU build) for the parity tests; they skip cleanly where it is not installed.
python -m pip install -q --disable-pip-version-check "torch==2.13.0" \
    || echo "warning: torch could not be installed; parity tests will be skipped" >&2

# Intel MKL, so that the tests run netdsl's products on it where the processor is Intel's (and
# test_blas_library.py checks both libraries); they run on OpenBLAS without it.
python -m pip install -q --disable-pip-version-check -e ".[mkl]" \
    || echo "warning: mkl could not be installed; products run on OpenBLAS only" >&2

# One compile cache for the whole run, so each model is compiled by LLVM once.
export NETDSL_CACHE_DIR="${NETDSL_CACHE_DIR:-$PWD/.netdsl-cache}"
export NUMBA_ENABLE_CUDASIM="${NUMBA_ENABLE_CUDASIM:-1}"
# One worker per core (pytest-xdist; NETDSL_TEST_WORKERS=0 runs in this process): most of the
# suite's time is single-threaded LLVM compiling, so the workers overlap it.  worksteal keeps
# both busy when one file (the trained examples) is much longer than the rest.
python -m pytest -q -n "${NETDSL_TEST_WORKERS:-auto}" --dist worksteal "$@"
