"""Rewrites of generated driver lines (line_rewrites.py): 0-d buffers as arena elements,
integers passed bare to separately compiled calls."""
from __future__ import annotations

from netdsl.backends.numba_cpu import line_rewrites, parts


def test_scalar_buffers_are_read_and_written_as_arena_elements():
    carves = {"v_1": "v_1 = _view(arena_f32, offsets[3], ())",
              "v_2": "v_2 = _view(arena_f32, offsets[4], (d_0,))",
              "v_3": "v_3 = _view(arena_i64, o_2, ())"}
    places = line_rewrites.scalar_places(carves)
    assert places == {"v_1": "arena_f32[offsets[3]]", "v_3": "arena_i64[o_2]"}
    lines = ["x = v_1[()] + v_3[()]", "v_1[()] = x", "kernel_0(v_1, v_2)", "w_1[()] = x"]
    assert line_rewrites.scalars_in_place(lines, places) == [
        "x = arena_f32[offsets[3]] + arena_i64[o_2]", "arena_f32[offsets[3]] = x",
        "kernel_0(v_1, v_2)", "w_1[()] = x"]
    # the buffer a kernel is passed keeps its carve; the others need none
    rewritten = line_rewrites.scalars_in_place(lines, places)
    assert parts.carves_for(rewritten, carves) == [carves["v_1"], carves["v_2"]]


def test_the_mlp_step_reads_no_scalar_through_a_view():
    import re
    from pathlib import Path

    import netdsl
    from netdsl.compiler import Training, compile_step
    model = netdsl.load(Path(__file__).resolve().parents[2] / "benchmarks" / "models" / "mlp.net")
    training = Training.from_config(model.train_config)
    source = compile_step(model.training_forward, "cpu", training, stop_after="codegen").source
    scalars = set(re.findall(r"(\w+) = _unowned_view\(arena_f32, offsets\[\d+\], \(\)\)", source))
    assert scalars and "arena_f32[offsets[" in source     # Adam's bias corrections, say
    assert not [name for name in scalars if f"{name}[()]" in source]


def test_integer_arguments_of_separate_calls_are_passed_bare():
    lines = ["kernel_0(np.int64(256), np.int64((d_0)), v_0, _view(v_1, 0, (np.int64(3),)))",
             "    block_1(arena_f32, offsets, np.int64(12), d_0)",
             "other(np.int64(5))", "kernel_0(np.int64(a3), np.int64((10 * d_0)), v_0)",
             "x = kernel_0(np.int64(1))"]
    assert line_rewrites.plain_integers(lines, {"kernel_0", "block_1"}) == [
        "kernel_0(256, d_0, v_0, _view(v_1, 0, (np.int64(3),)))",
        "    block_1(arena_f32, offsets, 12, d_0)",
        "other(np.int64(5))", "kernel_0(np.int64(a3), np.int64((10 * d_0)), v_0)",
        "x = kernel_0(np.int64(1))"]


def test_a_line_that_is_not_one_call_keeps_its_integers():
    assert line_rewrites.plain_integers(["kernel_0(np.int64(1))(np.int64(2))"], {"kernel_0"}) \
        == ["kernel_0(np.int64(1))(np.int64(2))"]


def test_a_drivers_views_of_its_own_arrays_lose_their_owner_but_what_it_returns():
    lines = ["v_view_1 = _view(v_3, 0, (d_0, 4))",
             "v_view_2 = _view(v_4, 0, (d_0, 4))",
             "kernel_0(_view(in_0, 0, (d_0,)), _view(p_2, 0, (4, 1)), v_view_1)",
             "g3_parts = _empty((8,), np.float32)",
             "g3_part_v = _view(g3_parts, 0, (8,))",          # an array the driver allocates
             "g4_v_5_v = _unowned_view(v_5, 0, (d_0,))"]
    assert line_rewrites.unowned_views(lines, {"v_view_2"}, "_unowned_view") == [
        "v_view_1 = _unowned_view(v_3, 0, (d_0, 4))",
        "v_view_2 = _view(v_4, 0, (d_0, 4))",                # returned: keeps the arena alive
        "kernel_0(_unowned_view(in_0, 0, (d_0,)), _unowned_view(p_2, 0, (4, 1)), v_view_1)",
        "g3_parts = _empty((8,), np.float32)",
        "g3_part_v = _view(g3_parts, 0, (8,))",
        "g4_v_5_v = _unowned_view(v_5, 0, (d_0,))"]
