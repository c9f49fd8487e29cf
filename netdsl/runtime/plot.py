"""Loss and metric curves of a training run, drawn with matplotlib (an optional extra)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import Error
from ..source import Span
from .files import check_output, write_atomically
from .progress import metric_columns

_FORMATS = ("png", "svg", "pdf")
_LOSSES = ("loss", "val_loss")


def require_matplotlib(span: Span | None = None) -> None:
    """Fail early (before a long training run) when the plot extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise Error("plotting needs matplotlib", span, hint="pip install 'netdsl[plot]'") from None


def check_plot_output(path: str | Path, span: Span | None = None) -> Path:
    """Fail before training when the plot could not be written to path (or drawn at all)."""
    path = Path(path)
    _image_format(path, span)
    check_output(path, "plot", span=span)
    require_matplotlib(span)
    return path


def _image_format(path: Path, span: Span | None) -> str:
    image_format = path.suffix.lower().lstrip(".")
    if image_format not in _FORMATS:
        raise Error(f"cannot plot to {path}: unsupported format '{path.suffix}'", span,
                    hint=f"use one of: {', '.join('.' + name for name in _FORMATS)}")
    return image_format


def plot_history(history: list[dict[str, Any]], path: str | Path, span: Span | None = None) -> None:
    """Write loss (train/validation) and metric curves per epoch to a .png, .svg or .pdf file."""
    path = Path(path)
    image_format = _image_format(path, span)
    check_output(path, "plot", span=span)
    if not history:
        raise Error("there is no training history to plot", span)
    try:
        # The Figure/Agg classes directly, not pyplot: no global backend switch, no GUI window.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise Error("plotting needs matplotlib", span, hint="pip install 'netdsl[plot]'") from None
    names = metric_columns(key for key in _keys(history) if _numeric(history, key))
    losses = [name for name in names if name in _LOSSES or name.endswith("loss")]
    metrics = [name for name in names if name not in losses and name != "lr"
               and not name.startswith("lr.")]
    panels = [(panel, title) for panel, title in ((losses, "loss"), (metrics, "metrics")) if panel]
    if not panels:
        raise Error("the training history has no loss or metric values to plot", span)
    figure = Figure(figsize=(5.5 * len(panels), 4), layout="constrained")
    FigureCanvasAgg(figure)
    epochs = [row.get("epoch", index + 1) for index, row in enumerate(history)]
    for position, (panel, title) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), position + 1)
        for name in panel:
            points = [(epoch, row[name]) for epoch, row in zip(epochs, history) if row.get(name) is not None]
            axes.plot([p[0] for p in points], [float(p[1]) for p in points], marker="o", markersize=3,
                      label=name)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        axes.legend()
    write_atomically(path, lambda handle: figure.savefig(handle, format=image_format), "plot",
                     span=span)


def _keys(history: list[dict[str, Any]]) -> list[str]:
    """Every key of any row, in first-seen order."""
    seen: dict[str, None] = {}
    for row in history:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _numeric(history: list[dict[str, Any]], key: str) -> bool:
    """True when every present value of `key` is a plain number (so can be a curve)."""
    values = [row[key] for row in history if row.get(key) is not None]
    for value in values:
        # Arrays (a confusion matrix) and strings are not curves.
        if getattr(value, "ndim", 0) > 0 or isinstance(value, (str, bool)):
            return False
        try:
            float(value)
        except (TypeError, ValueError):
            return False
    return bool(values)
