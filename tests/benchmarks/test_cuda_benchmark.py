"""benchmarks/cuda.py: the GPU benchmark runs end to end at toy sizes in Numba's CUDA simulator
(--smoke), says so and exits 1 without a device, and reads the bytes a kernel moves off the
generated source."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    from cuda_kernels import Launch, _bytes, elementwise_kernels, largest_elementwise
finally:
    sys.path.remove(str(ROOT / "benchmarks"))

NUMBER = r"(\d+(?:\.\d+)?(?:e[+-]\d+)?)"


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.cuda", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _env(**changes) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(changes)
    return env


def test_smoke_times_the_three_workloads_in_the_simulator(tmp_path):
    pytest.importorskip("numba.cuda")
    out = tmp_path / "results.md"
    done = _run(["--smoke", "--no-compile", "--out", str(out)],
                _env(NUMBA_ENABLE_CUDASIM="1"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = out.read_text()
    assert text in done.stdout                          # printed and written alike
    assert "**Smoke run**" in text and "simulator" in text
    torch = "PyTorch is not installed" not in done.stdout
    for title in ("smoke: MLP 32-16-16-10", "smoke: LeNet", "smoke: Transformer"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {title}"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        netdsl = re.fullmatch(NUMBER + r" \(.*\)", cells[1])
        assert netdsl and float(netdsl.group(1)) > 0, row
        if torch:
            eager = re.fullmatch(NUMBER + r" \(.*\)", cells[2])
            assert eager and float(eager.group(1)) > 0, row
            assert cells[3] == "—"                     # torch.compile skipped
            assert re.fullmatch(r"\d+\.\d\d×", cells[4]), row
    assert "torch.compile: skipped (--no-compile)" in text
    kernels = [line for line in text.split("## Largest fused elementwise kernel")[1].splitlines()
               if re.match(r"\| (mlp|lenet|transformer) \| kernel_\d+ ", line)]
    assert [line.split("|")[1].strip() for line in kernels] == ["mlp", "lenet", "transformer"]
    for line in kernels:
        cells = [c.strip() for c in line.strip("|").split("|")]
        elements, moved = int(cells[3].replace(",", "")), int(cells[5].replace(",", ""))
        assert elements > 0 and moved >= 4 * elements, line    # f32: at least one store
    assert re.search(r"practical " + NUMBER + " GB/s", text)


def test_without_a_device_it_says_so_and_exits_1():
    from numba import cuda
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0") and cuda.is_available():
        pytest.skip("a GPU is here: the benchmark would run")
    done = _run([], _env())
    assert done.returncode == 1
    assert done.stdout.strip() == ("no CUDA device: this benchmark needs a GPU (--smoke runs it "
                                   "small in the simulator)")
    assert "Traceback" not in done.stderr


SOURCE = '''
@cuda.jit(cache=True)
def kernel_0(n0, a0, a1, a2, a3):
    g = cuda.grid(1)
    stride = cuda.gridsize(1)
    total = n0
    while g < total:
        i0 = g
        x0 = a0[i0]
        x1 = a1[0]
        t0 = np.float32((x0 * x1))
        a2[i0] = t0
        a3[i0] = x0
        g += stride

@cuda.jit(cache=True)
def kernel_1(n0, a0, a1):
    partial = cuda.shared.array(32, _numba.float64)
    tid = cuda.threadIdx.x
    cell = cuda.blockIdx.x
    while cell < cells:
        x0 = a0[r]
    a1[cell] = np.float32(partial[0])

def step(in_0, arena_f32, offsets):
    # k3 elementwise: mul
    kernel_0[_grid(8)](8, _flat(in_0), _flat(v_1), _flat(v_2), _flat(v_3))
'''


class _Compiled:
    source = SOURCE


def test_elementwise_kernels_and_the_bytes_they_move():
    found = elementwise_kernels(SOURCE)
    assert list(found) == ["kernel_0"]                  # the reduction is not elementwise
    params, loaded, stored = found["kernel_0"]
    assert params == ["n0", "a0", "a1", "a2", "a3"]
    assert loaded == {"a0", "a1"} and stored == {"a2", "a3"}
    x, scale = np.zeros(8, np.float32), np.zeros(1, np.float32)
    out, copy = np.zeros(8, np.float32), np.zeros(8, np.float64)
    launch = Launch("kernel_0", None, (1, 8), (8, x, scale, out, copy))
    assert _bytes(launch, params, loaded, stored) == (32 + 4 + 32 + 64, 8)
    small = Launch("kernel_0", None, (1, 8), (2, x[:2], scale, out[:2], copy[:2]))
    best = largest_elementwise(_Compiled(), [small, launch,
                                             Launch("kernel_1", None, (1, 8), (x, out))])
    assert best[0] is launch and best[1] == 132
