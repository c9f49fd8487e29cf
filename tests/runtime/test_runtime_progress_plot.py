"""The epoch table, the progress bar and the loss-curve plot."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from netdsl.errors import Error
from netdsl.runtime.plot import plot_history
from netdsl.runtime.progress import ProgressBar, format_epoch_header, format_epoch_row, format_value

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
