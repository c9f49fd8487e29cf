"""Private per-user directories for netdsl's caches, which hold code that netdsl runs.

The compile cache holds generated Python modules that `netdsl train` executes and Numba's cache
files (.nbi/.nbc), which Numba loads with pickle; the parser cache holds Lark's tables.  Whoever
can write into such a directory can run code as the user, so a cache directory must be the
user's own: `private_dir` creates it with mode 0700 and refuses (netdsl.Error, with the way out)
one that is not a directory, belongs to another user, is writable by its group or by others, or
sits in a folder where others may rename it (world-writable without the sticky bit, unlike
/tmp).  The folders above it are trusted, as for ~/.ssh.

Where: `cache_location()` — an explicit directory, else $NETDSL_CACHE_DIR, else
platformdirs.user_cache_dir("netdsl").  An empty NETDSL_CACHE_DIR counts as unset (as the XDG
specification reads an empty XDG_CACHE_HOME), never as the current directory.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import Error


def cache_location(override: str | os.PathLike | None = None) -> Path:
    """The cache directory asked for (not created): `override`, else $NETDSL_CACHE_DIR when it
    is set and not empty, else the user's cache directory (platformdirs)."""
    if override is not None and str(override) == "":
        override = None
    if override is None:
        override = os.environ.get("NETDSL_CACHE_DIR") or None
    if override is None:
        return user_cache_location()
    return Path(override).expanduser().absolute()


def user_cache_location() -> Path:
    """The user's own cache directory for netdsl (platformdirs; ~/.cache/netdsl on Linux)."""
    import platformdirs
    return Path(platformdirs.user_cache_dir("netdsl")).absolute()


def private_dir(path: str | os.PathLike, what: str = "cache directory") -> Path:
    """`path` created (mode 0700) if missing and checked to be the user's own; returns the
    resolved path, to be used from then on.  Raises netdsl.Error naming `what` otherwise."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        pass                                    # a file or a dangling link: reported below
    except OSError as error:
        raise Error(f"cannot create the {what} {path}: {error.strerror or error}",
                    hint=_HINT.format(path=path)) from None
    resolved = path.resolve()
    problem = unsafe_reason(resolved)
    if problem is not None:
        raise Error(f"the {what} {resolved} {problem}", hint=_HINT.format(path=resolved))
    return resolved


_HINT = ("netdsl runs code from its cache directory, so it must be yours alone: "
         "`chmod 700 {path}`, or set NETDSL_CACHE_DIR to a directory of your own")


def unsafe_reason(path: Path) -> str | None:
    """Why another user could write into directory `path` (a phrase), or None if only the
    current user (and root) can."""
    try:
        info = os.stat(path)
    except OSError as error:
        return f"cannot be examined: {error.strerror or error}"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if not hasattr(os, "geteuid"):              # Windows: no POSIX owners or modes
        return None
    if info.st_uid != os.geteuid():
        return f"belongs to another user ({_user_name(info.st_uid)}), not to you"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"is writable by other users (mode {stat.S_IMODE(info.st_mode):03o}), "
                f"who could plant code in it")
    parent = path.parent
    if parent != path:
        try:
            above = os.stat(parent)
        except OSError:
            return None
        if above.st_mode & stat.S_IWOTH and not above.st_mode & stat.S_ISVTX:
            return (f"is in {parent}, which any user may write to without the sticky bit "
                    f"(mode {stat.S_IMODE(above.st_mode):03o}), so others could replace it")
    return None


def _user_name(uid: int) -> str:
    try:
        import pwd
        return f"{pwd.getpwuid(uid).pw_name}, uid {uid}"
    except (ImportError, KeyError):
        return f"uid {uid}"


__all__ = ["cache_location", "private_dir", "unsafe_reason", "user_cache_location"]
