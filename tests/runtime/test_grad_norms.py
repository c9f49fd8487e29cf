"""Gradient norms in the training history: `grad_norm` (global) and `grad_norm.<layer>`, the
mean over an epoch's steps of the norms each compiled step outputs, checked against NumPy norms
of Model.loss_and_grad's gradients on the same batch and weights."""
from __future__ import annotations

import numpy as np
import pytest

import netdsl

MODEL = """
model Two {
    in  x: f32[B, 3]
    in  y: f32[B, 1]
    out pred = x |> Dense(4) as fc1 |> tanh |> Dense(1) as fc2
    loss mse(pred, y)
}
"""

GAN = """
model Pair {
    in  z: f32[B, 2]
    in  x: f32[B, 2]
    fake = z |> Dense(2) as gen
    disc = Dense(1)
    out sample = fake
    loss d_loss = mean(disc(stop_gradient(fake))) - mean(disc(x)) wrt disc
    loss g_loss = -mean(disc(fake)) wrt gen
}
"""


def _data(count: int = 8):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(count, 3)).astype(np.float32)
    return {"x": x, "y": (x[:, :1] * 2 - x[:, 1:2]).astype(np.float32)}


def _norms(model, weights, batch) -> dict[str, float]:
    """The norms of the gradients Model.loss_and_grad gives, by NumPy, grouped by layer."""
    _, grads = model.loss_and_grad(weights, batch)
    layers: dict[str, float] = {}
    for name, grad in grads.items():
        layer = name.rsplit(".", 1)[0]
        layers[layer] = layers.get(layer, 0.0) + float(np.sum(grad.astype(np.float64) ** 2))
    norms = {f"grad_norm.{layer}": np.sqrt(total) for layer, total in layers.items()}
    norms["grad_norm"] = np.sqrt(sum(layers.values()))
    return norms


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("norms") / "two.net"
    path.write_text(MODEL)
    return netdsl.load(path)


def test_one_step_fit_reports_the_norms_of_its_gradients(model):
    weights = model.init(seed=0)
    data = _data()
    history = model.fit(weights, data, epochs=1, batch=8, split=1.0, shuffle=False,
                        optimizer="Adam", lr=0.1).history
    expected = _norms(model, weights, data)
    row = history[0]
    assert sorted(k for k in row if k.startswith("grad_norm")) == \
        ["grad_norm", "grad_norm.fc1", "grad_norm.fc2"]
    for column, value in expected.items():
        assert row[column] == pytest.approx(value, rel=1e-5), column
    assert row["grad_norm"] > 0.1


def test_the_epoch_value_is_the_mean_over_its_steps(model):
    """With SGD at a learning rate of 1e-30 the weights stay put, so each of the two steps of the
    epoch sees the same weights and its own half of the data."""
    weights = model.init(seed=0)
    data = _data()
    history = model.fit(weights, data, epochs=1, batch=4, split=1.0, shuffle=False,
                        optimizer="SGD", lr=1e-30).history
    halves = [_norms(model, weights, {k: v[start:start + 4] for k, v in data.items()})
              for start in (0, 4)]
    assert halves[0]["grad_norm"] != pytest.approx(halves[1]["grad_norm"], rel=1e-2)
    for column in halves[0]:
        mean = (halves[0][column] + halves[1][column]) / 2
        assert history[0][column] == pytest.approx(mean, rel=1e-5), column


def test_clipping_does_not_change_the_reported_norm(model):
    weights = model.init(seed=0)
    data = _data()
    row = model.fit(weights, data, epochs=1, batch=8, split=1.0, clip_norm=1e-3,
                    optimizer="SGD", lr=0.1).history[0]
    assert row["grad_norm"] == pytest.approx(_norms(model, weights, data)["grad_norm"],
                                             rel=1e-5)


def test_each_objective_has_its_own_norms(tmp_path):
    path = tmp_path / "pair.net"
    path.write_text(GAN)
    gan = netdsl.load(path)
    weights = gan.init(seed=0)
    rng = np.random.default_rng(0)
    data = {"z": rng.normal(size=(6, 2)).astype(np.float32),
            "x": rng.normal(size=(6, 2)).astype(np.float32)}
    row = gan.fit(weights, data, epochs=1, batch=6, split=1.0, shuffle=False,
                  optimizer="SGD", lr=0.1).history[0]
    assert sorted(k for k in row if k.startswith("grad_norm")) == \
        ["grad_norm.d_loss", "grad_norm.d_loss.disc", "grad_norm.g_loss", "grad_norm.g_loss.gen"]
    # The discriminator steps first, on the initial weights.
    _, grads = gan.loss_and_grad(weights, data, loss="d_loss")
    expected = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    assert row["grad_norm.d_loss"] == pytest.approx(expected, rel=1e-5)
    assert row["grad_norm.d_loss.disc"] == pytest.approx(expected, rel=1e-5)
