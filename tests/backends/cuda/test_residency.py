"""The cuda target keeps parameters and optimiser state on the device between bound steps:
one device copy per host array, shared by every step bound to it; the host arrays change only
when synchronised.  And without a device or the simulator, `--target cuda` is a clear error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from backend_helpers import mlp_graph, training_graph
from cuda_helpers import needs_cuda
from netdsl.backends import compile_graph
from netdsl.backends.reference import run as reference_run

ROOT = Path(__file__).resolve().parents[3]


def _training_graph():
    return training_graph(mlp_graph((4, 6, 3)), "sgd")


def _arrays(graph, seed=0):
    rng = np.random.default_rng(seed)
    return {p.name: rng.standard_normal(tuple(p.value.shape)).astype(np.float32)
            for p in graph.params}


def _reference_step(graph, state: dict, feed: dict) -> dict:
    """The state after one reference step (reference.run writes updates into its dict)."""
    arrays = {name: array.copy() for name, array in state.items()}
    arrays.update(feed)
    reference_run(graph, arrays)
    return {name: arrays[name] for name in state}


@needs_cuda
def test_bound_steps_share_one_device_copy_and_sync_on_demand():
    graph = _training_graph()
    compiled = compile_graph(graph, target="cuda")
    state = _arrays(graph)
    before = {name: array.copy() for name, array in state.items()}
    inputs = [v.name for v in graph.inputs]
    first, second = compiled.bind(state, inputs), compiled.bind(state, inputs)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((5, 4)).astype(np.float32),
              "y": rng.standard_normal((5, 3)).astype(np.float32)} for _ in range(2)]
    hyper = {name: np.array(0.1 if name == "__lr__" else 1.0, np.float32)
             for name in inputs if name.startswith("__")}
    expected = {name: array.copy() for name, array in before.items()}
    for step, feed in zip((first, second), feeds):   # two steps, each through another binding
        step(*({**feed, **hyper}[name] for name in inputs))
        expected = _reference_step(graph, expected, {**feed, **hyper})
    # Nothing came back to the host yet: the training ran on the device copies.
    for name in state:
        np.testing.assert_array_equal(state[name], before[name])
    second.bound.synchronize()
    for name in graph.state_updates:
        np.testing.assert_allclose(state[name], expected[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        assert not np.array_equal(state[name], before[name]), name
    # A host change reaches the device with upload (what a resumed run does).
    for name in state:
        state[name][...] = before[name]
    first.bound.upload()
    first(*({**feeds[0], **hyper}[name] for name in inputs))
    first.bound.synchronize()
    again = _reference_step(graph, before, {**feeds[0], **hyper})
    for name in graph.state_updates:
        np.testing.assert_allclose(state[name], again[name], rtol=1e-5, atol=1e-6)


def test_no_device_and_no_simulator_is_a_clear_error():
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run([sys.executable, "-m", "netdsl", "train", str(ROOT / "examples" /
                                                                       "xor.net"),
                          "--target", "cuda", "--epochs", "1"],
                         capture_output=True, text=True, env=environment, timeout=300)
    if run.returncode == 0:
        import pytest
        pytest.skip("this machine has a CUDA device")
    assert run.returncode == 1, run.stderr
    assert "no CUDA device found; set NUMBA_ENABLE_CUDASIM=1 to simulate" in run.stderr
    assert "Traceback" not in run.stderr
