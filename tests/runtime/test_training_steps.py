"""The training plan (runtime/steps.py): one compiled step per objective over shared storage."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl
from netdsl.runtime.steps import build_plan, objectives

TWO_OBJECTIVES = """model Two {
    in x: f32[B, 2]
    in y: f32[B, 1]
    a = x |> Dense(1) as first
    b = x |> Dense(1) as second
    out p = a
    loss la = mse(a, y) wrt first
    loss lb = mse(b, y) wrt second
}
train Two {
    batch = 4
    epochs = 3
    optimizer = Adam(lr=0.05)
    split = 1
    shuffle = false
}
"""


def _model(tmp_path):
    path = tmp_path / "two.net"
    path.write_text(TWO_OBJECTIVES)
    return netdsl.load(path)


def _data(n: int = 8):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    return {"x": x, "y": (x[:, :1] - 2 * x[:, 1:]).astype(np.float32)}


def _under(names, layer: str) -> set[str]:
    return {name for name in names if name.startswith(layer + ".")}


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_each_objective_is_a_step_over_shared_storage(tmp_path, target):
    model = _model(tmp_path)
    weights = model.init(seed=1)
    assert objectives(model.training_forward) == ["la", "lb"]
    plan = build_plan(model, weights, model.train_config, target)
    first, second = plan.steps
    assert (first.objective, second.objective) == ("la", "lb")
    assert set(first.params) == _under(weights, "first") and first.params
    assert set(second.params) == _under(weights, "second") and second.params
    # Adam's slots are state, each step's own; parameters are one array per name.
    assert set(first.state) == {f"opt.{name}.{slot}" for name in first.params
                                for slot in ("m", "v")}
    assert set(first.state).isdisjoint(second.state)
    arrays = dict(plan.storage)                  # the same array objects
    data = _data(4)
    extra = {"__lr__": 0.05, "__step__": 1.0, "__rng__": 1}
    first(data, extra)
    for name in _under(weights, "first"):
        assert not np.array_equal(plan.storage[name], weights[name])
    for name in _under(weights, "second"):
        np.testing.assert_array_equal(plan.storage[name], weights[name])
    second(data, extra)
    for name in _under(weights, "second"):
        assert not np.array_equal(plan.storage[name], weights[name])
    for name, array in arrays.items():          # updated in place, never replaced
        assert plan.storage[name] is array


def test_fit_runs_every_objective_and_targets_agree(tmp_path):
    model = _model(tmp_path)
    weights = model.init(seed=1)
    results = {target: model.fit(weights, data=_data(), target=target)
               for target in ("cpu", "reference")}
    cpu, reference = results["cpu"], results["reference"]
    for name in weights:
        assert not np.array_equal(cpu.weights[name], weights[name])
        np.testing.assert_allclose(cpu.weights[name], reference.weights[name],
                                   rtol=1e-4, atol=1e-6)
    assert [row["loss"] for row in cpu.history] == pytest.approx(
        [row["loss"] for row in reference.history], rel=1e-4)
    assert cpu.history[-1]["loss"] < cpu.history[0]["loss"]
    assert set(cpu.optimizer_state) == {f"opt.{name}.{slot}" for name in weights
                                        for slot in ("m", "v")}


def test_an_objective_trains_only_its_layer(tmp_path):
    """With `lb` alone trained (its layer's learning would change `la`'s), `first` is as the
    single objective `la` leaves it: the steps do not leak into each other's parameters."""
    model = _model(tmp_path)
    weights = model.init(seed=1)
    both = model.fit(weights, data=_data(), target="reference")
    plan = build_plan(model, weights, model.train_config, "reference")
    only_first = plan.steps[0]
    data = _data()
    for step in range(1, 4):
        for start in (0, 4):
            chunk = {k: v[start:start + 4] for k, v in data.items()}
            only_first(chunk, {"__lr__": 0.05, "__step__": float(2 * step - 1 + start // 4),
                               "__rng__": 0})
    for name in _under(weights, "first"):
        np.testing.assert_allclose(plan.storage[name], both.weights[name], rtol=1e-6)
    for name in _under(weights, "second"):
        np.testing.assert_array_equal(plan.storage[name], weights[name])
