"""Every train key the README lists is a flag, and call-valued keys are written as in the file:
`--optimizer "SGD(lr=0.5, momentum=0.9)"` trains exactly as `optimizer = SGD(...)` does."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl import cli
from netdsl.runtime.checkpoint import load_checkpoint

MODEL = """
model Tiny {
    in  x: f32[B, 4]
    in  y: i64[B]
    logits = x |> Dense(8) as hidden |> relu |> Dense(3) as classifier
    loss cross_entropy(logits, y)
}

train Tiny {
    data      = "data.npz"
    split     = 0.75
    batch     = 16
    epochs    = 4
    seed      = 0
EXTRA}
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1))
    return tmp_path


@pytest.mark.parametrize("line, flag", [
    ("optimizer = SGD(lr=0.5, momentum=0.9)", ["--optimizer", "SGD(lr=0.5, momentum=0.9)"]),
    ("schedule = step(every=1, gamma=0.5)", ["--schedule", "step(every=1, gamma=0.5)"]),
    ("early_stopping(patience=0, monitor=val_loss, min_delta=10)",
     ["--early-stopping", "patience=0, monitor=val_loss, min_delta=10"]),
    ("shuffle = false", ["--shuffle", "false"]),
    ("test = 0.25", ["--test", "0.25"]),
    ("schedule = reduce_on_plateau(factor=0.5, patience=0, monitor=loss, threshold=0.5)",
     ["--schedule", "reduce_on_plateau(factor=0.5, patience=0, monitor=loss, threshold=0.5)"]),
])
def test_a_flag_trains_as_the_key_written_in_the_file(folder, line, flag):
    (folder / "file.net").write_text(MODEL.replace("EXTRA", f"    {line}\n"))
    (folder / "flag.net").write_text(MODEL.replace("EXTRA", ""))
    assert cli.main(["train", "file.net", "--out", "file.npz", "--quiet"]) == 0
    assert cli.main(["train", "flag.net", "--out", "flag.npz", "--quiet"] + flag) == 0
    assert cli.main(["train", "flag.net", "--out", "plain.npz", "--quiet"]) == 0
    written, flagged, plain = (load_checkpoint(folder / name).weights
                               for name in ("file.npz", "flag.npz", "plain.npz"))
    for name in written:
        np.testing.assert_array_equal(written[name], flagged[name], err_msg=name)
    assert any(not np.array_equal(written[n], plain[n]) for n in written)   # it changed something


@pytest.mark.parametrize("flag, message", [
    (["--optimizer", "Adam(lr="], "--optimizer: cannot read 'Adam(lr=' as a train-section value"),
    (["--early-stopping", "patience=-1"], "early_stopping patience must be a whole number >= 0"),
    (["--schedule", "nosuch()"], "unknown schedule 'nosuch'"),
    # Two learning rates: --optimizer's used to win silently, whatever the order.
    (["--lr", "0.1", "--optimizer", "Adam(lr=0.2)"],
     "error: --lr 0.1 and --optimizer Adam(lr=0.2) give two learning rates\n"
     "hint: give it once: --lr, or lr= inside --optimizer"),
])
def test_a_wrong_flag_value_is_one_error(folder, capsys, flag, message):
    (folder / "flag.net").write_text(MODEL.replace("EXTRA", ""))
    assert cli.main(["train", "flag.net"] + flag) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_test_flag_scores_the_held_out_share_after_training(folder, capsys):
    (folder / "flag.net").write_text(MODEL.replace("EXTRA", ""))
    assert cli.main(["train", "flag.net", "--test", "0.25", "--target", "reference"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].startswith("4/4")
    assert lines[-2].startswith("test: loss ") and lines[-2].endswith("(24 examples)")
    test_loss = lines[-2].split()[2].rstrip(",")
    assert lines[-1].startswith("trained Tiny for 4 epochs: ")
    assert f"test_loss {float(test_loss):.4g}" in lines[-1]


@pytest.mark.parametrize("value", ["accuracy,f1", "[accuracy, f1]", " [accuracy,f1] "])
def test_metrics_flag_takes_a_comma_list_or_the_files_list(folder, capsys, value):
    scored = MODEL.replace("    loss", "    out probs = softmax(logits)\n    loss")
    (folder / "flag.net").write_text(scored.replace("EXTRA", ""))
    assert cli.main(["train", "flag.net", "--epochs", "1", "--metrics", value]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("epoch"))
    assert header.split() == ["epoch", "loss", "val_loss", "accuracy", "f1", "val_accuracy",
                              "val_f1", "time"]
    assert lines[-1].startswith("trained Tiny for 1 epoch: loss ")      # not "1 epochs"


def test_early_stopping_line_counts_epochs_in_words(folder, capsys):
    (folder / "flag.net").write_text(MODEL.replace("EXTRA", ""))
    # min_delta 10: no epoch after the first improves enough; patience 1 stops at epoch 2.
    assert cli.main(["train", "flag.net", "--target", "reference", "--early-stopping",
                     "patience=1, monitor=val_loss, min_delta=10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("early stopping: val_loss has not improved for 1 epoch; "
                                "keeping the best weights (val_loss "), lines[-2]
    assert lines[-1].startswith("trained Tiny for 2 epochs: ")


@pytest.mark.parametrize("key", ["data", "validation"])
def test_data_flags_take_a_built_in_data_set_with_options(folder, key):
    # `--data "spirals(n=60, classes=3)"` as `data = spirals(n=60, classes=3)` (it was read as
    # a file name: "unknown data set 'spirals(n=60, classes=3)'").
    text = MODEL.replace("f32[B, 4]", "f32[B, 2]")
    line = f"    {key} = spirals(n=60, classes=3)\n"
    if key == "data":
        text = text.replace('    data      = "data.npz"\n', "")
    (folder / "file.net").write_text(text.replace("EXTRA", line))
    np.savez(folder / "data.npz", x=np.random.default_rng(1).normal(size=(40, 2))
             .astype(np.float32), y=np.arange(40) % 3)
    (folder / "flag.net").write_text(text.replace("EXTRA", ""))
    assert cli.main(["train", "file.net", "--out", "file.npz", "--quiet"]) == 0
    assert cli.main(["train", "flag.net", "--out", "flag.npz", "--quiet",
                     f"--{key}", "spirals(n=60, classes=3)"]) == 0
    written, flagged = (load_checkpoint(folder / name) for name in ("file.npz", "flag.npz"))
    for name in written.weights:
        np.testing.assert_array_equal(written.weights[name], flagged.weights[name])
    if key == "validation":      # both scored the spirals: the same val_loss in the history
        rows = (checkpoint.meta["resume"]["history"] for checkpoint in (written, flagged))
        assert [row["val_loss"] for row in next(rows)] == [row["val_loss"] for row in next(rows)]
