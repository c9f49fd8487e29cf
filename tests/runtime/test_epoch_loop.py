"""fit's epoch loop (runtime/epoch.py, batcher.py, metrics.MetricSet): the fast loop of a
one-step plan gives the same history, weights and resume states, bit for bit, as the general
loop over `plan.due`; the batches are `data.batches`'; the shared metric counts are each
metric's own."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netdsl
from netdsl.runtime import data as data_module
from netdsl.runtime import epoch as epoch_module
from netdsl.runtime.batcher import Batcher
from netdsl.runtime.metrics import MetricSet, make_metric
from netdsl.runtime.train import fit
from netdsl.runtime.train_config import with_overrides

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch", [3, 4, 10, 64])
def test_batches_are_data_batches(shuffle, batch):
    data = {"x": np.arange(40, dtype=np.float32).reshape(10, 2, 2),
            "y": np.arange(10, dtype=np.int64) * 7}
    batcher = Batcher(data, batch, ["y", "x"])
    old, new = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):                                      # three epochs
        expected = list(data_module.batches(data, batch, shuffle=shuffle, rng=old))
        order = batcher.order(shuffle, new)
        assert batcher.count == len(expected)
        for number, chunk in enumerate(expected):
            arrays = batcher.gather(order, number)
            assert batcher.size(number) == len(chunk["x"])
            assert np.array_equal(arrays[0], chunk["y"]) and np.array_equal(arrays[1], chunk["x"])
            assert all(a.flags.c_contiguous for a in arrays)
    assert old.bit_generator.state == new.bit_generator.state   # the same stream consumed


@pytest.mark.parametrize("flush_every", [1 << 20, 5])
def test_metric_set_counts_as_each_metric(monkeypatch, flush_every):
    monkeypatch.setattr(MetricSet, "FLUSH_IDS", flush_every)
    rng = np.random.default_rng(0)
    names = ["accuracy", "f1", "confusion", "iou"]
    alone = {name: make_metric(name, ignore_index=2) for name in names}
    shared = MetricSet({name: make_metric(name, ignore_index=2) for name in names})
    for classes in (3, 3, 6, 4):                        # a class count that grows, then not
        scores = rng.standard_normal((7, classes)).astype(np.float32)
        labels = rng.integers(0, classes, 7)
        for metric in alone.values():
            metric.update(scores, labels)
        shared.update(scores, labels)
    results = shared.results()
    for name, metric in alone.items():
        assert np.array_equal(np.asarray(results[name]), np.asarray(metric.result())), name
        assert np.array_equal(shared.metrics[name].matrix, metric.matrix)
    assert results["confusion"].shape == (6, 6) and results["confusion"].sum() > 0


def _histories(path: Path, general: bool, monkeypatch, stop_at: int | None = None,
               **options):
    """fit's result, through the fast loop or (general) the plan.due loop; with `stop_at`,
    interrupted before that step and resumed."""
    if general:
        monkeypatch.setattr(epoch_module.EpochRunner, "run", lambda self, *args:
                            self._run_plan(*args))
    model = netdsl.load(path)
    config = with_overrides(model.train_config, options, origin="test")
    calls = [0]

    def stop():
        calls[0] += 1
        return calls[0] == stop_at
    result = fit(model, model.init(seed=0), config, verbose=False,
                 should_stop=stop if stop_at else None)
    if stop_at:
        assert result.interrupted is not None
        result = fit(model, model.init(seed=0), config, verbose=False, resume=result.resume)
    monkeypatch.undo()
    return result


def _same(a, b) -> None:
    assert len(a.history) == len(b.history)
    for row, other in zip(a.history, b.history):
        keys = set(row) - {"seconds", "examples_per_second"}
        assert keys == set(other) - {"seconds", "examples_per_second"}
        for key in keys:
            assert np.array_equal(np.asarray(row[key]), np.asarray(other[key])), key
    for name, array in a.weights.items():
        assert np.array_equal(array, b.weights[name]), name


@pytest.mark.parametrize("example, options", [
    ("mlp_digits.net", {"epochs": 2, "metrics": ["accuracy", "f1", "confusion"],
                        "schedule": "cosine", "batch": 100}),
    ("vae_digits.net", {"epochs": 2, "batch": 128}),          # two loss terms: kl and nll
])
def test_the_fast_loop_is_the_general_loop(example, options, monkeypatch):
    path = EXAMPLES / example
    fast = _histories(path, False, monkeypatch, **options)
    general = _histories(path, True, monkeypatch, **options)
    _same(fast, general)
    assert fast.history[-1]["grad_norm"] > 0
    # stopped before step 20 (in epoch 2: 12 batches an epoch), then resumed
    resumed = _histories(path, False, monkeypatch, stop_at=20, **options)
    _same(fast, resumed)


def test_the_blas_limit_covers_the_blas_numba_calls():
    # Numba's matmuls call SciPy's OpenBLAS, loaded lazily: the limit must reach it when it is
    # not loaded yet, as in a fresh process (the first fit of a process ran it unlimited, and
    # summed in another order than the next fit).
    script = """
import sys
from threadpoolctl import threadpool_info
from netdsl.runtime.threads import blas_thread_count, limited_blas_threads
assert "scipy.linalg" not in sys.modules
with limited_blas_threads():
    import scipy.linalg.cython_blas
    counts = {info["filepath"]: info["num_threads"] for info in threadpool_info()
              if info["user_api"] == "blas"}
assert any("scipy" in path for path in counts), counts
assert set(counts.values()) == {blas_thread_count()}, counts
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "NETDSL_BLAS_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
