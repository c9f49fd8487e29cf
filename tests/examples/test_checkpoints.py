"""Checkpoints: train --out, run --weights, and the errors for a checkpoint that does not fit."""
from __future__ import annotations

import numpy as np

import netdsl
from netdsl.cli import main
from netdsl.runtime.checkpoint import load_checkpoint, save_checkpoint


def xor_forward(weights: dict, x: np.ndarray) -> np.ndarray:
    """examples/xor.net written out in NumPy: sigmoid(Dense(1)(tanh(Dense(8)(x)))), float64.
    Dense stores its weight as [out, in] (y = x W^T + b)."""
    hidden = np.tanh(x @ weights["hidden.weight"].T.astype(np.float64) + weights["hidden.bias"])
    logits = hidden @ weights["output.weight"].T.astype(np.float64) + weights["output.bias"]
    return 1.0 / (1.0 + np.exp(-logits))


def test_train_then_run_round_trip(root, tmp_path, capsys):
    checkpoint = tmp_path / "xor.npz"
    assert main(["train", str(root / "examples/xor.net"), "--epochs", "5", "--quiet",
                 "--out", str(checkpoint)]) == 0
    weights = load_checkpoint(checkpoint).weights
    assert set(weights) == {"hidden.weight", "hidden.bias", "output.weight", "output.bias"}
    assert {k: v.shape for k, v in weights.items()} == {
        "hidden.weight": (8, 2), "hidden.bias": (8,), "output.weight": (1, 8),
        "output.bias": (1,)}
    # Five epochs moved the weights away from the initialisation they started from.
    initial = netdsl.load(root / "examples/xor.net").init(seed=0)
    assert not np.allclose(weights["hidden.weight"], initial["hidden.weight"])
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=x)
    outputs = tmp_path / "y.npz"
    capsys.readouterr()
    assert main(["run", str(root / "examples/xor.net"), "--weights", str(checkpoint),
                 "--input", str(inputs), "--output", str(outputs)]) == 0
    prob = np.load(outputs)["prob"]
    # `run` computes the model with exactly the saved weights: the same numbers as the model
    # written out by hand, and as the reference interpreter.
    assert prob.shape == (4, 1) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, xor_forward(weights, x), rtol=1e-5, atol=1e-6)
    model = netdsl.load(root / "examples/xor.net")
    np.testing.assert_allclose(prob, model.forward(weights, {"x": x})["prob"], rtol=1e-5,
                               atol=1e-6)
    # Training again from the checkpoint continues from those weights: one more epoch is one
    # Adam step (four points, batch 4), which moves no weight by more than lr = 0.05; started
    # from a fresh initialisation instead it would land about 0.25 away (five steps back).
    again = tmp_path / "again.npz"
    assert main(["train", str(root / "examples/xor.net"), "--epochs", "1", "--quiet",
                 "--init", str(checkpoint), "--out", str(again)]) == 0
    continued = load_checkpoint(again).weights
    step = np.abs(continued["hidden.weight"] - weights["hidden.weight"]).max()
    assert 0 < step <= 0.0501, step


def test_mismatched_checkpoint_names_every_problem(root, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    save_checkpoint(bad, {"hidden.weight": np.zeros((8, 3), np.float32),
                          "hidden.bias": np.zeros(8, np.float32),
                          "output.weigth": np.zeros((1, 8), np.float32)})
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros((1, 2), np.float32))
    capsys.readouterr()
    status = main(["run", str(root / "examples/xor.net"), "--weights", str(bad),
                   "--input", str(inputs)])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "hidden.weight" in err and "output.bias" in err and "output.weigth" in err
    assert "did you mean 'output.weight'" in err


def test_failed_run_writes_nothing(root, tmp_path, capsys):
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros((1, 3), np.float32))          # wrong feature size
    checkpoint = tmp_path / "w.npz"
    assert main(["train", str(root / "examples/xor.net"), "--epochs", "1", "--quiet",
                 "--out", str(checkpoint)]) == 0
    outputs = tmp_path / "y.npz"
    assert main(["run", str(root / "examples/xor.net"), "--weights", str(checkpoint),
                 "--input", str(inputs), "--output", str(outputs)]) == 1
    assert not outputs.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0].endswith(
        "xor.net:4:5: error: input 'x' has declared type f32[B, 2], but the data has shape "
        "[1, 3]"), err
