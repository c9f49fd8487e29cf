"""`netdsl train --tensorboard DIR`: every numeric history column as a TensorBoard scalar.

Written through tensorboardX's SummaryWriter (the optional extra `netdsl[tensorboard]`):
it writes TensorBoard's event files itself, with protobuf as its one heavy dependency, where
torch.utils.tensorboard needs PyTorch and the tensorboard package (a web server, grpcio) just to
write.  One scalar per column per epoch, the epoch as the step; a column `name.part` is tagged
`name/part` (`grad_norm/fc1`, `lr/d_loss`) so TensorBoard groups them; matrices (`confusion`)
are left out.  Events are flushed after every epoch, so TensorBoard shows a run as it trains.
A resumed run starts a new event file that purges the steps from its first epoch on (events an
interrupted run wrote after its checkpoint).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from ..errors import Error
from .run_log import is_number

HINT = "pip install 'netdsl[tensorboard]'"


def require_tensorboard() -> None:
    """Fail before training when the extra is missing."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise Error("--tensorboard needs the tensorboardX package", hint=HINT) from None


def tag(column: str) -> str:
    """The TensorBoard tag of a history column: its first `.` becomes `/` (a group)."""
    return column.replace(".", "/", 1)


def check_log_folder(path: str | os.PathLike) -> Path:
    """The folder of the event files: an existing folder, or one to make in an existing folder."""
    from .files import check_output
    path = Path(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        check_output(path, "TensorBoard logs")     # its parent exists and is writable
        return path
    except OSError as error:
        raise Error(f"cannot write TensorBoard logs to {path}: {error.strerror}") from None
    if not stat.S_ISDIR(status.st_mode):
        raise Error(f"cannot write TensorBoard logs to {path}: it is not a folder",
                    hint="--tensorboard takes a folder (TensorBoard's --logdir)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise Error(f"cannot write TensorBoard logs to {path}: the folder is not writable")
    return path


class TensorBoardLog:
    """The event files of one training run; `write(row)` after every epoch, `close()` at the end."""

    def __init__(self, folder: str | os.PathLike):
        """Check the extra and the folder now, before training; the writer starts with the
        first row."""
        require_tensorboard()
        self.folder = check_log_folder(folder)
        self._writer = None

    def write(self, row: dict[str, Any]) -> None:
        """Add every number of one epoch's history row, at step `row["epoch"]`."""
        epoch = int(row["epoch"])
        if self._writer is None:
            from tensorboardX import SummaryWriter
            # A resumed run's first epoch: TensorBoard drops what earlier files logged from
            # that step on.  Flushed by write, not by the writer's timer.
            # Event files are named by the second they start in: the suffix keeps a run
            # resumed within the same second from replacing its first file, and sorts after it.
            self._writer = SummaryWriter(str(self.folder), flush_secs=3600,
                                         purge_step=epoch if epoch > 1 else None,
                                         filename_suffix=f".epoch{epoch:06d}.{os.getpid()}")
        for column, value in row.items():
            if column != "epoch" and is_number(value):
                self._writer.add_scalar(tag(column), float(value), epoch)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
