"""Graph-level passes: DCE, CSE, constant folding, algebraic rules, and the pipeline."""
from __future__ import annotations

import numpy as np
import pytest

from netdsl.backends.reference import run
from netdsl.errors import Error
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.printer import print_graph
from netdsl.ir.types import DType, TensorType
from netdsl.passes.cse import eliminate_common_subexpressions
from netdsl.passes.dce import eliminate_dead_code
from netdsl.passes.fold import fold_constants
from netdsl.passes.pipeline import PIPELINE, run_pipeline, stage_names
from netdsl.passes.simplify import simplify_algebra

F32 = DType.f32


def ops(graph):
    return [n.op.name for n in graph.nodes]


def builder(*shapes):
    b = GraphBuilder(Graph(name="g"))
    xs = [b.input(f"x{i}", TensorType(F32, s)) for i, s in enumerate(shapes)]
    return b, xs


def test_dce_keeps_outputs_losses_and_state_updates():
    b, (x,) = builder((3,))
    state = b.param("s", TensorType(F32, (3,)), ("zeros",), trainable=False)
    used = b.op("exp", x)
    b.op("log", x)                                   # dead
    loss = b.op("sum", b.op("mul", x, x), axes=None, keepdims=False)
    update = b.op("add", state, x)
    b.graph.outputs["y"] = used
    from netdsl.ir.graph import LossInfo
    b.graph.losses.append(LossInfo("l", loss))
    b.graph.state_updates["s"] = update
    before = b.graph
    after = eliminate_dead_code(before)
    assert "log" not in ops(after) and {"exp", "mul", "sum", "add"} <= set(ops(after))
    assert "log" in ops(before)                      # the pass made a new graph
    assert after.inputs == before.inputs and after.params == before.params


def test_cse_merges_duplicates_and_keeps_distinct():
    b, (x, y) = builder((3,), (3,))
    a1 = b.op("add", x, y)
    a2 = b.op("add", x, y)
    a3 = b.op("add", y, x)                           # different input order: a different key
    c1 = b.constant(np.array([1.0, 2.0], dtype=np.float32))
    c2 = b.constant(np.array([1.0, 2.0], dtype=np.float32))
    m1 = b.op("mul", a1, a2)
    b.graph.outputs = {"m": m1, "a3": a3, "c": b.op("add", c1, c2)}
    after = eliminate_common_subexpressions(b.graph)
    assert ops(after).count("add") == 3 and ops(after).count("constant") == 1
    mul = next(n for n in after.nodes if n.op.name == "mul")
    assert mul.inputs[0] is mul.inputs[1]
    arrays = {"x0": np.arange(3, dtype=np.float32), "x1": np.ones(3, np.float32)}
    np.testing.assert_array_equal(run(after, arrays)["m"], run(b.graph, arrays)["m"])


def test_fold_small_constant_subgraphs():
    b, (x,) = builder((2,))
    c = b.op("exp", b.constant(np.array([0.0, 1.0], dtype=np.float32)))
    y = b.op("mul", x, b.op("add", c, b.constant(1.0)))
    b.graph.outputs["y"] = y
    after = eliminate_dead_code(fold_constants(b.graph))
    assert ops(after) == ["constant", "mul"]
    np.testing.assert_allclose(after.nodes[0].attrs["value"], np.exp([0.0, 1.0]) + 1, rtol=1e-6)


def test_fold_leaves_large_results():
    b, (x,) = builder((5000,))
    big = b.op("exp", b.constant(np.zeros(5000, dtype=np.float32)))
    b.graph.outputs["y"] = b.op("add", x, big)
    assert "exp" in ops(fold_constants(b.graph))


@pytest.mark.parametrize("make,expect", [
    (lambda b, x: b.op("mul", x, b.constant(1.0)), []),
    (lambda b, x: b.op("mul", b.constant(1.0), x), []),
    (lambda b, x: b.op("add", x, b.constant(0.0)), []),
    (lambda b, x: b.op("sub", x, b.constant(0.0)), []),
    (lambda b, x: b.op("div", x, b.constant(1.0)), []),
    (lambda b, x: b.op("neg", b.op("neg", x)), []),
    (lambda b, x: b.op("cast", x, dtype=F32), []),
    (lambda b, x: b.op("sum", x, axes=(), keepdims=False), []),
    (lambda b, x: b.op("transpose", b.op("transpose", x, perm=(1, 0)), perm=(1, 0)), []),
    (lambda b, x: b.op("reshape", b.op("reshape", x, shape=(6,)), shape=(3, 2)), ["reshape"]),
    (lambda b, x: b.op("sub", b.constant(0.0), x), ["neg"]),
])
def test_algebraic_rules(make, expect):
    b, (x,) = builder((2, 3))
    b.graph.outputs["y"] = make(b, x)
    after = eliminate_dead_code(simplify_algebra(b.graph))
    assert ops(after) == expect
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(run(after, {"x0": value})["y"], run(b.graph, {"x0": value})["y"])


def test_algebraic_rules_keep_type_changes_and_float_zero():
    b, (x,) = builder((3,))
    widened = b.op("add", x, b.constant(np.zeros((2, 3), dtype=np.float32)))   # broadcasts x
    zero = b.op("mul", x, b.constant(0.0))              # NaN * 0 must stay NaN
    b.graph.outputs = {"w": widened, "z": zero}
    after = simplify_algebra(b.graph)
    assert ops(after).count("add") == 1 and ops(after).count("mul") == 1
    result = run(after, {"x0": np.array([np.nan, 1, 2], dtype=np.float32)})
    assert np.isnan(result["z"][0])


def test_integer_times_zero_becomes_zeros():
    b = GraphBuilder(Graph())
    n = b.input("n", TensorType(DType.i64, (4,)))
    b.graph.outputs["z"] = b.op("mul", n, b.constant(0))
    after = eliminate_dead_code(simplify_algebra(b.graph))
    assert "mul" not in ops(after)
    np.testing.assert_array_equal(run(after, {"n": np.arange(4)})["z"], np.zeros(4))


def test_pipeline_names_trace_and_stop_after():
    b, (x,) = builder((3,))
    y = b.op("neg", b.op("neg", b.op("mul", x, b.constant(1.0))))
    b.op("exp", x)                                      # dead
    b.graph.outputs["y"] = b.op("add", y, b.op("mul", x, b.constant(1.0)))
    seen = []
    result = run_pipeline(b.graph, trace=lambda name, g: seen.append((name, len(g.nodes))))
    assert [name for name, _ in seen] == stage_names() == [name for name, _ in PIPELINE]
    assert ops(result) == ["add"] and result.nodes[0].inputs == (x, x)
    stopped = run_pipeline(b.graph, stop_after="dce")
    assert "exp" not in ops(stopped) and "neg" in ops(stopped)
    with pytest.raises(Error, match="unknown compiler stage 'simplfy'"):
        run_pipeline(b.graph, stop_after="simplfy")


def test_passes_are_deterministic_text():
    def make():
        b, (x,) = builder((3,))
        b.graph.outputs["y"] = b.op("add", b.op("exp", x), b.op("exp", x))
        return run_pipeline(b.graph)
    assert print_graph(make()) == print_graph(make())


def test_matmul_of_transpose_becomes_a_transpose_flag():
    b = GraphBuilder(Graph(name="g"))
    x = b.input("x", TensorType(F32, (2, 3)))
    w = b.input("w", TensorType(F32, (4, 3)))
    s = b.input("s", TensorType(F32, (5, 2, 3)))
    b.graph.outputs["y"] = b.op("matmul", x, b.op("transpose", w, perm=(1, 0)))
    b.graph.outputs["z"] = b.op("matmul", b.op("transpose", x, perm=(1, 0)), x)
    b.graph.outputs["u"] = b.op("matmul", s, b.op("transpose", s, perm=(0, 2, 1)))
    m = b.input("m", TensorType(F32, (3, 4)))
    b.graph.outputs["v"] = b.op("matmul", x, b.op("transpose", m), transpose_b=True)
    after = eliminate_dead_code(simplify_algebra(b.graph))
    assert "transpose" not in ops(after)
    flags = [(n.attrs.get("transpose_a", False), n.attrs.get("transpose_b", False))
             for n in after.nodes]
    assert flags == [(False, True), (True, False), (False, True), (False, False)]   # mᵀᵀ = m
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32),
             "w": rng.standard_normal((4, 3)).astype(np.float32),
             "s": rng.standard_normal((5, 2, 3)).astype(np.float32),
             "m": rng.standard_normal((3, 4)).astype(np.float32)}
    want, got = run(b.graph, feeds), run(after, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)


def test_matmul_keeps_a_transpose_of_other_axes():
    b = GraphBuilder(Graph(name="g"))
    s = b.input("s", TensorType(F32, (2, 2, 3)))
    t = b.op("transpose", s, perm=(1, 0, 2))            # batch axes swapped: not a flag
    b.graph.outputs["y"] = b.op("matmul", t, b.op("transpose", s, perm=(0, 2, 1)))
    after = eliminate_dead_code(simplify_algebra(b.graph))
    assert ops(after).count("transpose") == 1


def test_transpose_of_a_matmul_swaps_its_operands():
    b = GraphBuilder(Graph(name="g"))
    x = b.input("x", TensorType(F32, (2, 3)))
    g = b.input("g", TensorType(F32, (2, 4)))
    b.graph.outputs["y"] = b.op("transpose", b.op("matmul", x, g, transpose_a=True))   # (xᵀg)ᵀ
    shared = b.op("matmul", x, x, transpose_b=True)        # used twice: the transpose stays
    b.graph.outputs["s"] = shared
    b.graph.outputs["t"] = b.op("transpose", shared)
    after = eliminate_dead_code(simplify_algebra(b.graph))
    assert ops(after).count("transpose") == 1
    first = after.nodes[0]
    assert first.attrs["transpose_a"] and not first.attrs["transpose_b"]     # gᵀ x
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32),
             "g": rng.standard_normal((2, 4)).astype(np.float32)}
    want, got = run(b.graph, feeds), run(after, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("ranges, merged", [
    ([(8, 12), (0, 4), (4, 8), (12, 16)], True),      # an LSTM's g, i, f, o gradients
    ([(0, 4), (8, 12), (12, 16)], False),             # a gap: zeros stay
    ([(0, 8), (4, 12), (12, 16)], False),             # an overlap: the sum stays
])
def test_slice_grads_covering_an_axis_become_one_concat(ranges, merged):
    b, (x, *gs) = builder((3, 16), *[(3, stop - start) for start, stop in ranges])
    total = None
    for g, (start, stop) in zip(gs, ranges):
        part = b.op("slice_grad", g, x, starts=(None, start), stops=(None, stop),
                    steps=(None, None), squeeze=())
        total = part if total is None else b.op("add", total, part)
    b.graph.outputs["y"] = total
    simplified = run_pipeline(b.graph)
    assert ("concat" in ops(simplified)) == merged
    assert ("slice_grad" in ops(simplified)) != merged
    rng = np.random.default_rng(0)
    arrays = {v.name: rng.standard_normal(v.shape).astype(np.float32) for v in b.graph.inputs}
    np.testing.assert_array_equal(run(simplified, arrays)["y"], run(b.graph, arrays)["y"])


def test_numel_of_a_computed_value_counts_from_the_inputs_dims():
    """numel(tanh(x) * 2) is counted from x's dims (an argument, always in memory): no node
    reads the computed value for its shape any more.  A dim that is not a product of symbols
    the inputs carry (B + 1) keeps the numel as it was."""
    from netdsl.ir.types import Sym
    batch = Sym.named("B")
    b = GraphBuilder(Graph(name="counts"))
    x = b.input("x", TensorType(F32, (batch, 3, 4)))
    y = b.op("mul", b.op("tanh", x), b.constant(2.0, F32))
    b.graph.outputs = {"all": b.op("numel", y), "two": b.op("numel", y, axes=(0, 2)),
                       "i64": b.op("numel", y, axes=(1,), dtype=DType.i64),
                       "input": b.op("numel", x)}
    simplified = simplify_algebra(b.graph)
    readers = [n for n in simplified.nodes if n.op.name == "numel"]
    assert readers and all(n.inputs[0] is x for n in readers)
    arrays = {"x": np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)}
    got, want = run(simplified, dict(arrays)), run(b.graph, dict(arrays))
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name] == want[name], name
    assert int(got["all"]) == 60 and int(got["two"]) == 20 and int(got["i64"]) == 3

    # [B + 1, 4]: a sum of terms, not a product of carried symbols; the numel stays.
    b = GraphBuilder(Graph(name="uncarried"))
    x = b.input("x", TensorType(F32, (batch, 4)))
    grown = b.op("concat", b.op("tanh", x), b.input("row", TensorType(F32, (1, 4))), axis=0)
    b.graph.outputs = {"count": b.op("numel", grown)}
    simplified = simplify_algebra(b.graph)
    (reader,) = [n for n in simplified.nodes if n.op.name == "numel"]
    assert reader.inputs[0] is grown
