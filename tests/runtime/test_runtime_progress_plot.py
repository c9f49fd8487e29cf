"""The epoch table, the progress bar and the loss-curve plot."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from netdsl.errors import Error
from netdsl.runtime.plot import plot_history
from netdsl.runtime.progress import (ProgressBar, format_epoch_header, format_epoch_row,
                                     format_matrix, format_rate, format_value)

HISTORY = [
    {"epoch": 1, "loss": 0.9, "val_loss": 1.0, "accuracy": 0.5, "seconds": 0.4, "confusion": np.eye(2)},
    {"epoch": 2, "loss": 0.5, "val_loss": 0.7, "accuracy": 0.8, "seconds": 0.3, "confusion": np.eye(2)},
]


def test_table_columns_align():
    metrics = {"accuracy": 0.5, "loss": 0.693147, "val_loss": 0.5, "f1_macro_long_name": 0.25}
    header = format_epoch_header(100, metrics)
    row = format_epoch_row(7, 100, metrics, 12.34)
    assert len(header) == len(row)
    assert header.split() == ["epoch", "loss", "val_loss", "accuracy", "f1_macro_long_name", "time"]
    assert row.split() == ["7/100", "0.6931", "0.5000", "0.5000", "0.2500", "12.3s"]
    # Each value ends where its column name ends.
    for name, value in (("loss", "0.6931"), ("time", "12.3s")):
        assert header.index(name) + len(name) == row.index(value) + len(value)


def test_matrices_have_no_column_and_are_shown_under_the_table():
    metrics = {"loss": 0.5, "confusion": np.eye(3, dtype=np.int64), "accuracy": 0.75,
               "val_confusion": np.eye(3, dtype=np.int64)}
    header, row = format_epoch_header(9, metrics), format_epoch_row(2, 9, metrics, 0.5)
    assert header.split() == ["epoch", "loss", "accuracy", "time"]
    assert len(header) == len(row) and "\n" not in row
    matrix = np.array([[12, 0], [3, 105]])
    assert format_matrix("val_confusion", matrix, 4) == [
        "val_confusion (epoch 4; rows: true class, columns: predicted class):",
        "  true\\pred    0    1",
        "          0   12    0",
        "          1    3  105"]
    assert format_matrix("confusion", np.zeros((30, 30), np.int64)) == [
        "confusion (30x30): too large to show here; the history and a --log .jsonl file "
        "hold it"]


def test_format_value():
    assert format_value(0.5) == "0.5000"
    assert format_value(1.5e-6) == "1.500e-06"
    assert format_value(None) == "-"
    assert format_value(float("nan")) == "nan"
    assert format_value(0) == "0.0000"


def test_progress_bar_only_when_forced_or_tty():
    quiet = io.StringIO()
    with ProgressBar(10, "epoch 1/3", stream=quiet) as bar:
        bar.update(5, loss=0.25)
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    with ProgressBar(10, "epoch 1/3", stream=shown, force=True, interval=0) as bar:
        bar.update(5, loss=0.25)
        bar.update(5)
    text = shown.getvalue()
    assert "epoch 1/3 [###############...............] 5/10 loss 0.2500" in text
    assert "10/10" in text and text.endswith("\r")


def test_progress_bar_shows_running_means_throughput_and_eta():
    now = [100.0]
    shown = io.StringIO()
    bar = ProgressBar(4, "epoch 2/5", stream=shown, force=True, interval=0.5, width=4,
                      clock=lambda: now[0])
    bar.update(examples=10, loss=1.0)           # no time has passed: not drawn yet
    assert shown.getvalue() == ""
    now[0] += 2.0
    bar.update(examples=30, loss=0.5)
    # (10 * 1.0 + 30 * 0.5) / 40 examples; 40 examples in 2 s; 2 more steps at 1 s each.
    assert shown.getvalue() == "\repoch 2/5 [##..] 2/4 loss 0.6250 | 20 ex/s | ETA 2.00s"
    now[0] += 0.1
    bar.update(examples=10, loss=0.0)           # within the interval: not redrawn
    now[0] += 30.0
    bar.update(examples=12000, loss=0.0)
    # 12,050 examples in 32.1 s; nothing left; padded over the longer line before it.
    last = shown.getvalue().split("\r")[-1].rstrip()
    assert last == "epoch 2/5 [####] 4/4 loss 0.0021 | 375 ex/s"
    bar.close()
    assert shown.getvalue().endswith("\r" + " " * len(last) + "\r")


def test_progress_bar_off_a_terminal_writes_nothing_and_keeps_no_sums():
    quiet = io.StringIO()
    bar = ProgressBar(3, "epoch 1/1", stream=quiet, interval=0)
    for _ in range(3):
        bar.update(examples=5, loss=1.0)
    bar.close()
    assert quiet.getvalue() == "" and bar.count == 0 and bar.examples == 0


def test_a_resumed_epoch_counts_its_pace_from_the_new_steps():
    now = [0.0]
    shown = io.StringIO()
    bar = ProgressBar(10, "epoch 3/5", stream=shown, force=True, interval=0.5, width=10,
                      clock=lambda: now[0], start=6)
    now[0] = 1.0
    bar.update(examples=8, loss=0.5)            # step 7 of 10 took 1 s: 3 left, 3 s
    assert shown.getvalue() == "\repoch 3/5 [#######...] 7/10 loss 0.5000 | 8 ex/s | ETA 3.00s"


def test_format_rate():
    assert [format_rate(rate) for rate in (0.5, 20, 850, 12345, 4.567e6)] == \
        ["0.5", "20", "850", "12.3k", "4.57M"]


def test_plot_history_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    plot_history(HISTORY, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]
    plot_history([{"loss": 1.0}, {"loss": 0.5}], tmp_path / "only_loss.svg")
    assert (tmp_path / "only_loss.svg").read_text().lstrip().startswith("<?xml")


def test_plot_errors(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(Error, match="unsupported format '.gif'"):
        plot_history(HISTORY, tmp_path / "x.gif")
    with pytest.raises(Error, match="no training history"):
        plot_history([], tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_plot_without_matplotlib(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(Error) as caught:
        plot_history(HISTORY, tmp_path / "x.png")
    assert caught.value.message == "plotting needs matplotlib"
    assert caught.value.diagnostics[0].hint == "pip install 'netdsl[plot]'"
