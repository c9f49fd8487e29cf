"""The driver's parameters as one table of addresses (numba_cpu/param_table.py)."""
import numpy as np

from backend_helpers import copy_arrays, mlp_graph, training_arrays, training_graph
from netdsl.backends import compile_graph
from netdsl.backends.numba_cpu import CodegenOptions
from netdsl.backends.numba_cpu.segments import canonical

DEEP = """
block Residual(width: int) {
    in  x: f32[B, width]
    h = x |> LayerNorm |> Dense(width * 2) |> relu |> Dense(width)
    out x + h
}

model Deep {
    in  x: f32[B, 3]
    in  y: f32[B, 2]
    out p = x |> Dense(8) |> repeat(3, Residual(8)) |> Dense(2)
    loss mse(p, y)
}
"""


def _signature(compiled) -> str:
    return compiled.source.split("def step(", 1)[1].split(")", 1)[0]


def _steps(compiled, arrays: dict, steps: int = 3) -> tuple[list, dict]:
    """Outputs of `steps` bound steps then one `run`, and the state they leave."""
    graph = compiled.graph
    state = {p.name: arrays[p.name] for p in graph.params}
    names = [v.name for v in graph.inputs]
    step = compiled.bind(state, inputs=names)
    outputs = [[np.array(o) for o in step(*(arrays[n] for n in names))] for _ in range(steps)]
    outputs.append(list(compiled.run(arrays).values()))
    return outputs, state


def _assert_same_as_one_argument_per_parameter(graph, arrays):
    tabled = compile_graph(graph, options=CodegenOptions(param_table_min=0))
    plain = compile_graph(graph, options=CodegenOptions(param_table_min=10**9))
    assert "params" in _signature(tabled).split(", ")
    assert "p_0" not in _signature(tabled) and "p_0" in _signature(plain)
    ours, theirs = copy_arrays(arrays), copy_arrays(arrays)
    got, got_state = _steps(tabled, ours)
    want, want_state = _steps(plain, theirs)
    for a, b in zip(got, want):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    for name in want_state:                   # updates land in the caller's own arrays
        np.testing.assert_array_equal(got_state[name], want_state[name], err_msg=name)
        assert got_state[name] is ours[name]
    moved = [p.name for p in graph.params if not np.array_equal(ours[p.name], arrays[p.name])]
    assert moved                              # the steps did train


def test_the_driver_takes_one_table_and_computes_what_one_argument_per_parameter_does():
    graph = training_graph(mlp_graph((4, 8, 3)), "adam")
    _assert_same_as_one_argument_per_parameter(graph, training_arrays(graph, batch=5))


def test_a_small_model_keeps_one_argument_per_parameter_and_a_large_one_gets_the_table():
    graph = training_graph(mlp_graph((4, 8, 3)), "adam")     # 12 parameters
    least = CodegenOptions().param_table_min
    assert len(graph.params) < least
    assert "p_0" in _signature(compile_graph(graph))
    assert "params" in _signature(compile_graph(
        graph, options=CodegenOptions(param_table_min=len(graph.params))))


def test_repeated_blocks_read_their_parameters_from_the_table(tmp_path):
    """A segment takes the table and each parameter's index (like an arena slot), so the
    driver passes no parameter array to it; the numbers equal the plain convention's."""
    import netdsl
    source = tmp_path / "deep.net"
    source.write_text(DEEP)
    graph = training_graph(netdsl.load(source).training_forward, "adam")
    arrays = training_arrays(graph, batch=4, seed=1)
    compiled = compile_graph(graph, options=CodegenOptions(param_table_min=0))
    assert compiled.generated.segments
    calls = [line for line in compiled.source.splitlines() if line.strip().startswith("block_")]
    assert all("p_" not in line for line in calls) and any("params" in line for line in calls)
    _assert_same_as_one_argument_per_parameter(graph, arrays)


def test_a_parameter_index_is_lifted_like_an_arena_slot():
    run = ["p_3 = _param_view(params[3], (8, 8), np.float32)",
           "v_1 = _view(arena_f32, offsets[1], (d_0, 8))", "kernel_0(v_1, p_3)"]
    other = [line.replace("[3]", "[7]").replace("p_3", "p_7").replace("[1]", "[2]")
             for line in run]
    names = {"_param_view", "_view", "kernel_0", "np"}
    first, second = canonical(run, names), canonical(other, names)
    assert first.text == second.text
    assert "np.int64(3)" in first.arguments and "np.int64(7)" in second.arguments
