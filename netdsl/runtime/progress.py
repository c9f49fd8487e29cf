"""Training output: a one-line progress bar per epoch and an aligned table of epoch results.

    epoch        loss    val_loss    accuracy     time
    1/10       0.6931      0.6802      0.5312     0.4s
    2/10       0.5120      0.4987      0.8125     0.3s

A matrix metric (`confusion`) has no column: it would break the rows.  The last epoch's is
shown once under the table instead (`format_matrix`), like sklearn's confusion_matrix.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any, Callable, Iterable, TextIO

import numpy as np

# Columns shown first and in this order; other metrics follow in the order training reports them.
_LEADING = ("loss", "val_loss")
# Keys of a history row that are not metric columns (nor are gradient norms: is_diagnostic).
_NOT_METRICS = ("epoch", "seconds", "time", "examples_per_second")
_MIN_WIDTH = 10


class ProgressBar:
    """`epoch 3/10 [#######.......] 45/100 loss 0.1234 | 5.1k ex/s | ETA 1.2s` redrawn in place
    on stderr: the values are running means over the epoch so far (weighted by examples), then
    the throughput and the time left at that pace.

    Drawn only when the stream is a terminal or `force` is set, first `interval` seconds into
    the epoch and then at most every `interval` seconds (an epoch shorter than that never shows
    a bar: its table row follows at once, and fast loops pay almost nothing); otherwise `update` returns at once and nothing is written (the epoch table's rows
    are the plain lines a log gets).  Hand-written rather than tqdm: a tqdm bar costs ~86 us
    per epoch on a terminal and ~21 us when disabled, against ~4 us and ~1 us here, which
    would more than double a fit of tiny epochs (XOR: ~15 us an epoch, 5 of them its step).
    """

    def __init__(self, total: int, description: str = "", stream: TextIO | None = None,
                 force: bool = False, width: int = 30, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, start: int = 0):
        """`start`: steps already done (a resumed epoch's); the pace counts only the new."""
        self.total = max(int(total), 0)
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or _is_terminal(self.stream)
        self.width = width
        self.interval = interval
        self.count = self.start = start
        self.examples = 0
        self._sums: dict[str, float] = {}
        self._clock = clock
        self._started = clock()
        self._last_draw = self._started
        self._last_length = 0

    def update(self, count: int = 1, examples: int = 1, **values: float) -> None:
        """Advance by `count` steps that saw `examples` examples; `values` (e.g. loss=0.12) are
        this step's, shown as their running means."""
        if not self.enabled:
            return
        self.count = min(self.count + count, self.total) if self.total else self.count + count
        self.examples += examples
        for name, value in values.items():
            self._sums[name] = self._sums.get(name, 0.0) + value * examples
        now = self._clock()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(now - self._started)

    def _draw(self, elapsed: float) -> None:
        filled = int(self.width * self.count / self.total) if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        shown = [" ".join(f"{name} {format_value(total / max(self.examples, 1))}"
                          for name, total in self._sums.items())]
        if elapsed > 0 and self.count > self.start:
            shown.append(f"{format_rate(self.examples / elapsed)} ex/s")
            if self.total and self.count < self.total:
                left = elapsed * (self.total - self.count) / (self.count - self.start)
                shown.append(f"ETA {format_seconds(left)}")
        text = " | ".join(part for part in shown if part)
        line = f"{self.description} [{bar}] {self.count}/{self.total} {text}".rstrip()
        # Pad with spaces so a shorter line fully covers the previous one.
        self.stream.write("\r" + line.ljust(self._last_length))
        self.stream.flush()
        self._last_length = len(line)

    def close(self) -> None:
        """Erase the bar so the epoch's table row can take its line."""
        if self.enabled and self._last_length:
            self.stream.write("\r" + " " * self._last_length + "\r")
            self.stream.flush()
        self._last_length = 0

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class Spinner:
    """`| compiling Tiny: step: Numba compiles (first run only)  3.2s` redrawn in place on
    stderr by a thread, while the main thread is busy in a call that reports nothing (a cold
    compile: seconds in LLVM).  `phase(text)` says what is happening now; leaving the `with`
    block erases the line.  Drawn only when the stream is a terminal or `force` is set: a log
    gets the plain lines its caller prints instead.  The first frame is drawn at once."""

    FRAMES = "|/-\\"

    def __init__(self, title: str, stream: TextIO | None = None, force: bool = False,
                 interval: float = 0.1, enabled: bool = True):
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and (force or _is_terminal(self.stream))
        self.interval = interval
        self.text = ""
        self._frame = 0
        self._last_length = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def phase(self, text: str) -> None:
        """What is happening now (shown from the next frame on)."""
        self.text = text

    def above(self, write: Callable[[], None]) -> None:
        """Run `write` (printing a line) with the spinner's line erased; the next frame
        redraws it below."""
        with self._lock:
            self._erase()
            write()

    def _erase(self) -> None:
        if self._last_length:
            self.stream.write("\r" + " " * self._last_length + "\r")
            self.stream.flush()
        self._last_length = 0

    def _draw(self) -> None:
        with self._lock:
            elapsed = format_seconds(time.monotonic() - self._started)
            frame = self.FRAMES[self._frame % len(self.FRAMES)]
            self._frame += 1
            line = f"{frame} {self.title}: {self.text}  {elapsed}" if self.text else \
                f"{frame} {self.title}  {elapsed}"
            self.stream.write("\r" + line.ljust(self._last_length))
            self.stream.flush()
            self._last_length = len(line)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def __enter__(self) -> "Spinner":
        if self.enabled:
            self._draw()
            self._thread = threading.Thread(target=self._run, name="netdsl-spinner",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        with self._lock:
            self._erase()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def format_value(value: Any) -> str:
    """A number in at most ~10 characters: fixed point normally, scientific when tiny or huge."""
    if value is None:
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "nan"
    if number != 0 and not 1e-3 <= abs(number) < 1e5:
        return f"{number:.3e}"
    return f"{number:.4f}"


def is_diagnostic(name: str) -> bool:
    """A history column that the epoch table, the plot and the summary line leave out (the
    log files and TensorBoard keep it): timing, throughput and gradient norms."""
    from ..passes.training import GRAD_NORM_OUTPUT, GRAD_NORM_PREFIX
    return name in _NOT_METRICS or name == GRAD_NORM_OUTPUT or name.startswith(GRAD_NORM_PREFIX)


def is_matrix(name: str) -> bool:
    """A history column holding a matrix (`confusion`, `val_confusion`): not a table column."""
    from .metrics import MATRICES
    return name.removeprefix("val_") in MATRICES


def metric_columns(names: Iterable[str]) -> list[str]:
    """The metric columns of a table: loss, val_loss, then the others in the given order."""
    names = [name for name in names if not is_diagnostic(name) and not is_matrix(name)]
    return [name for name in _LEADING if name in names] + [name for name in names if name not in _LEADING]


def _epoch_width(epochs: int) -> int:
    return max(len("epoch"), 2 * len(str(epochs)) + 1)


def _width(name: str) -> int:
    return max(len(name), _MIN_WIDTH)


def format_epoch_header(epochs: int, metric_names: Iterable[str]) -> str:
    """The table header matching `format_epoch_row` for the same epochs and metric names."""
    cells = ["epoch".ljust(_epoch_width(epochs))]
    cells += [name.rjust(_width(name)) for name in metric_columns(metric_names)]
    cells.append("time".rjust(8))
    return "  ".join(cells)


def format_epoch_row(epoch: int, epochs: int, metrics: dict[str, Any], seconds: float) -> str:
    """One aligned row: `epoch/epochs`, loss, val_loss, each metric, and the epoch's time."""
    cells = [f"{epoch}/{epochs}".ljust(_epoch_width(epochs))]
    cells += [format_value(metrics[name]).rjust(_width(name)) for name in metric_columns(metrics)]
    cells.append(format_seconds(seconds).rjust(8))
    return "  ".join(cells)


# Wider matrices are not printed (they stay in the history and the JSON Lines log).
MAX_MATRIX_CLASSES = 20


def format_matrix(name: str, matrix: Any, epoch: int | None = None) -> list[str]:
    """Lines showing a confusion matrix under the epoch table, labelled with its column name
    and epoch (if given), the class ids along both sides (rows: true class, columns:
    predicted)."""
    matrix = np.asarray(matrix)
    when = f"epoch {epoch}; " if epoch is not None else ""
    if matrix.ndim != 2 or max(matrix.shape) > MAX_MATRIX_CLASSES:
        shape = "x".join(str(size) for size in matrix.shape)
        return [f"{name} ({when}{shape}): too large to show here; the history and "
                "a --log .jsonl file hold it"]
    cells = [[str(value) for value in row] for row in matrix.tolist()]
    width = max([len(str(len(cells) - 1))] + [len(cell) for row in cells for cell in row])
    corner = "true\\pred"
    lines = [f"{name} ({when}rows: true class, columns: predicted class):",
             "  " + corner + "".join(f"  {index:>{width}}" for index in range(matrix.shape[1]))]
    lines += ["  " + f"{index:>{len(corner)}}" + "".join(f"  {cell:>{width}}" for cell in row)
              for index, row in enumerate(cells)]
    return lines


def format_rate(rate: float) -> str:
    """`850`, `12.3k`, `4.56M`: a throughput in at most 5 characters."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= limit:
            return f"{rate / limit:.3g}{suffix}"
    return f"{rate:.3g}" if rate < 100 else f"{rate:.0f}"


def format_seconds(seconds: float) -> str:
    """`0.42s`, `12.3s`, `4m05s`."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"
