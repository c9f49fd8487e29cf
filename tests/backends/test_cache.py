"""The compile cache: content-addressed modules, and no LLVM when compiling a model again."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from backend_helpers import mlp_graph, random_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.cache import cache_key
from netdsl.backends.reference import run as reference_run

SCRIPT = """
import json, sys
sys.path.insert(0, {helpers!r})
from backend_helpers import mlp_graph, random_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import CodegenOptions
graph = training_graph(mlp_graph((3, 5, 2)), "sgd")
# parallel kernels too: a cached driver calling them must start the thread pool itself
compiled = compile_graph(graph, options=CodegenOptions(parallel_min=1))
arrays = random_arrays(graph, batch=4)
loss = float(compiled.run(arrays)["loss"])
report = compiled.report
print(json.dumps({{"hit": report.cache_hit, "llvm": report.llvm_compiles, "loss": loss,
                  "params": {{name: arrays[name].tolist() for name in graph.state_updates}},
                  "path": report.module_path, "phases": report.phases}}))
"""


def _compile_in_subprocess(cache: Path) -> dict:
    env = {**os.environ, "NETDSL_CACHE_DIR": str(cache)}
    code = SCRIPT.format(helpers=str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=Path(__file__).parents[2], timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _reference_step() -> tuple[float, dict]:
    """The loss and updated parameters the subprocess's step must produce."""
    graph = training_graph(mlp_graph((3, 5, 2)), "sgd")
    arrays = random_arrays(graph, batch=4)
    loss = float(reference_run(graph, arrays)["loss"])
    return loss, {name: arrays[name] for name in graph.state_updates}


def test_second_compile_in_a_new_process_does_not_invoke_llvm(tmp_path):
    first = _compile_in_subprocess(tmp_path)
    second = _compile_in_subprocess(tmp_path)
    assert not first["hit"] and first["llvm"] >= 1
    assert second["hit"] and second["llvm"] == 0
    # Both the freshly compiled and the cached step compute what the reference computes.
    loss, params = _reference_step()
    for run in (first, second):
        np.testing.assert_allclose(run["loss"], loss, rtol=1e-5)
        for name, want in params.items():
            np.testing.assert_allclose(np.array(run["params"][name], np.float32), want,
                                       rtol=1e-5, atol=1e-6, err_msg=name)
    assert second["loss"] == first["loss"]
    assert Path(second["path"]).parent == tmp_path
    assert (tmp_path / "__pycache__").is_dir()            # Numba's cache beside the module


def test_compiling_again_in_process_reuses_the_driver():
    graph = mlp_graph((4, 3))
    first = compile_graph(graph)
    again = compile_graph(mlp_graph((4, 3)))          # a new but identical graph
    assert again.report.key == first.report.key and again.report.cache_hit
    assert again.report.llvm_compiles == 0 and again.driver is first.driver
    arrays = random_arrays(graph)
    want = reference_run(graph, dict(arrays))
    for compiled in (first, again):
        got = compiled.run(dict(arrays))
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    text = again.report.format()
    assert "cache: hit" in text and "fuse" in text and "compile" in text


def test_key_depends_on_the_source_and_target():
    assert cache_key("a = 1", "cpu") != cache_key("a = 2", "cpu")
    assert cache_key("a = 1", "cpu") != cache_key("a = 1", "cuda")
    assert cache_key("a = 1", "cpu") == cache_key("a = 1", "cpu")


def test_cache_dir_argument_overrides_the_environment(tmp_path):
    graph = mlp_graph((2, 2))
    compiled = compile_graph(graph, cache_dir=tmp_path)
    assert Path(compiled.report.module_path).parent == tmp_path
    arrays = random_arrays(graph)
    np.testing.assert_allclose(compiled.run(dict(arrays))["out"],
                               reference_run(graph, dict(arrays))["out"], rtol=1e-5, atol=1e-6)


def test_one_module_text_serves_graphs_of_other_argument_types(tmp_path):
    """Two graphs whose generated code reads the same (a copy of a 2-d input, and of a 3-d
    one: shapes are read at run time) share one module, named by its text; the second graph
    compiles the driver for its own argument types too, rather than calling the first's
    (a TypeError from Numba's dispatcher, before)."""
    import netdsl
    rng = np.random.default_rng(0)
    for rank, dims in ((2, (2, 3)), (3, (2, 3, 4))):
        shape = ", ".join(["B", *map(str, dims[1:])])
        path = tmp_path / f"copy{rank}.net"
        path.write_text(f"model Copy {{\n    in x: f32[{shape}]\n"
                        f"    out y = transpose(x, {list(range(rank))})\n}}\n")
        model = netdsl.load(path)
        x = rng.standard_normal(dims).astype(np.float32)
        got = model.forward({}, {"x": x}, target="cpu")["y"]
        np.testing.assert_array_equal(got, x)
