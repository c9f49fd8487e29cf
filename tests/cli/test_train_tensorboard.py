"""`netdsl train --tensorboard DIR`: every numeric history column as a scalar per epoch, read
back with TensorBoard's own event reader (EventAccumulator)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from netdsl import cli

MODEL = """
model Tiny {
    in  x: f32[B, 4]
    in  y: i64[B]
    logits = x |> Dense(8) as hidden |> relu |> Dense(3) as classifier
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}

train Tiny {
    data      = "data.npz"
    split     = 0.75
    batch     = 16
    epochs    = 3
    optimizer = Adam(lr=1e-2)
    schedule  = cosine()
    metrics   = [accuracy, confusion]
    seed      = 0
}
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.net").write_text(MODEL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1))
    return tmp_path


def _scalars(directory) -> dict[str, list[tuple[int, float]]]:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def test_every_history_column_is_a_scalar_per_epoch(folder):
    pytest.importorskip("tensorboardX")
    assert cli.main(["train", "model.net", "--tensorboard", "runs", "--log", "run.jsonl",
                     "--quiet"]) == 0
    rows = [json.loads(line) for line in open(folder / "run.jsonl")]
    scalars = _scalars(folder / "runs")
    expected = {"loss", "val_loss", "accuracy", "val_accuracy", "lr", "seconds",
                "examples_per_second", "grad_norm", "grad_norm/hidden", "grad_norm/classifier"}
    assert set(scalars) == expected                   # the confusion matrices are left out
    for tag, points in scalars.items():
        column = tag.replace("/", ".")
        assert [step for step, _ in points] == [1, 2, 3]
        # Stored as 32-bit floats.
        assert [value for _, value in points] == \
            pytest.approx([row[column] for row in rows], rel=1e-6), tag
    rates = [value for _, value in scalars["lr"]]
    assert 1e-2 > rates[0] > rates[1] > rates[2]      # cosine decay


def test_a_resumed_run_continues_the_curves(folder):
    pytest.importorskip("tensorboardX")
    assert cli.main(["train", "model.net", "--epochs", "2", "--out", "run.npz",
                     "--tensorboard", "runs", "--quiet"]) == 0
    assert cli.main(["train", "model.net", "--epochs", "3", "--resume", "run.npz",
                     "--tensorboard", "runs", "--quiet"]) == 0
    assert len(list((folder / "runs").iterdir())) == 2        # an event file per run
    assert [step for step, _ in _scalars(folder / "runs")["loss"]] == [1, 2, 3]


def test_tensorboard_folder_errors(folder, capsys):
    pytest.importorskip("tensorboardX")
    (folder / "file.txt").write_text("x")
    assert cli.main(["train", "model.net", "--tensorboard", "file.txt"]) == 1
    err = capsys.readouterr().err
    assert "cannot write TensorBoard logs to file.txt: it is not a folder" in err
    assert "Traceback" not in err
    assert cli.main(["train", "model.net", "--tensorboard", "missing/runs"]) == 1
    err = capsys.readouterr().err
    assert "folder missing does not exist" in err and "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == ["data.npz", "file.txt", "model.net"]


def test_without_tensorboardx_it_says_what_to_install(folder, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    assert cli.main(["train", "model.net", "--tensorboard", "runs"]) == 1
    err = capsys.readouterr().err
    assert "error: --tensorboard needs the tensorboardX package" in err
    assert "pip install 'netdsl[tensorboard]'" in err and "Traceback" not in err
    assert not (folder / "runs").exists()
