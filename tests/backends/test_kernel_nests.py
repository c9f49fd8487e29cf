"""Loop nests in generated code (numba_cpu/kernel_nests.py, render.py): which become functions
of their own, and the views a nest makes of its arrays."""
from __future__ import annotations

import re
from types import SimpleNamespace

from backend_helpers import assert_matches_reference, mlp_graph, training_arrays, training_graph
from netdsl.backends import compile_graph, get_target
from netdsl.backends.expr import Ref
from netdsl.backends.loopir import Load, LoopNest, Stmt, Store
from netdsl.backends.numba_cpu.codegen import CodegenOptions
from netdsl.backends.numba_cpu.render import render_nest
from netdsl.ir.types import DType


def _functions(text: str) -> list[str]:
    return text.split("\ndef ")[1:]


def test_a_long_loop_body_is_a_call_and_matches_the_reference():
    # Adam's update of each parameter is a loop of 22 loads, statements and stores.  With
    # repeats not shared (the weights' updates have one source, the biases' another), each is
    # still a function of its own.
    graph = training_graph(mlp_graph((4, 8, 3)), "adam")
    compiled = compile_graph(graph, options=CodegenOptions(share_repeated=False))
    source = compiled.generated.source
    in_loops = [line for line in source.splitlines()
                if "np.sqrt(" in line and line.startswith(" " * 8)]
    assert not in_loops, in_loops          # the bias corrections' scalar sqrts stay inline
    updates = [text for text in compiled.generated.segments.values() if "np.sqrt" in text]
    assert updates, "the Adam updates should be shared loop nests"
    assert_matches_reference(graph, training_arrays(graph), compiled=compiled, steps=2,
                             rtol=1e-4, atol=1e-5)


def test_an_array_updated_in_place_is_viewed_once_in_every_function():
    graph = training_graph(mlp_graph((4, 8, 3)), "adam")
    generated = get_target("cpu").compile(graph, stop_after="codegen")   # the text alone
    for text in [generated.source, *generated.segments.values()]:
        for function in _functions(text):
            views = re.findall(r"^\s*(\w+) = _(?:unowned_)?view\(", function, re.M)
            assert len(views) == len(set(views)), function


def _value(ident: int, rank: int):
    return SimpleNamespace(id=ident, rank=rank, dtype=DType.f32)


def _nest(load_axes):
    """out[i, j, k] = x[i, j, k or 0] over loops (i, j) merged and k, x and out being one
    buffer `a0` (the names map both values to it)."""
    x, out = _value(1, 3), _value(2, 3)
    return LoopNest(shape=["n", "m", "k"], loads=[Load(x, load_axes, "x0")],
                    body=[Stmt("t0", Ref("x0", DType.f32), DType.f32)], stores=[Store(out, "t0")],
                    groups=[[0, 1], [2]], kinds=["parallel", "parallel"])


def test_a_load_and_a_store_of_one_buffer_in_one_shape_share_one_view():
    lines = render_nest(_nest(("i", "i", "i")), {1: "a0", 2: "a0"}, ["n0", "n1"])
    assert [line for line in lines if "_view(" in line] == ["a0_v = _view(a0, 0, (n0, n1,))"]


def test_two_shapes_of_one_buffer_get_two_views():
    lines = render_nest(_nest(("i", "i", "b")), {1: "a0", 2: "a0"}, ["n0", "n1"])
    assert [line for line in lines if "_view(" in line] == [
        "a0_v = _view(a0, 0, (n0, 1,))", "a0_v_ = _view(a0, 0, (n0, n1,))"]
    assert any("= a0_v[i0, 0]" in line for line in lines)
    assert any(line.strip().startswith("a0_v_[i0, i1] =") for line in lines)
