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


def _with_objectives(tmp_path, *lines: str):
    text = TWO_OBJECTIVES.replace("    shuffle = false\n",
                                  "    shuffle = false\n" + "".join(f"    {l}\n" for l in lines))
    path = tmp_path / "objectives.net"
    path.write_text(text)
    return netdsl.load(path)


def test_each_objective_has_its_own_optimizer_and_alternation(tmp_path):
    model = _with_objectives(tmp_path, "objective(la, optimizer=SGD(lr=0.1))",
                             "objective(lb, every=2, lr=0.01, schedule=step(every=1, gamma=0.5))")
    weights = model.init(seed=1)
    config = model.train_config
    plan = build_plan(model, weights, config, "reference", steps_per_epoch=2)
    first, second = plan.steps
    assert first.state == [] and first.every == 1            # plain SGD keeps no slots
    assert {name.rsplit(".", 1)[1] for name in second.state} == {"m", "v"}   # Adam's
    assert first.schedule(0) == pytest.approx(0.1) and first.schedule(5) == pytest.approx(0.1)
    # lb steps once every two batches: one update per epoch of two batches, halving each epoch.
    assert second.every == 2
    assert [second.schedule(u) for u in range(3)] == pytest.approx([0.01, 0.005, 0.0025])
    due = [(number, index, hyper["__step__"]) for number in range(1, 6)
           for index, _, hyper in plan.due(number)]
    assert due == [(1, 0, 1.0), (1, 1, 1.0), (2, 0, 2.0), (3, 0, 3.0), (3, 1, 2.0),
                   (4, 0, 4.0), (5, 0, 5.0), (5, 1, 3.0)]

    # fit runs exactly that: the same steps by hand give the same weights.
    result = model.fit(weights, data=_data(), target="reference")
    data = _data()
    for number in range(1, 7):                   # 3 epochs of 2 batches, unshuffled
        start = 4 * ((number - 1) % 2)
        chunk = {k: v[start:start + 4] for k, v in data.items()}
        for _, step, hyper in plan.due(number):
            step(chunk, hyper)
    for name in weights:
        np.testing.assert_allclose(result.weights[name], plan.storage[name], rtol=1e-6)
    # The table has a column per objective, each averaged over the batches its step ran on.
    assert {"la", "lb", "loss", "lr.la", "lr.lb"} <= set(result.history[0])
    assert result.history[0]["loss"] == pytest.approx(result.history[0]["la"] +
                                                      result.history[0]["lb"])
    assert result.history[2]["lr.lb"] == pytest.approx(0.0025)


@pytest.mark.parametrize("line, message, hint", [
    ("objective(lc, lr=0.1)", "model Two has no objective 'lc'", "its objectives: la, lb"),
    ("objective(la, momentum=0.9)", "objective(la) has no key 'momentum'", None),
    ("objective(la, every=0)", "objective(la) every must be at least 1, got 0", None),
    ("objective(la, lr=-1)", "objective(la) lr must be a finite number > 0, got -1.0", None),
    ("objective(lr=0.1)", "objective takes the loss's name", None),
])
def test_a_wrong_objective_line_is_an_error_at_it(tmp_path, line, message, hint):
    from netdsl.errors import Error
    with pytest.raises(Error) as caught:
        model = _with_objectives(tmp_path, line)
        model.fit(model.init(), data=_data(), target="reference")
    assert message in caught.value.message
    assert caught.value.span is not None and caught.value.span.line == 16
    if hint:
        assert caught.value.diagnostics[0].hint == hint


def test_loss_and_grad_names_one_objective(tmp_path):
    from netdsl.errors import Error
    model = _model(tmp_path)
    weights = model.init(seed=1)
    data = _data(4)
    with pytest.raises(Error, match="several objectives"):
        model.loss_and_grad(weights, data)
    loss, grads = model.loss_and_grad(weights, data, loss="lb")
    assert set(grads) == _under(weights, "second")
    b = data["x"] @ weights["second.weight"].T + weights["second.bias"]
    assert loss == pytest.approx(float(np.mean((b - data["y"]) ** 2)), rel=1e-5)
    expected = 2 * (b - data["y"]).T @ data["x"] / len(b)
    np.testing.assert_allclose(grads["second.weight"], expected, rtol=1e-4)
