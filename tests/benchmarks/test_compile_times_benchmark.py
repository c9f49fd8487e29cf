"""benchmarks/compile_times.py: the summary's medians and verdicts, and its section of
RESULTS.md replaced without touching the others (the measurements themselves take minutes)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    from report import replace_section
finally:
    sys.path.remove(str(ROOT / "benchmarks"))
from benchmarks.compile_times import HEADING, summary  # noqa: E402


def test_the_summary_gives_medians_spreads_and_verdicts():
    runs = {"mlp cold": [{"seconds": s, "llvm_compiles": 12} for s in (2.0, 4.0, 3.5)],
            "start warm": [{"seconds": s} for s in (0.5, 0.7, 0.6, 0.9)]}
    text = summary(runs, ("1.00 / 1.00 / 1.00", "2.00 / 1.50 / 1.00"), ["--repeats", "3"])
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
            if line.startswith("| ") and "---" not in line}
    assert rows["mlp cold"] == "| mlp cold | 3 | 3.50 | 2.30-3.90 | 12 | <= 3 | missed |"
    assert rows["start warm"] == "| start warm | 4 | 0.65 | 0.53-0.84 | - | <= 0.8 | met |"
    assert "lenet cold" not in rows                     # not measured: no row
    assert "1.00 / 1.00 / 1.00 at the start" in text and "--repeats 3" in text


def test_its_section_is_replaced_and_the_others_kept():
    others = "# results\n\n## Machine\n\n- cpu\n\n## Scaling: x\n\n| a |\n"
    first = replace_section(others, HEADING, HEADING + "\n\nold\n")
    second = replace_section(first, HEADING, HEADING + "\n\nnew\n")
    assert second.startswith(others) and second.count(HEADING) == 1
    assert "old" not in second and second.endswith("new\n")


def test_the_start_child_stops_after_the_first_training_step(tmp_path):
    """The warm-start child runs `netdsl train` until its first step returns, then reports."""
    env = {**os.environ, "NETDSL_CACHE_DIR": str(tmp_path / "netdsl"),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NETDSL_BENCH_SPAWNED": repr(time.time())}
    result = subprocess.run([sys.executable, "-m", "benchmarks.compile_times", "--child", "start",
                             str(ROOT / "examples" / "xor.net")], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
    assert 0 < seconds < 600
    assert "epoch" not in result.stdout                  # stopped before the epoch's line
