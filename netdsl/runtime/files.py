"""Every file netdsl writes goes through `write_atomically`: the whole new file or the old one.

The data is written to a temporary file in the target's own folder, flushed to disk (fsync) and
renamed over the target in one step (`os.replace`), so a reader, a crash, a full disk or a kill
never sees half a file.  On Linux the temporary file has no name while it is written (O_TMPFILE):
even SIGKILL, which no cleanup code survives, leaves nothing behind; it is given a name only for
the instant between `link` and `rename`.  Elsewhere (or on a file system without O_TMPFILE) it is
a hidden `.NAME.netdsl-PID-RANDOM.tmp` beside the target, removed on any exception, on
KeyboardInterrupt, and by `discard_pending` when the CLI stops hard on a second Ctrl-C.

Rules, checked by `check_output` before any work (so a long training run does not end in "cannot
write") and again when writing:

* the folder must exist and be writable: netdsl never creates folders;
* the target, if it exists, must be a regular file: a symbolic link, a folder, a device, a named
  pipe or a socket is refused, never replaced (a link would be replaced by a file, not followed);
* the name must end in an extension the caller writes (`extensions`).

The new file's mode is what a plain `open(path, "w")` gives: 0o666 less the umask for a new file,
the old file's permission bits when one is replaced.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from ..errors import Error
from ..source import Span

TEMPORARY_MARK = ".netdsl-"          # in every named temporary file: `.NAME.netdsl-PID-HEX.tmp`
Content = bytes | str | Callable[[BinaryIO], None]

# Named temporary files this process is writing now; `discard_pending` removes them.
_pending: set[str] = set()

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
          (stat.S_ISSOCK, "a socket"))


def check_output(path: str | os.PathLike, what: str = "file",
                 extensions: Iterable[str] | None = None, span: Span | None = None) -> Path:
    """Refuse an output path netdsl cannot or must not write; return it as a Path.

    `what` names the file in messages ("checkpoint", "plot"); `extensions` (".npz", ...) are the
    endings accepted, compared without case.
    """
    path = Path(path)
    if not str(path) or path.name in ("", ".", ".."):
        raise Error(f"cannot write {what} '{path}': that is not a file name", span)
    if extensions is not None:
        extensions = tuple(extensions)
        if path.suffix.lower() not in extensions:
            raise Error(f"{what} {path} must end in {_alternatives(extensions)}", span)
    folder = path.parent
    try:
        folder_status = os.stat(folder)
    except FileNotFoundError:
        raise Error(f"cannot write {what} {path}: folder {folder} does not exist", span,
                    hint="create the folder first; netdsl does not create folders") from None
    except OSError as error:
        raise Error(f"cannot write {what} {path}: {_reason(error)}", span) from None
    if not stat.S_ISDIR(folder_status.st_mode):
        raise Error(f"cannot write {what} {path}: {folder} is not a folder", span)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Error(f"cannot write {what} {path}: folder {folder} is not writable", span)
    _check_target(path, what, span)
    return path


def _check_target(path: Path, what: str, span: Span | None) -> None:
    """The target may be absent or a regular file; anything else is refused."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise Error(f"cannot write {what} {path}: {_reason(error)}", span) from None
    if stat.S_ISLNK(status.st_mode):
        try:
            pointee = os.readlink(path)
        except OSError:
            pointee = "?"
        raise Error(f"cannot write {what} {path}: it is a symbolic link (to {pointee}), which "
                    f"netdsl does not replace", span,
                    hint="remove the link or write to another name") from None
    for test, kind in _KINDS:
        if test(status.st_mode):
            raise Error(f"cannot write {what} {path}: it is {kind}, not a regular file", span)


def write_atomically(path: str | os.PathLike, content: Content, what: str = "file",
                     extensions: Iterable[str] | None = None, span: Span | None = None) -> Path:
    """Write `content` (bytes, text as UTF-8, or a function writing to a binary file) to path.

    All or nothing: the target is replaced only once the new file is complete and on disk.
    Every problem is a netdsl.Error naming the file; nothing is left behind on any failure.
    """
    path = check_output(path, what, extensions, span)
    folder = path.parent
    try:
        old_mode = os.stat(path).st_mode & 0o777      # its permissions, no set-id bits
    except FileNotFoundError:
        old_mode = None
    except OSError as error:
        raise Error(f"cannot write {what} {path}: {_reason(error)}", span) from None
    descriptor, named = -1, None
    try:
        descriptor, named = _open_temporary(folder, path.name)
        with os.fdopen(descriptor, "wb", closefd=False) as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
        if old_mode is not None:
            os.fchmod(descriptor, old_mode)
        os.fsync(descriptor)
        _check_target(path, what, span)         # a link made meanwhile is not replaced either
        if named is None:
            named = _give_name(descriptor, folder, path.name)
        os.replace(named, path)                 # straight after the link: no name left behind
        _forget(named)
        named = None
        _sync_folder(folder)
    except OSError as error:
        raise Error(f"cannot write {what} {path}: {_reason(error)}", span) from None
    finally:
        if descriptor >= 0:
            os.close(descriptor)
        if named is not None:
            _remove(named)
    return path


def discard_pending() -> None:
    """Remove the named temporary files being written now (before a hard exit)."""
    for name in list(_pending):
        _remove(name)


def _open_temporary(folder: Path, name: str) -> tuple[int, str | None]:
    """(descriptor, None) for an unnamed file in `folder`, else (descriptor, its hidden name)."""
    if hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):
        try:
            # 0o666 less the umask, as any new file; no O_EXCL, so `_give_name` can link it.
            return os.open(folder, os.O_RDWR | os.O_TMPFILE | _CLOEXEC, 0o666), None
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    return _open_named(folder, name)


def _open_named(folder: Path, name: str) -> tuple[int, str]:
    """A new hidden temporary file beside the target, registered with `_pending`."""
    for _ in range(100):
        named = _temporary_name(folder, name)
        _pending.add(named)
        try:
            descriptor = os.open(named, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
                                 | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except FileExistsError:
            _pending.discard(named)
            continue
        except BaseException:
            _pending.discard(named)
            raise
        return descriptor, named
    raise OSError(errno.EEXIST, f"no free temporary name in {folder}")


def _give_name(descriptor: int, folder: Path, name: str) -> str:
    """Link an unnamed (O_TMPFILE) file into `folder` under a fresh hidden name."""
    folder_descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        return _link_into(descriptor, folder_descriptor, folder, name)
    finally:
        os.close(folder_descriptor)


def _link_into(descriptor: int, folder_descriptor: int, folder: Path, name: str) -> str:
    for _ in range(100):
        named = _temporary_name(folder, name)
        _pending.add(named)
        try:
            # linkat(..., AT_SYMLINK_FOLLOW) through /proc names the unnamed file.  Python calls
            # plain link(), which would link the /proc symlink itself (EXDEV), unless a dir_fd
            # is given; the source is absolute, so only the destination uses it.
            os.link(f"/proc/self/fd/{descriptor}", os.path.basename(named),
                    src_dir_fd=folder_descriptor, dst_dir_fd=folder_descriptor,
                    follow_symlinks=True)
        except FileExistsError:
            _pending.discard(named)
            continue
        except OSError:
            # Linking through /proc refused (a sandbox, say): copy into a named file instead.
            _pending.discard(named)
            return _copy_to_named(descriptor, folder, name)
        except BaseException:
            _pending.discard(named)
            raise
        return named
    raise OSError(errno.EEXIST, f"no free temporary name in {folder}")


def _copy_to_named(source: int, folder: Path, name: str) -> str:
    mode = stat.S_IMODE(os.fstat(source).st_mode)
    target, named = _open_named(folder, name)
    try:
        os.lseek(source, 0, os.SEEK_SET)
        while chunk := os.read(source, 1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(target, view):]
        os.fchmod(target, mode)
        os.fsync(target)
    except BaseException:
        os.close(target)
        _remove(named)
        raise
    os.close(target)
    return named


def _temporary_name(folder: Path, name: str) -> str:
    # Recognisable (NAME and the mark) and within the 255-byte limit of most file systems.
    stem = name if len(name.encode()) <= 180 else name.encode()[:180].decode("utf-8", "ignore")
    return str(folder / f".{stem}{TEMPORARY_MARK}{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _remove(named: str) -> None:
    try:
        os.unlink(named)
    except OSError:
        pass
    _forget(named)


def _forget(named: str) -> None:
    _pending.discard(named)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every system lets a folder be opened, so best effort."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _reason(error: OSError) -> str:
    if error.errno == errno.EROFS:
        return "the file system is read-only"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return error.strerror or str(error)


def _alternatives(extensions: tuple[str, ...]) -> str:
    if len(extensions) == 1:
        return extensions[0]
    return ", ".join(extensions[:-1]) + " or " + extensions[-1]


__all__ = ["TEMPORARY_MARK", "check_output", "discard_pending", "write_atomically"]
