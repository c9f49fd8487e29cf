"""Repeated runs of kernel groups (the blocks of a `repeat`) become one shared njit function."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from backend_helpers import copy_arrays, training_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import CodegenOptions
from netdsl.backends.numba_cpu.segments import canonical, share_repeats

MODULE = {"kernel_0", "_random_kernel", "_view", "np", "range"}
CARVES = {f"v_{k}": f"v_{k} = _view(arena_f32, offsets[{k}], (d_0, 8))" for k in range(12)}


def _block(a: int, b: int, c: int, seed: int) -> list[str]:
    return [f"# k{a}", f"kernel_0(np.int64(d_0), np.int64(8), v_{a}, p_{a}, v_{b})",
            f"_random_kernel(v_{c}, {seed}, in_2[()])",
            f"kernel_0(np.int64(d_0), np.int64(8), v_{b}, v_{c}, v_{a + 3})",
            f"for g{a}_i0 in range(d_0):", f"    v_{c}[g{a}_i0, 0] = v_{b}[g{a}_i0, 1]"]


def test_a_repeated_run_becomes_one_function_called_per_repeat():
    defined = {}

    def define(text, n_params):
        return defined.setdefault(text, f"block_{len(defined)}")

    groups = [["# stem", "kernel_0(np.int64(d_0), np.int64(8), v_11, p_11, v_0)"]]
    groups += [_block(0, 1, 2, 77), _block(3, 4, 5, 78), _block(6, 7, 8, 79)]
    lines = share_repeats(groups, MODULE, define, CARVES)
    assert lines[:2] == groups[0]                        # the stem occurs once: stays inline
    assert len(defined) == 1 and lines[2:] == [
        f"block_0(arena_f32, offsets, np.int64({k}), d_0, np.int64({k + 1}), "
        f"np.int64({k + 2}), np.int64({k + 3}), p_{k}, in_2, np.int64({77 + k // 3}))"
        for k in (0, 3, 6)]
    text = next(iter(defined))
    assert "_view(a0, a1[a2], (a3, 8))" in text and "77" not in text


def test_only_groups_whose_skeleton_repeats_are_put_in_canonical_form(monkeypatch):
    """share_repeats parses a group only where another has its skeleton (names and numbers
    as placeholders, no comments or spaces): runs of one canonical form share a skeleton."""
    from netdsl.backends.numba_cpu import segments
    assert segments._skeleton(_block(0, 1, 2, 77)) == segments._skeleton(_block(3, 4, 5, 78))
    assert segments._skeleton(["x = a + b  # k1"]) == segments._skeleton(["y=c+1 # k22 relu"])
    assert segments._skeleton(["x = a + b"]) != segments._skeleton(["x = a * b"])
    parsed = []
    monkeypatch.setattr(segments, "canonical",
                        lambda lines, names: parsed.append(lines) or canonical(lines, names))
    stem = ["# stem", "kernel_0(np.int64(d_0), np.int64(8), v_11, p_11, v_0)"]
    groups = [stem, _block(0, 1, 2, 77), _block(3, 4, 5, 78), _block(6, 7, 8, 79)]
    lines = share_repeats(groups, MODULE, lambda text, n: "block_0", CARVES)
    assert lines[:2] == stem and all(line.startswith("block_0(") for line in lines[2:])
    assert not any("v_11" in line for lines in parsed for line in lines)   # the stem: not parsed


def test_a_run_that_reads_its_own_local_before_assigning_it_is_not_shared():
    assert canonical(["x = y + 1", "y = 2"], {"np"}) is None
    assert canonical(["y = 2", "x = y + 1"], {"np"}).arguments == []


def test_repeated_blocks_compile_to_segments_whose_numbers_do_not_depend_on_the_cache(tmp_path):
    """Segments agree with the plain compile up to the rounding fast math allows (a segment's
    loop nests are optimised in their own function, the plain step's inline in the step), and
    bit for bit with themselves loaded from the cache in a fresh process (jit.py: before, a
    cached caller called its own copy of a linked function where the compiling process had
    called the callee's, and 98 of 110 outputs differed by an ulp after two steps)."""
    source = tmp_path / "deep.net"
    source.write_text(DEEP)
    graph, arrays = _deep_training(source)
    shared = compile_graph(graph, cache_dir=tmp_path / "a")
    plain = compile_graph(graph, cache_dir=tmp_path / "b",
                          options=CodegenOptions(share_repeated=False))
    assert shared.report.kernels["segments"] >= 2          # forward, backward, update blocks
    assert shared.report.kernels["segment_calls"] >= 2 * shared.report.kernels["segments"]
    assert plain.report.kernels["segments"] == 0
    ours, theirs = copy_arrays(arrays), copy_arrays(arrays)
    results = {}
    for step in range(2):
        got, want = shared.run(ours), plain.run(theirs)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6,
                                       err_msg=name)
            results[f"{step}:{name}"] = np.array(got[name])
    for name in graph.state_updates:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)
        results[f"state:{name}"] = np.array(ours[name])

    child = subprocess.run(
        [sys.executable, "-c", LOAD_CHILD, str(Path(__file__).parent), str(source),
         str(tmp_path / "a"), str(tmp_path / "loaded.npz")],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert child.returncode == 0, child.stderr
    loaded = np.load(tmp_path / "loaded.npz")
    assert sorted(loaded) == sorted(results)
    for key, value in results.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def _deep_training(source):
    import netdsl
    model = netdsl.load(source)
    graph = training_graph(model.training_forward, "adam")
    arrays = training_arrays(graph, batch=5, seed=1)
    for name, value in model.init(seed=0).items():
        arrays[name] = value
    return graph, arrays


# Loads the segment-shared compile from the cache and runs the test's two steps.
LOAD_CHILD = """
import sys
import numpy as np
helpers, source, cache, out = sys.argv[1:]
sys.path.insert(0, helpers)
from backend_helpers import copy_arrays
from test_segments import _deep_training
from netdsl.backends import compile_graph
graph, arrays = _deep_training(source)
compiled = compile_graph(graph, cache_dir=cache)
ours, results = copy_arrays(arrays), {}
for step in range(2):
    for name, value in compiled.run(ours).items():
        results[f"{step}:{name}"] = np.array(value)
for name in graph.state_updates:
    results[f"state:{name}"] = np.array(ours[name])
np.savez(out, **results)
"""


DEEP = """
block Residual(width: int) {
    in  x: f32[B, width]
    h = x |> LayerNorm |> Dense(width * 2) |> gelu |> Dense(width)
    out x + h
}

model Deep {
    in  x: f32[B, 3]
    in  y: f32[B, 2]
    out p = x |> Dense(8) |> repeat(4, Residual(8)) |> Dense(2)
    loss mse(p, y)
}
"""


def test_a_segment_is_its_own_cache_module_that_another_model_loads_without_compiling(
        tmp_path, monkeypatch):
    """A 3-block and a 4-block net repeat the same block: the second loads the segments the
    first compiled from Numba's cache (a fresh module object, as in a new process).  Compiles
    are counted in this process, so without a helper process (compile_helper.py)."""
    import sys
    monkeypatch.setenv("NETDSL_COMPILE_JOBS", "1")

    from numba.core import event

    import netdsl
    compiles: list[str] = []

    class Listener(event.Listener):
        def on_start(self, ev):
            function = ev.data["dispatcher"].py_func
            if function.__name__ == "segment":
                compiles.append(function.__module__)

        def on_end(self, ev):
            pass

    graphs = []
    for blocks in (4, 3):
        source = tmp_path / f"deep{blocks}.net"
        source.write_text(DEEP.replace("repeat(4,", f"repeat({blocks},"))
        graphs.append(training_graph(netdsl.load(source).training_forward, "adam"))
    for name in [name for name in sys.modules if name.startswith("netdsl_generated_")]:
        del sys.modules[name]                 # loaded by an earlier test, from its own cache
    listener = Listener()
    event.register("numba:compile", listener)
    try:
        first = compile_graph(graphs[0], cache_dir=tmp_path / "cache")
        segments = set(first.generated.segments)
        assert segments and sorted(compiles) == sorted(f"netdsl_generated_{key}"
                                                       for key in segments)   # once each
        for key in segments:                  # as a new process would: no module in memory
            del sys.modules[f"netdsl_generated_{key}"]
        compiles.clear()
        second = compile_graph(graphs[1], cache_dir=tmp_path / "cache")
    finally:
        event.unregister("numba:compile", listener)
    assert set(second.generated.segments) == segments and compiles == []
    assert second.report.llvm_compiles > 0                  # its own driver did compile
    assert (tmp_path / "cache" / f"nd_{next(iter(segments))}.py").is_file()


def test_a_damaged_segment_module_is_discarded_with_one_note(tmp_path, capsys):
    """A segment's module follows the compile cache's rules: compared with the source, run
    from memory; garbage in its place is discarded with one note and written again."""
    import sys

    import netdsl
    source = tmp_path / "deep.net"
    source.write_text(DEEP.replace("repeat(4,", "repeat(2,"))
    graph = training_graph(netdsl.load(source).training_forward, "adam")
    arrays = training_arrays(graph, batch=3, seed=2)
    for name, value in netdsl.load(source).init(seed=0).items():
        arrays[name] = value
    cache = tmp_path / "cache"
    first = compile_graph(graph, cache_dir=cache)
    want = {name: np.array(value) for name, value in first.run(copy_arrays(arrays)).items()}
    key = next(iter(first.generated.segments))
    path = cache / f"nd_{key}.py"
    path.write_text("open('PLANTED', 'w')\n")
    for name in [name for name in sys.modules if name.startswith("netdsl_generated_")]:
        del sys.modules[name]
    capsys.readouterr()
    again = compile_graph(graph, cache_dir=cache)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and str(path) in notes[0] and notes[0].endswith("; recompiling")
    assert path.read_text() == first.generated.segments[key]
    got = again.run(copy_arrays(arrays))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
