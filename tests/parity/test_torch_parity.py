"""Numerics against PyTorch: forward, loss and gradients of Dense, Conv and RNN models.

Weights are made by netdsl, copied into the equivalent torch modules (the layouts of section 9
are PyTorch's, so no transposes), and both frameworks evaluate the same batch.  Skipped cleanly
where torch is not installed.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

import netdsl

torch = pytest.importorskip("torch")

TARGETS = ["reference", "cpu"]


def load(tmp_path, text: str) -> netdsl.Model:
    path = tmp_path / "parity.net"
    path.write_text(textwrap.dedent(text))
    return netdsl.load(path)


def torch_grads(loss, named: dict) -> dict[str, np.ndarray]:
    loss.backward()
    return {name: tensor.grad.numpy() for name, tensor in named.items()}


def assert_close(ours: dict, theirs: dict, rtol=2e-4, atol=2e-5):
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("target", TARGETS)
def test_dense_mlp_matches_torch(tmp_path, target):
    model = load(tmp_path, """
        model Mlp {
            in x: f32[B, 6]
            in y: i64[B]
            logits = x |> Dense(16) as fc1 |> relu |> Dense(4) as fc2
            out probs = softmax(logits)
            loss cross_entropy(logits, y)
        }
    """)
    weights = model.init(seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=8)
    loss, grads = model.loss_and_grad(weights, {"x": x, "y": y}, target=target)
    probs = model.forward(weights, {"x": x}, target=target)["probs"]

    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    hidden = torch.relu(torch.tensor(x) @ params["fc1.weight"].T + params["fc1.bias"])
    logits = hidden @ params["fc2.weight"].T + params["fc2.bias"]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    np.testing.assert_allclose(probs, torch.softmax(logits, -1).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-5)
    assert_close(grads, torch_grads(expected, params))


@pytest.mark.parametrize("target", TARGETS)
def test_conv_pool_matches_torch(tmp_path, target):
    model = load(tmp_path, """
        model Cnn {
            in image: f32[B, 2, 9, 9]
            in label: i64[B]
            logits = image
                |> Conv2D(4, kernel=3, stride=2, padding=1) as conv1 |> relu |> MaxPool(2)
                |> Conv2D(3, kernel=1) as conv2 |> AvgPool(2)
                |> Flatten |> Dense(5) as fc
            loss cross_entropy(logits, label)
        }
    """)
    weights = model.init(seed=1)
    rng = np.random.default_rng(1)
    image = rng.normal(size=(3, 2, 9, 9)).astype(np.float32)
    label = rng.integers(0, 5, size=3)
    loss, grads = model.loss_and_grad(weights, {"image": image, "label": label}, target=target)

    F = torch.nn.functional
    p = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(image), p["conv1.weight"], p["conv1.bias"],
                                     stride=2, padding=1)), 2)
    h = F.avg_pool2d(F.conv2d(h, p["conv2.weight"], p["conv2.bias"]), 2)
    logits = h.flatten(1) @ p["fc.weight"].T + p["fc.bias"]
    expected = F.cross_entropy(logits, torch.tensor(label))
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-5)
    assert_close(grads, torch_grads(expected, p))


@pytest.mark.parametrize("target", TARGETS)
def test_rnn_matches_torch(tmp_path, target):
    model = load(tmp_path, """
        model Seq {
            in x: f32[B, T, 3]
            in t: f32[B, T, 5]
            hs = x |> RNN(5) as rnn
            loss mse(hs, t)
        }
    """)
    weights = model.init(seed=2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 7, 3)).astype(np.float32)
    t = rng.normal(size=(4, 7, 5)).astype(np.float32)
    loss, grads = model.loss_and_grad(weights, {"x": x, "t": t}, target=target)

    rnn = torch.nn.RNN(3, 5, batch_first=True)
    with torch.no_grad():
        for ours, theirs in (("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"),
                             ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0")):
            getattr(rnn, theirs).copy_(torch.tensor(weights[f"rnn.{ours}"]))
    hs, _ = rnn(torch.tensor(x))
    expected = torch.nn.functional.mse_loss(hs, torch.tensor(t))
    expected.backward()
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-5)
    theirs = {f"rnn.{ours}": getattr(rnn, name).grad.numpy() for ours, name in
              (("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"),
               ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0"))}
    assert_close(grads, theirs)


def test_adam_training_steps_match_torch(tmp_path):
    """Five Adam steps of netdsl's compiled training step against torch.optim.Adam."""
    model = load(tmp_path, """
        model Reg {
            in x: f32[B, 3]
            in y: f32[B, 2]
            loss mse(x |> Dense(4) as fc1 |> tanh |> Dense(2) as fc2, y)
        }
    """)
    weights = model.init(seed=5)
    rng = np.random.default_rng(5)
    data = {"x": rng.normal(size=(16, 3)).astype(np.float32),
            "y": rng.normal(size=(16, 2)).astype(np.float32)}
    result = model.fit(weights, data, target="cpu", epochs=5, batch=16, lr=0.01,
                       optimizer="adam", split=1.0, shuffle=False)

    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    optimizer = torch.optim.Adam(params.values(), lr=0.01)
    x, y = torch.tensor(data["x"]), torch.tensor(data["y"])
    for _ in range(5):
        optimizer.zero_grad()
        h = torch.tanh(x @ params["fc1.weight"].T + params["fc1.bias"])
        loss = torch.nn.functional.mse_loss(h @ params["fc2.weight"].T + params["fc2.bias"], y)
        loss.backward()
        optimizer.step()
    assert_close(result.weights, {k: v.detach().numpy() for k, v in params.items()},
                 rtol=1e-4, atol=1e-5)
