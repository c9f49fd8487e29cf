"""`netdsl check` never imports Numba: ops hold no target code, and the CPU target loads its
compiler (and its lowerings) only when it compiles.  Run in a fresh interpreter, since this test
session has imported Numba long before."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROGRAM = """
import contextlib, io, sys
from netdsl.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(["check", sys.argv[1]])
    except SystemExit as exit:
        code = exit.code
assert code in (0, None), f"netdsl check exited with {code}"
loaded = sorted(name for name in sys.modules if name == "numba" or name.startswith("numba."))
assert not loaded, f"netdsl check imported {loaded[:5]}"
"""


@pytest.mark.parametrize("example", ["lenet_digits.net", "rnn_sequence.net"])
def test_check_imports_no_numba(example):
    result = subprocess.run([sys.executable, "-c", PROGRAM, str(ROOT / "examples" / example)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
