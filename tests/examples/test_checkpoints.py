"""Checkpoints: train --out, run --weights, and the errors for a checkpoint that does not fit."""
from __future__ import annotations

import numpy as np

from netdsl.cli import main
from netdsl.runtime.checkpoint import load_checkpoint, save_checkpoint


def test_train_then_run_round_trip(root, tmp_path, capsys):
    checkpoint = tmp_path / "xor.npz"
    assert main(["train", str(root / "examples/xor.net"), "--epochs", "5", "--quiet",
                 "--out", str(checkpoint)]) == 0
    weights = load_checkpoint(checkpoint).weights
    assert set(weights) == {"hidden.weight", "hidden.bias", "output.weight", "output.bias"}
    assert weights["hidden.weight"].shape == (8, 2)
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.array([[0, 0], [1, 1]], np.float32))
    outputs = tmp_path / "y.npz"
    capsys.readouterr()
    assert main(["run", str(root / "examples/xor.net"), "--weights", str(checkpoint),
                 "--input", str(inputs), "--output", str(outputs)]) == 0
    prob = np.load(outputs)["prob"]
    assert prob.shape == (2, 1) and np.all((prob > 0) & (prob < 1))
    # Training again from the checkpoint continues from those weights.
    assert main(["train", str(root / "examples/xor.net"), "--epochs", "1", "--quiet",
                 "--init", str(checkpoint)]) == 0


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
    assert "x" in capsys.readouterr().err
