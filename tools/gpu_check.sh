#!/usr/bin/env bash
# The GPU checks, as one short script for a lent GPU machine (the workplace's device tool):
# the cuda target's tests on the real device (no simulator), then the CUDA benchmark.
#
#   bash tools/gpu_check.sh OUT_DIR [TEST_SECONDS] [BENCH_SECONDS] [BENCH_FLAGS...]
#
# The machine has PyTorch, Numba and numba-cuda but no network: netdsl's pure-Python
# dependencies travel as wheels in .whl/ (see the README's GPU section for how to fetch them).
# numba-cuda 0.30.4 registers an overload of np.row_stack, which NumPy 2.5 removed: on a machine
# with NumPy 2.5 every kernel launch fails with AttributeError, so carry a NumPy 2.4 wheel too.
# Logs and the results table land in OUT_DIR.  Each part runs under its own time limit so that
# a slow part still leaves the other's results.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: gpu_check.sh OUT_DIR [TEST_SECONDS] [BENCH_SECONDS] [BENCH_FLAGS...]}"
test_seconds="${2:-200}"
bench_seconds="${3:-200}"
shift $(( $# < 3 ? $# : 3 ))
mkdir -p "$out"
export PYTHONUNBUFFERED=1 NUMBA_ENABLE_CUDASIM=0 NETDSL_CACHE_DIR=/tmp/netdsl-gpu-cache
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
{
    nvidia-smi -L
    python3 -c 'import numba, numpy, torch; from numba import cuda
print("numba", numba.__version__, "numpy", numpy.__version__, "torch", torch.__version__)
print("device", cuda.get_current_device().name, "cc", cuda.get_current_device().compute_capability)'
    nproc
} 2>&1 | tee "$out/machine.txt"

# The cuda target's own tests, every op of the registry on cuda, the differential tester's
# cuda campaign, the CUDA benchmark's smoke test (at full size below).
timeout "$test_seconds" python3 -m pytest -q -p no:cacheprovider -n 8 -rfE \
    tests/backends/cuda tests/ops/test_registry.py::test_cuda_matches_reference \
    tests/fuzz/test_fuzz.py::test_generated_programs_agree_on_cuda 2>&1 | tee "$out/tests.log"
echo "tests exit: ${PIPESTATUS[0]}" | tee -a "$out/tests.log"

timeout "$bench_seconds" python3 -m benchmarks.cuda --out "$out/RESULTS_CUDA.md" "$@" 2>&1 \
    | tee "$out/bench.log"
echo "benchmark exit: ${PIPESTATUS[0]}" | tee -a "$out/bench.log"
