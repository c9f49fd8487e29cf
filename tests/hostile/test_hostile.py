"""Hostile and careless input through the real CLI: every case is a `.toml` file under cases/.

A case names the command line, the files it runs on, and what must happen:

    description = "import of a file that is not a .net file quotes nothing of it"
    argv = ["check", "model.net"]            # `python -m netdsl ...`, run in the case's folder
    exit = 1                                 # the exit status (1: a user error; 0: accepted)
    stderr = ["model.net:1:1: error: "]      # substrings of stderr, in order
    not_stderr = ["root:x:0:0"]              # substrings that must not appear
    seconds = 5                              # wall-clock bound, Python start-up included
    outputs = ["y.npz"]                      # files the command may leave in its folder
    env = { NETDSL_CACHE_DIR = "" }          # extra environment
    setup = "..."                            # Python run before the command, `folder` in scope
    [files]
    "model.net" = "..."                      # files written into the folder first

Every case also checks: no Python traceback on stdout or stderr, an `error:` line when the
exit status is 1, and no file left in the folder but the case's own and its `outputs`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

CASES = sorted((Path(__file__).parent / "cases").rglob("*.toml"))
ROOT = Path(__file__).resolve().parents[2]


def _case_id(path: Path) -> str:
    return path.relative_to(Path(__file__).parent / "cases").with_suffix("").as_posix()


@pytest.mark.parametrize("path", CASES, ids=[_case_id(p) for p in CASES])
def test_hostile_case(path: Path, tmp_path: Path):
    case = tomllib.loads(path.read_text())
    folder = tmp_path / "case"
    folder.mkdir()
    for name, content in case.get("files", {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    if "setup" in case:
        exec(compile(case["setup"], f"{path.name}:setup", "exec"), {"folder": folder})
    before = _listing(folder)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **case.get("env", {})}
    env.setdefault("NETDSL_CACHE_DIR", str(tmp_path / "cache"))
    bound = float(case.get("seconds", 10))
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "netdsl", *case["argv"]], cwd=folder,
                                env=env, capture_output=True, text=True, timeout=bound + 20,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name}: still running after {bound + 20:.0f} s")
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    context = f"{path.name}: exit {result.returncode} in {seconds:.1f} s\n{output[-3000:]}"
    assert "Traceback" not in output, context
    assert result.returncode == case.get("exit", 1), context
    if result.returncode == 1:
        assert "error:" in result.stderr, context
    position = 0
    for expected in case.get("stderr", []):
        found = result.stderr.find(expected, position)
        assert found >= 0, f"missing {expected!r} (in order)\n{context}"
        position = found + len(expected)
    for forbidden in case.get("not_stderr", []):
        assert forbidden not in output, f"{forbidden!r} must not appear\n{context}"
    assert seconds <= bound, f"took {seconds:.1f} s, bound {bound} s\n{context}"
    left = _listing(folder) - before - set(case.get("outputs", []))
    assert not left, f"files left behind: {sorted(left)}\n{context}"


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if not p.is_dir() or p.is_symlink()}
