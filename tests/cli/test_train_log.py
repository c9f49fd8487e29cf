"""`netdsl train --log run.csv | run.jsonl`: the history, one line per epoch, written whole."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import netdsl
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


def test_csv_has_a_row_per_epoch_with_the_history(folder):
    assert cli.main(["train", "model.net", "--log", "run.csv", "--quiet"]) == 0
    rows = list(csv.DictReader(open(folder / "run.csv")))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "seconds",
            "examples_per_second"} <= set(rows[0])
    assert "confusion" not in rows[0]                 # a matrix: JSON Lines only
    model = netdsl.load(folder / "model.net")
    history = model.fit(model.init(seed=0), target="cpu").history
    for row, expected in zip(rows, history):
        assert float(row["loss"]) == pytest.approx(expected["loss"], rel=1e-6)
        assert float(row["val_accuracy"]) == pytest.approx(expected["val_accuracy"])
        assert float(row["examples_per_second"]) > 0
    assert sorted(p.name for p in folder.iterdir()) == ["data.npz", "model.net", "run.csv"]


def test_jsonl_keeps_every_value(folder):
    assert cli.main(["train", "model.net", "--log", "run.jsonl", "--quiet"]) == 0
    rows = [json.loads(line) for line in open(folder / "run.jsonl")]
    assert len(rows) == 3
    confusion = np.array(rows[-1]["val_confusion"])
    assert confusion.ndim == 2 and confusion.sum() == 24       # the 25% held out
    assert rows[-1]["lr"] == pytest.approx(1e-2)


def test_a_wrong_log_path_fails_before_training(folder, capsys):
    assert cli.main(["train", "model.net", "--log", "run.txt"]) == 1
    err = capsys.readouterr().err
    assert "log run.txt must end in .csv or .jsonl" in err and "Traceback" not in err
    assert cli.main(["train", "model.net", "--log", "missing/run.csv"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_gradient_norms_are_logged_but_not_printed(folder, capsys):
    assert cli.main(["train", "model.net", "--log", "run.csv"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(open(folder / "run.csv")))
    norms = [column for column in rows[0] if column.startswith("grad_norm")]
    assert norms == ["grad_norm", "grad_norm.hidden", "grad_norm.classifier"]
    for row in rows:
        total = float(row["grad_norm"])
        # Each step's global norm is the root of the sum of its layers' squares; the epoch's
        # means of them need not be, but cannot exceed the sum of the layer means.
        layers = [float(row["grad_norm.hidden"]), float(row["grad_norm.classifier"])]
        assert max(layers) <= total <= sum(layers) and total > 0
    assert "grad_norm" not in out and "examples_per_second" not in out


def test_confusion_matrices_stay_out_of_the_table_and_follow_it_once(folder, capsys):
    assert cli.main(["train", "model.net", "--log", "run.jsonl", "--test", "0.25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("epoch"))
    assert header.split() == ["epoch", "loss", "val_loss", "accuracy", "val_accuracy", "time"]
    rows = [line for line in lines if line.split()[0] in ("1/3", "2/3", "3/3")]
    assert len(rows) == 3 and all(len(row) == len(header) for row in rows)
    # Under the table, once: the last epoch's matrices, then the test set's.
    history = [json.loads(line) for line in open(folder / "run.jsonl")]
    for name in ("confusion", "val_confusion"):
        start = lines.index(f"{name} (epoch 3; rows: true class, columns: predicted class):")
        assert start > lines.index(rows[-1])
        matrix = history[-1][name]
        assert lines[start + 1].split() == ["true\\pred", *map(str, range(len(matrix)))]
        for index, values in enumerate(matrix):
            assert lines[start + 2 + index].split() == [str(index), *map(str, values)]
    assert "test_confusion (rows: true class, columns: predicted class):" in lines
    assert sum("confusion (" in line for line in lines) == 3
