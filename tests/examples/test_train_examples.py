"""Every example trains to the result its comment states (compiled CPU target).

The epochs are the examples' own, except where marked: CI runs them in full because each step
is a single compiled call (milliseconds); the compile itself is cached across the test session.
"""
from __future__ import annotations

import numpy as np
import pytest

import netdsl

pytest.importorskip("sklearn")  # digits


def train(root, name: str, **options):
    model = netdsl.load(root / "examples" / name)
    result = model.fit(model.init(seed=0), target="cpu", **options)
    return model, result


def test_xor_reaches_full_accuracy(root):
    model, result = train(root, "xor.net", split=1.0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    prob = model.forward(result.weights, {"x": x}, target="cpu")["prob"].ravel()
    assert ((prob > 0.5) == np.array([0, 1, 1, 0], bool)).all(), prob
    assert result.history[-1]["accuracy"] == 1.0


def test_perceptron_learns_and(root):
    model, result = train(root, "perceptron.net", split=1.0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y_hat = model.forward(result.weights, {"x": x}, target="cpu")["y_hat"].ravel()
    assert y_hat.tolist() == [0, 0, 0, 1]


def test_mlp_digits_reaches_95_percent(root):
    _, result = train(root, "mlp_digits.net")
    assert result.history[-1]["val_accuracy"] >= 0.95, result.history[-1]


def test_lenet_digits_reaches_97_percent(root):
    _, result = train(root, "lenet_digits.net")
    best = max(row["val_accuracy"] for row in result.history)
    assert result.history[-1]["val_accuracy"] >= 0.97, (best, result.history[-1])


def test_rnn_learns_the_sequence_task(root):
    _, result = train(root, "rnn_sequence.net")
    assert result.history[-1]["val_accuracy"] >= 0.9, result.history[-1]
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_resnet_digits_reaches_97_percent(root):
    # Measured: 0.989 after the 10 epochs as written (0.972 after 5).
    _, result = train(root, "resnet_digits.net")
    assert result.history[-1]["val_accuracy"] >= 0.97, result.history[-1]


@pytest.mark.parametrize("name", ["lstm_sequence.net", "gru_sequence.net"])
def test_stacked_recurrent_examples_recall_the_first_token(root, name):
    # CI runs 5 of the examples' 10 epochs: measured validation accuracy 1.0 from epoch 3 (GRU);
    # LSTM 0.9975 at epoch 4, 1.0 from 5.  Chance is 0.25.
    _, result = train(root, name, epochs=5)
    assert result.history[-1]["val_accuracy"] >= 0.95, result.history[-1]


def test_residual_mlp_trains_on_synthetic_data(root):
    model = netdsl.load(root / "examples" / "residual_mlp.net")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(256, 16)).astype(np.float32)
    b = rng.normal(size=(256, 16)).astype(np.float32)
    label = (a[:, :4] + b[:, :4]).argmax(axis=1)
    data = {"a": a, "b": b, "label": label}
    result = model.fit(model.init(0), data, target="cpu", epochs=15, batch=32, lr=3e-3,
                       split=1.0, metrics=["accuracy"])
    # Measured: loss 1.96 -> 0.017, training accuracy 1.0 from epoch 8 on, 0.83 on 512 unseen
    # points (chance is 0.25); seeds 1-3 of the initialisation give 1.0 and 0.80-0.82.
    last = result.history[-1]
    assert last["loss"] < 0.1 and last["loss"] < 0.1 * result.history[0]["loss"], last
    assert last["accuracy"] >= 0.95, last
    held_out = np.random.default_rng(1)
    a = held_out.normal(size=(512, 16)).astype(np.float32)
    b = held_out.normal(size=(512, 16)).astype(np.float32)
    probs = model.forward(result.weights, {"a": a, "b": b}, target="cpu")["probs"]
    accuracy = float(np.mean(probs.argmax(axis=1) == (a[:, :4] + b[:, :4]).argmax(axis=1)))
    assert accuracy >= 0.7, accuracy
