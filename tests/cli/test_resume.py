"""`netdsl train --resume`: a run stopped by a real SIGINT or SIGTERM and resumed ends with the
weights of the uninterrupted run, bit for bit; `--checkpoint-every` and `--save-best`; a
checkpoint of another model or run is an `error:` line, exit 1."""
from __future__ import annotations

import signal
import sys

import numpy as np
import pytest

from netdsl import cli
from netdsl.runtime.checkpoint import load_checkpoint, load_optimizer_state

from test_interrupts import Run  # pytest puts tests/cli on the path

MODEL = """
model Tiny {
    in  x: f32[B, 16]
    in  y: i64[B]
    logits = x |> Dense(16) as hidden |> relu |> Dropout(0.1) |> Dense(4) as classifier
    out probs = softmax(logits)
    loss cross_entropy(logits, y)
}

train Tiny {
    data      = "data.npz"
    split     = 0.9
    batch     = 16
    epochs    = 3
    optimizer = Adam(lr=1e-3)
    schedule  = cosine()
    seed      = 0
}
"""

OTHER = MODEL.replace("Tiny", "Other")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.net").write_text(MODEL)
    (tmp_path / "other.net").write_text(OTHER)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 16)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0))
    return tmp_path


def _same(a, b) -> None:
    first, second = load_checkpoint(a).weights, load_checkpoint(b).weights
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    slots, others = load_optimizer_state(a), load_optimizer_state(b)
    assert slots.keys() == others.keys() and slots
    for name in slots:
        np.testing.assert_array_equal(slots[name], others[name], err_msg=name)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_run_stopped_by_a_signal_and_resumed_ends_bit_for_bit(folder, tmp_path, number):
    # 100 epochs of ~0.04 s: the signal comes after the third epoch's row, mostly midway.
    base = ["train", "model.net", "--target", "reference", "-q", "--epochs", "100"]
    assert cli.main(base + ["--out", str(folder / "whole.npz")]) == 0
    run = Run(folder, [arg for arg in base if arg != "-q"] + ["--out", "part.npz"],
              tmp_path / "cache")
    run.wait_until(lambda: run.rows() >= 3)
    run.process.send_signal(number)
    rc, out, err = run.finish()
    assert "Traceback" not in out + err, err
    assert rc == 128 + number, err
    stopped = load_checkpoint(folder / "part.npz").meta
    assert stopped["interrupted"]["signal"] == signal.Signals(number).name
    assert stopped["resume"]["step"] == stopped["interrupted"]["step"]
    assert 3 <= len(stopped["resume"]["history"]) < 100
    assert cli.main(base + ["--resume", str(folder / "part.npz"),
                            "--out", str(folder / "resumed.npz")]) == 0
    _same(folder / "whole.npz", folder / "resumed.npz")
    assert load_checkpoint(folder / "resumed.npz").meta["epochs"] == 100


def test_checkpoint_every_and_save_best(folder, capsys):
    base = ["train", str(folder / "model.net"), "--target", "reference", "-q"]
    assert cli.main(base + ["--epochs", "2", "--out", str(folder / "two.npz"),
                            "--checkpoint-every", "1",
                            "--save-best", str(folder / "best.npz")]) == 0
    best = load_checkpoint(folder / "best.npz")
    assert best.meta["monitor"] == "val_loss" and best.meta["epoch"] in (1, 2)
    assert isinstance(best.meta["value"], float) and "resume" not in best.meta
    # A finished run trains further with more epochs (its cosine schedule then spans 3).
    assert cli.main(base + ["--resume", str(folder / "two.npz"), "--out",
                            str(folder / "three.npz"), "--save-best",
                            str(folder / "best.npz")]) == 0
    assert load_checkpoint(folder / "three.npz").meta["resume"]["epoch"] == 4
    assert len(load_checkpoint(folder / "three.npz").meta["resume"]["history"]) == 3


def test_checkpoint_every_writes_during_the_run(folder, monkeypatch):
    from netdsl.commands import train as command
    written = []
    original = command._save
    monkeypatch.setattr(command, "_save",
                        lambda path, state, meta, *rest, **kw:
                        (written.append(meta["epochs"]), original(path, state, meta, *rest, **kw)))
    assert cli.main(["train", str(folder / "model.net"), "--target", "reference", "-q",
                     "--out", str(folder / "w.npz"), "--checkpoint-every", "2"]) == 0
    assert written == [2, 3]                    # epoch 2, then the end of the run


@pytest.mark.parametrize("extra, message", [
    (["--batch", "32"], "the batch size changed since it was saved (16 then, 32 now)"),
    (["--split", "0.5"], "the number of training examples changed"),
    (["--model", "Other", "FILE=other.net"], "it is a checkpoint of model Tiny, not Other"),
])
def test_resuming_another_run_is_an_error(folder, capsys, extra, message):
    assert cli.main(["train", str(folder / "model.net"), "--target", "reference", "-q",
                     "--epochs", "1", "--out", str(folder / "w.npz")]) == 0
    capsys.readouterr()
    file = str(folder / "model.net")
    if "FILE=other.net" in extra:
        extra, file = extra[:-1], str(folder / "other.net")
    assert cli.main(["train", file, "--target", "reference", "--resume",
                     str(folder / "w.npz"), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume from") and message in err, err
    assert "hint:" in err and "--init" in err and "Traceback" not in err


def test_flags_that_do_not_go_together(folder, capsys):
    file = str(folder / "model.net")
    assert cli.main(["train", file, "--checkpoint-every", "2"]) == 1
    assert "--checkpoint-every needs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", file, "--init", "a.npz", "--resume", "b.npz"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_init_from_another_models_checkpoint_is_one_error(folder, capsys):
    # Other names its layers differently: the checkpoint's meta says whose it is.
    (folder / "other.net").write_text(MODEL.replace("Tiny", "Other").replace("hidden", "first"))
    assert cli.main(["train", "model.net", "--epochs", "1", "--out", "w.npz", "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["train", "other.net", "--init", "w.npz", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "is for model Tiny, not Other" in err and "Traceback" not in err
    assert err.count("error:") == 1


def test_a_run_with_the_confusion_metric_saves_and_resumes(folder, capsys):
    # The history's confusion matrices go into the checkpoint's JSON meta as nested lists.
    base = ["train", str(folder / "model.net"), "--target", "reference", "-q",
            "--metrics", "accuracy,confusion"]
    assert cli.main(base + ["--epochs", "2", "--out", str(folder / "two.npz")]) == 0
    history = load_checkpoint(folder / "two.npz").meta["resume"]["history"]
    matrix = np.array(history[1]["val_confusion"])
    assert matrix.shape == (4, 4) and matrix.sum() == 102      # the 10% validation split
    assert cli.main(base + ["--resume", str(folder / "two.npz"),
                            "--out", str(folder / "three.npz")]) == 0
    history = load_checkpoint(folder / "three.npz").meta["resume"]["history"]
    assert len(history) == 3 and history[1]["val_confusion"] == matrix.tolist()
    assert "Traceback" not in capsys.readouterr().err
