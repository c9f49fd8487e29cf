"""benchmarks/generative.py: the inference-forward and generative workloads build on both
sides and run a step that gives a finite loss (what benchmarks/run.py times); so does the
ResNet, whose two sides hold the same parameters."""
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


@pytest.mark.parametrize("key", ["forward", "vae", "gan", "diffusion", "resnet"])
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


def test_the_resnets_have_the_same_parameters(workloads):
    """netdsl's resnet.net and the torch module beside it: the same parameter count, and the
    same running statistics (BatchNorm's mean and variance per channel)."""
    torch = pytest.importorskip("torch")
    import netdsl
    workload = workloads.WORKLOAD_DEFS["resnet"]
    model = netdsl.load(workload.net)
    ours = model.init(seed=0)
    module = workload.torch_model(torch)
    trainable = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for name, b in module.named_buffers() if "running" in name)
    mine = {name: array.size for name, array in ours.items()}
    running = sum(size for name, size in mine.items() if "running" in name)
    assert sum(mine.values()) - running == trainable and running == buffers
