"""benchmarks/generative.py: the inference-forward and generative workloads build on both
sides and run a step that gives a finite loss (what benchmarks/run.py times)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def workloads():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import workloads
        yield workloads
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("key", ["forward", "vae", "gan", "diffusion"])
def test_workload_runs_on_both_sides(workloads, key):
    workload = workloads.WORKLOAD_DEFS[key]
    assert key in workloads.WORKLOADS
    arrays = workload.data(np.random.default_rng(0))
    run, report = workloads.netdsl_stepper(workload, arrays)
    losses = [run.loss() for _ in range(3)]
    assert all(math.isfinite(loss) for loss in losses)
    if key != "forward":                     # a training step changes the weights it reads
        assert losses[0] != losses[2]
    torch = pytest.importorskip("torch")
    torch_run, kind = workloads.torch_stepper(torch, workload, arrays)
    assert math.isfinite(torch_run.loss()) and kind
