"""A non-finite loss names the op that made the first non-finite value (issue 8), on both
targets, whether it was made in the forward pass, a gradient or the optimiser's update."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl
from netdsl.errors import Error
from netdsl.runtime import anomaly

HEAD = """model M {
    in x: f32[B, 4]
    in y: f32[B, 1]
    h = x |> Dense(1) as fc
    out p = h
"""
TRAIN = """train M {{
    batch = 4
    epochs = {epochs}
    split = 1.0
    optimizer = {optimizer}
}}
"""


def _fit(tmp_path, loss: str, target: str = "cpu", x: float = 1.0, epochs: int = 1,
         optimizer: str = "SGD(lr=0.1)", examples: int = 8):
    path = tmp_path / "m.net"
    path.write_text(HEAD + f"    loss {loss}\n}}\n" + TRAIN.format(epochs=epochs,
                                                                     optimizer=optimizer))
    model = netdsl.load(path)
    data = {"x": np.full((examples, 4), x, np.float32), "y": np.zeros((examples, 1), np.float32)}
    with pytest.raises(Error) as caught:
        model.fit(model.init(), data, target=target)
    return caught.value


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_a_division_by_zero_in_the_forward_pass(tmp_path, target):
    # Numba's default error model raised ZeroDivisionError here; now it is inf, as in NumPy.
    error = _fit(tmp_path, "mse(h, y) + mean(1.0 / (x - x))", target)
    assert error.message == ("the loss became inf at epoch 1, step 1: the first non-finite "
                             "value was made by div here (in the forward pass)")
    assert (error.span.line, error.span.column) == (6, 27)     # 1.0 / (x - x)
    assert error.diagnostics[0].hint == ("div made inf from finite inputs: a division by zero, "
                                         "or 0/0")


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_a_gradient_that_is_not_finite(tmp_path, target):
    # sqrt(0) is finite, its derivative is not: the loss is finite until the update has
    # written the non-finite gradient into the weights.
    error = _fit(tmp_path, "mse(h, y) + mean(sqrt(h * 0.0))", target)
    assert error.message.startswith(
        "the loss became nan at epoch 1, step 2 (the weights became non-finite in the update "
        "of step 1): the first non-finite value was made by the gradient of this expression")
    assert "in the backward pass" in error.message
    assert (error.span.line, error.span.column) == (6, 27)     # sqrt(h * 0.0)


def test_an_update_that_overflows_blames_the_optimizer(tmp_path):
    error = _fit(tmp_path, "mse(h, y)", x=100.0, optimizer="SGD(lr=1e37)")
    assert "the optimiser's update of the parameters of fc made the first non-finite" \
        in error.message
    assert error.span.line == 12                               # optimizer = SGD(lr=1e37)
    assert error.diagnostics[0].hint == "lower the learning rate, or clip gradients with clip_norm"


def test_a_late_overflow_is_found_by_either_replay(tmp_path, monkeypatch):
    # Minimising -h^2 multiplies the weights by ~11 a step: the loss overflows after several
    # epochs.  A replay from the failing epoch's copy, from an older epoch's copy (a copy is
    # taken at most every SNAPSHOT_SECONDS) and from the initial weights must agree.
    results, real = [], anomaly.NonFiniteWatch._replay
    monkeypatch.setattr(anomaly, "SNAPSHOT_SPACING", 0)
    for snapshot, seconds in ((anomaly.SNAPSHOT_BYTES, 0.0), (anomaly.SNAPSHOT_BYTES, 1e9),
                              (0, 0.0)):             # 0 bytes: too large to copy
        monkeypatch.setattr(anomaly, "SNAPSHOT_BYTES", snapshot)
        monkeypatch.setattr(anomaly, "SNAPSHOT_SECONDS", seconds)
        replays = []

        def replay(self, epoch, global_step):
            replays.append((self.snapshot[0], self.snapshot[2] is not None))
            return real(self, epoch, global_step)
        monkeypatch.setattr(anomaly.NonFiniteWatch, "_replay", replay)
        error = _fit(tmp_path, "0.0 - mean(h * h)", epochs=50, optimizer="SGD(lr=1.0)",
                     examples=12)
        results.append(error.message)
        failed = int(error.message.split("at epoch ")[1].split(",")[0])
        # (the epoch its snapshot was taken at, whether it holds a copy)
        assert replays == [[(failed, True), (1, False), (1, False)][len(results) - 1]]
    assert results[0] == results[1] == results[2]
    assert "epoch 1," not in results[0] and "the first non-finite value was made by" \
        in results[0]


def test_the_diagnosis_never_hides_the_loss(tmp_path, monkeypatch):
    def broken(self, epoch, global_step):
        raise RuntimeError("boom")
    monkeypatch.setattr(anomaly.NonFiniteWatch, "_replay", broken)
    error = _fit(tmp_path, "mse(h, y) + mean(1.0 / (x - x))")
    assert error.message == ("the loss became inf at epoch 1, step 1 (the op that made it was "
                             "not found: finding the first non-finite value failed: "
                             "RuntimeError('boom'))")
    assert error.span.line == 12


def test_snapshots_reuse_their_arrays_and_are_spaced_by_their_cost(monkeypatch):
    # Each copy goes into the last copy's arrays (no fresh pages), and the next one waits
    # SNAPSHOT_SPACING times as long as the copy took (and SNAPSHOT_SECONDS).
    clock = [100.0]

    def perf_counter():
        clock[0] += 0.001                   # every reading: 1 ms later (a copy "takes" 1 ms)
        return clock[0]
    monkeypatch.setattr(anomaly.time, "perf_counter", perf_counter)
    monkeypatch.setattr(anomaly, "SNAPSHOT_SECONDS", 0.05)
    monkeypatch.setattr(anomaly, "SNAPSHOT_SPACING", 100)
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "m": np.zeros(4, np.float32)}

    class Plan:
        steps, storage = [], state
    watch = anomaly.NonFiniteWatch(Plan(), {}, {}, config=None)
    watch.fresh = False
    rng = np.random.default_rng(0)
    watch.epoch_started(1, 1, rng)
    first = watch.snapshot[2]
    assert first is not None and first["w"] is not state["w"]
    np.testing.assert_array_equal(first["w"], state["w"])
    state["w"] += 1.0
    clock[0] += 0.06                        # past SNAPSHOT_SECONDS, not past 100 x 1 ms
    watch.epoch_started(2, 5, rng)
    assert watch.snapshot[0] == 1           # not copied: the last copy is too recent
    clock[0] += 0.05
    watch.epoch_started(3, 9, rng)
    epoch, first_step, copied, _ = watch.snapshot
    assert (epoch, first_step) == (3, 9)
    assert copied["w"] is first["w"] and copied["m"] is first["m"]     # the same arrays
    np.testing.assert_array_equal(copied["w"], state["w"])
