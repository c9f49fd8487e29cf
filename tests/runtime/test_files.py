"""The one atomic-write helper every netdsl output goes through (netdsl.runtime.files).

Whole new file or the old one, never a stray temporary (not even after SIGKILL), links and
devices refused rather than replaced, the umask respected, folders never created, and every
problem a netdsl.Error that names the file.
"""
from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from netdsl.errors import Error
from netdsl.runtime import files
from netdsl.runtime.checkpoint import load_checkpoint, save_checkpoint
from netdsl.runtime.files import check_output, discard_pending, write_atomically

ROOT = Path(__file__).resolve().parents[2]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(params=["unnamed", "named"])
def temporary_kind(request, monkeypatch):
    """Both ways of holding the new data: O_TMPFILE (Linux), and a hidden named file."""
    if request.param == "named":
        monkeypatch.delattr(files.os, "O_TMPFILE", raising=False)
    elif not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE here")
    return request.param


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def test_bytes_text_and_writer_functions(tmp_path, temporary_kind):
    assert write_atomically(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    write_atomically(tmp_path / "b.txt", "grüße")
    write_atomically(tmp_path / "c.bin", lambda handle: handle.write(b"abc"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "grüße"
    assert (tmp_path / "c.bin").read_bytes() == b"abc"
    assert listing(tmp_path) == ["a.bin", "b.txt", "c.bin"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600),
                                        (0o002, 0o664)])
def test_a_new_file_gets_0666_less_the_umask(tmp_path, umask, temporary_kind, mask, mode):
    umask(mask)
    write_atomically(tmp_path / "w.npz", b"data")
    assert stat.S_IMODE(os.stat(tmp_path / "w.npz").st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path, umask, temporary_kind):
    umask(0o022)
    target = tmp_path / "w.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_a_symbolic_link_is_refused_not_replaced(tmp_path, temporary_kind):
    real = tmp_path / "real.npz"
    real.write_bytes(b"precious")
    for name, pointee in (("link.npz", real.name), ("dangling.npz", "nowhere.npz"),
                          ("to_folder.npz", ".")):
        link = tmp_path / name
        link.symlink_to(pointee)
        with pytest.raises(Error, match=f"cannot write file .*{name}: it is a symbolic link"):
            write_atomically(link, b"replacement")
        assert link.is_symlink() and os.readlink(link) == pointee
    assert real.read_bytes() == b"precious"
    assert listing(tmp_path) == ["dangling.npz", "link.npz", "real.npz", "to_folder.npz"]


def test_devices_pipes_and_folders_are_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")
    (tmp_path / "folder.npz").mkdir()
    for path, kind in ((tmp_path / "pipe.npz", "a named pipe"),
                       (tmp_path / "folder.npz", "a folder"),
                       (Path("/dev/null"), "a character device")):
        with pytest.raises(Error, match=f"it is {kind}, not a regular file"):
            write_atomically(path, b"x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert listing(tmp_path) == ["folder.npz", "pipe.npz"]


def test_missing_folder_or_a_file_as_folder(tmp_path):
    with pytest.raises(Error, match="folder .*missing does not exist") as raised:
        write_atomically(tmp_path / "missing" / "w.npz", b"x")
    assert "does not create folders" in raised.value.diagnostics[0].hint
    (tmp_path / "plain").write_text("")
    with pytest.raises(Error, match="plain is not a folder"):
        write_atomically(tmp_path / "plain" / "w.npz", b"x")
    assert listing(tmp_path) == ["plain"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write into a read-only folder")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(Error, match="folder .*locked is not writable"):
            write_atomically(folder / "w.npz", b"x")
        assert listing(folder) == []
    finally:
        folder.chmod(0o755)


def test_permission_refused_while_creating(tmp_path, monkeypatch, temporary_kind):
    """What a read-only file system or a folder root cannot write says (simulated for root)."""
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | getattr(os, "O_TMPFILE", 0)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", refusing_open)
    with pytest.raises(Error, match="cannot write file .*w.npz: the file system is read-only"):
        write_atomically(tmp_path / "w.npz", b"x")
    assert listing(tmp_path) == []


def test_extensions_and_names(tmp_path):
    with pytest.raises(Error, match=r"outputs .*y.txt must end in .npz$"):
        check_output(tmp_path / "y.txt", "outputs", (".npz",))
    with pytest.raises(Error, match="must end in .npz or .safetensors"):
        check_output(tmp_path / "w", "checkpoint", (".npz", ".safetensors"))
    assert check_output(tmp_path / "W.NPZ", "checkpoint", (".npz",)) == tmp_path / "W.NPZ"
    with pytest.raises(Error, match="not a file name"):
        check_output("", "plot")
    with pytest.raises(Error, match="not a file name"):
        check_output(tmp_path / "..", "plot")


@pytest.mark.parametrize("failure", [ValueError("bad array"), KeyboardInterrupt(),
                                     OSError(errno.ENOSPC, "No space left on device")])
def test_any_failure_leaves_the_old_file_and_nothing_else(tmp_path, temporary_kind, failure):
    target = tmp_path / "w.npz"
    target.write_bytes(b"old")

    def write_half(handle):
        handle.write(b"new but ")
        handle.flush()
        raise failure

    expected = Error if isinstance(failure, OSError) else type(failure)
    with pytest.raises(expected) as raised:
        write_atomically(target, write_half)
    if isinstance(failure, OSError):
        assert "cannot write file" in str(raised.value) and "No space left" in str(raised.value)
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["w.npz"]
    assert not files._pending


def test_named_temporary_is_recognisable_and_discarded(tmp_path, monkeypatch):
    monkeypatch.delattr(files.os, "O_TMPFILE", raising=False)
    seen = []

    def write(handle):
        seen.extend(listing(tmp_path))
        discard_pending()                    # what a hard exit on a second Ctrl-C does
        seen.extend(listing(tmp_path))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / ("x" * 250 + ".npz"), write)
    assert len(seen) == 1 and seen[0].startswith(".xxx") and files.TEMPORARY_MARK in seen[0]
    assert seen[0].endswith(".tmp") and len(seen[0]) < 255
    assert listing(tmp_path) == []


def test_linking_refused_falls_back_to_a_copy(tmp_path, monkeypatch, umask):
    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE here")
    umask(0o027)

    def no_link(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_link)
    data = os.urandom(3 << 20)
    write_atomically(tmp_path / "big.bin", data)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert stat.S_IMODE(os.stat(tmp_path / "big.bin").st_mode) == 0o640
    assert listing(tmp_path) == ["big.bin"]


# ---------------------------------------------------------------------------------------------
# SIGKILL at random moments of a 16 MB checkpoint save.

SAVER = """
import sys
import numpy as np
from netdsl.runtime.checkpoint import save_checkpoint
path = sys.argv[1]
weights = {"big": np.zeros(4 << 20, np.float32), "version": np.zeros((), np.int64)}
version = 0
while True:
    version += 1
    weights["big"][:] = version
    weights["version"][...] = version
    save_checkpoint(path, weights, {"version": version})
    if version == 1:
        print("saved", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkill_during_saves_leaves_the_old_checkpoint_and_no_temporary(tmp_path):
    kills = int(os.environ.get("NETDSL_KILL_SWEEP", "8"))
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for index in range(kills):
        folder = tmp_path / f"kill{index}"
        folder.mkdir()
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(folder / "w.npz")], env=env,
                                 stdout=subprocess.PIPE, text=True)
        assert saver.stdout.readline() == "saved\n"
        time.sleep(rng.uniform(0.0, 0.4))
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        saver.stdout.close()
        assert listing(folder) == ["w.npz"], f"kill {index}"
        checkpoint = load_checkpoint(folder / "w.npz")
        version = int(checkpoint.weights["version"])
        assert checkpoint.meta == {"version": version}
        assert checkpoint.weights["big"].shape == (4 << 20,)
        assert (checkpoint.weights["big"] == version).all()


def test_checkpoints_are_written_through_the_helper(tmp_path, umask):
    umask(0o022)
    (tmp_path / "link.npz").symlink_to("elsewhere.npz")
    with pytest.raises(Error, match="cannot write checkpoint .*link.npz: it is a symbolic link"):
        save_checkpoint(tmp_path / "link.npz", {"w": np.ones(2)})
    save_checkpoint(tmp_path / "w.safetensors", {"w": np.ones(2, np.float32)}, {"epoch": 2})
    save_checkpoint(tmp_path / "w.npz", {"file": np.ones(2), "allow_pickle": np.zeros(1)})
    assert load_checkpoint(tmp_path / "w.safetensors").meta == {"epoch": 2}
    assert sorted(load_checkpoint(tmp_path / "w.npz").weights) == ["allow_pickle", "file"]
    for name in ("w.npz", "w.safetensors"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    assert listing(tmp_path) == ["link.npz", "w.npz", "w.safetensors"]
