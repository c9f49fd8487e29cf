"""compiler.freeze_after_cache_hits: the command line's own process freezes the objects alive
after a compile that loaded everything from the caches (gc.freeze), and only then."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "xor.net"

TRAIN = """
import gc, sys
from netdsl.cli import main
arguments = ["train", sys.argv[2], "--epochs", "1", "--quiet"]
if sys.argv[1] == "process":
    sys.argv = ["netdsl"] + arguments
    status = main()             # as the console script calls it
else:
    status = main(arguments)    # from Python: the caller's objects are its own
print(status, gc.get_freeze_count() > 0, gc.isenabled())
"""


def _train(how: str, tmp_path) -> list[str]:
    environment = dict(os.environ, NETDSL_CACHE_DIR=str(tmp_path / "netdsl"),
                       NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    result = subprocess.run([sys.executable, "-c", TRAIN, how, str(EXAMPLE)],
                            capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-3:]


def test_the_process_freezes_after_a_warm_compile_not_after_a_cold_one(tmp_path):
    assert _train("process", tmp_path) == ["0", "False", "True"]     # cold: Numba compiled
    assert _train("process", tmp_path) == ["0", "True", "True"]      # every kernel cached


def test_a_compile_called_from_python_never_freezes(tmp_path):
    assert _train("python", tmp_path) == ["0", "False", "True"]
    assert _train("python", tmp_path) == ["0", "False", "True"]
