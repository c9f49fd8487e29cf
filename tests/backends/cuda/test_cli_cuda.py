"""The cuda target from the command line (in the simulator in CI): compile shows the CUDA
kernels, run gives the cpu target's outputs, gradcheck checks the generated gradient code."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cuda_helpers import needs_cuda
from netdsl.cli import main

pytestmark = needs_cuda
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_compile_emits_cuda_kernels_and_a_host_driver(capsys):
    assert main(["compile", str(EXAMPLES / "xor.net"), "--target", "cuda",
                 "--emit", "source"]) == 0
    source = capsys.readouterr().out
    assert "source: the generated module (cuda target)" in source
    assert "@cuda.jit(cache=True)" in source and "cuda.grid(1)" in source
    assert "\ndef step(" in source and "_linalg_matmul(" in source


def test_run_on_cuda_gives_the_cpu_outputs(tmp_path, capsys):
    import netdsl
    model = netdsl.load(EXAMPLES / "xor.net")
    weights = tmp_path / "xor.npz"
    netdsl.save_weights(weights, model.init(seed=3), {"model": model.name})
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    outputs = {}
    for target in ("cpu", "cuda"):
        out = tmp_path / f"{target}.npz"
        assert main(["run", str(EXAMPLES / "xor.net"), "--weights", str(weights), "--input",
                     str(tmp_path / "x.npz"), "--output", str(out), "--target", target]) == 0
        outputs[target] = dict(np.load(out))
    np.testing.assert_allclose(outputs["cuda"]["prob"], outputs["cpu"]["prob"], rtol=1e-5)


def test_gradcheck_on_cuda(capsys):
    assert main(["gradcheck", str(EXAMPLES / "xor.net"), "--target", "cuda"]) == 0
    assert "4 of 4 parameters within" in capsys.readouterr().out
