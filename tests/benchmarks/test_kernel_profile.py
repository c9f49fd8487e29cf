"""tools/kernel_profile.py: its perf map names every compiled function of a bound step (the map
is what turns perf's bare JIT addresses into kernel names), and the whole tool runs where
Linux perf can sample."""
from __future__ import annotations

import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
try:
    import kernel_profile
finally:
    sys.path.remove(str(ROOT / "tools"))


def test_the_map_names_the_compiled_functions_in_address_order(tmp_path):
    import netdsl
    from netdsl.compiler import Training, compile_step
    model = netdsl.load(ROOT / "examples" / "xor.net")
    compile_step(model.training_forward, "cpu", Training.from_config(model.train_config),
                 cache_dir=tmp_path / "cache")
    path = tmp_path / "perf.map"

    class Gone:
        pass
    dead = weakref.proxy(Gone())           # a dead proxy among the objects (isinstance raises)
    assert kernel_profile.write_map(path) > 0
    del dead
    rows = [line.split() for line in path.read_text().splitlines()]
    addresses = [int(row[0], 16) for row in rows]
    assert addresses == sorted(addresses) and len(set(addresses)) == len(addresses)
    assert all(0 < int(row[1], 16) <= kernel_profile.CAP for row in rows)
    names = {row[2] for row in rows}
    assert "linalg.matmul_2d" in names or "linalg.matmul_2d_parallel" in names
    assert any(name.endswith(".step") for name in names)


def _perf_samples() -> bool:
    if shutil.which("perf") is None:
        return False
    probe = subprocess.run(["perf", "stat", "-e", "cpu-clock", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _perf_samples(), reason="no Linux perf that can sample here")
def test_the_tool_reports_the_xor_step_by_function():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "kernel_profile.py"), "xor",
                             "--seconds", "1", "--top", "40"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "steps" in result.stdout and "%" in result.stdout
    assert np.any(["[JIT]" in line for line in result.stdout.splitlines()])
