"""The fusion pass: which nodes share a kernel, group interfaces, schedule order, the report."""
from __future__ import annotations

import re

import numpy as np
import pytest

from backend_helpers import (B, assert_matches_reference, mlp_graph, random_arrays,
                             random_fusion_graph, random_graph, scalar_constant, t32,
                             training_arrays, training_graph)
from netdsl.backends import compile_graph
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.ir.types import evaluate_dim
from netdsl.passes.fusion import fuse


def kinds(fused):
    return [(g.kind, [n.op.name for n in g.nodes]) for g in fused.groups]


def test_elementwise_chain_with_broadcasts_is_one_kernel():
    b = GraphBuilder(Graph())
    x = b.input("x", t32(B, 3, 4))
    s = b.input("s", t32(4))
    c = b.input("c", t32(3, 1))
    y = b.op("exp", b.op("add", b.op("mul", x, s), c))
    b.graph.outputs = {"y": b.op("mul", y, scalar_constant(b, 2.0))}
    fused = fuse(b.graph)
    assert kinds(fused) == [("elementwise", ["mul", "add", "exp", "mul"])]
    assert [v.name for v in fused.groups[0].inputs[:3]] == ["x", "s", "c"]


def test_reduction_fuses_with_its_elementwise_producers():
    b = GraphBuilder(Graph())
    x = b.input("x", t32(B, 5))
    sq = b.op("mul", b.op("sub", x, scalar_constant(b, 1.0)), x)
    b.graph.outputs = {"s": b.op("sum", sq, axes=(1,))}
    assert kinds(fuse(b.graph)) == [("reduction", ["sub", "mul", "sum"])]


def test_epilogue_fuses_into_matmul_and_runs_in_place():
    graph = mlp_graph((4, 8, 3))
    fused = fuse(graph)
    first = fused.groups[0]
    assert first.kind == "matmul" and [n.op.name for n in first.nodes] == \
        ["matmul", "add", "relu"]
    assert first.anchor.op.name == "matmul"
    # The raw product is not needed elsewhere: only the activation leaves the kernel.
    assert [v.producer.op.name for v in first.outputs] == ["relu"]


def test_values_used_outside_are_group_outputs():
    b = GraphBuilder(Graph())
    x = b.input("x", t32(B, 4))
    y = b.op("add", x, x)
    z = b.op("mul", y, y)
    total = b.op("sum", z)                 # the reduction joins the loop nest of y and z
    product = b.op("matmul", y, b.input("w", t32(4, 2)))     # y also feeds another kernel
    b.graph.outputs = {"z": z, "total": total, "product": product}
    fused = fuse(b.graph)
    group = fused.group_of[y.producer.id]
    assert group.kind == "reduction"
    assert {v.id for v in group.outputs} == {y.id, z.id, total.id}


def test_report_counts_ops_kernels_and_saved_bytes():
    b = GraphBuilder(Graph())
    x = b.input("x", t32(B, 4))
    a = b.op("add", x, x)
    c = b.op("mul", a, a)
    b.graph.outputs = {"y": b.op("exp", c)}
    report = fuse(b.graph).report()
    assert (report.primitive_ops, report.kernels) == (3, 1)
    # a and c (f32[B, 4]) are never stored: 2 * 16 bytes per example.
    assert evaluate_dim(report.saved_bytes, {"B": 8}) == 256
    assert report.saved_bytes_evaluated == 32 and report.bindings == {"B": 1}
    assert fuse(b.graph).report({"B": 8}).saved_bytes_evaluated == 256
    assert "3 primitive ops -> 1 kernels" in report.format()


def test_adam_update_fuses_into_the_weight_gradient_matmul():
    fused = fuse(training_graph(mlp_graph((4, 8, 3))))
    weight_updates = [g for g in fused.groups if g.kind == "matmul" and
                      any(v.producer.op.name == "sub" for v in g.outputs)]
    assert weight_updates, fused.format()
    assert len(fused.groups) < len([n for n in fused.graph.nodes
                                    if n.op.name != "constant"]) / 3


def test_a_gradient_norm_sums_in_the_adam_epilogue_of_its_weight_only_where_asked():
    """The norm's sum of a weight's squared gradient joins the group that computes the
    gradient and Adam's update (its tail) on the cpu target; without tails (the cuda target)
    it stays a reduction kernel of its own."""
    graph = training_graph(mlp_graph((4, 8, 3)))
    fused = fuse(graph, windows=True)
    tails = [g for g in fused.groups if g.tails]
    weights = [g for g in tails if any(v.producer.op.name == "sub" for v in g.outputs)]
    assert len(weights) == 2, fused.format()                 # w0 [4, 8] and w1 [8, 3]
    for group in weights:
        (tail,) = group.tails
        assert group.kind == "matmul" and tail.op.name == "sum" and not group.open
        assert tail.outputs[0] in group.outputs
        assert tail not in group.epilogue and tail in group.nodes
        square = tail.inputs[0]
        assert square.producer in group.epilogue and square not in group.outputs
    apart = fuse(graph)
    assert all(not g.tails for g in apart.groups)
    assert len(apart.groups) > len(fused.groups)


@pytest.mark.parametrize("sizes", [(4, 8, 3), (40, 64, 3)], ids=["short", "blocked"])
def test_a_step_with_norms_in_its_epilogues_matches_the_reference(sizes):
    """Compiled, the tails agree with the reference: the gradient norms and the updated
    weights.  [40, 64] (2,560 elements) sums in float32 blocks of 1,024 (render.py's
    _blocked_sum: a full block, then a short one); [4, 8] in float64."""
    graph = training_graph(mlp_graph(sizes))
    compiled = compile_graph(graph)
    texts = [compiled.generated.source, *map(str, compiled.generated.segments.values())]
    blocked = re.search(r"for \w*b in range\(\(\S+ \+ 1023\) // 1024\):", "\n".join(texts))
    assert bool(blocked) == (sizes[0] == 40)
    assert_matches_reference(graph, training_arrays(graph, batch=7), compiled=compiled,
                             steps=2)


BATCH_NORM = """\
model Net {
    in  image: f32[B, 2, 6, 6]
    in  label: i64[B]
    logits = image |> Conv2D(4, kernel=3, padding=1, bias=false) |> BatchNorm |> relu
        |> Conv2D(4, kernel=3, padding=1, bias=false) |> BatchNorm |> relu
        |> GlobalAvgPool |> Dense(3)
    loss cross_entropy(logits, label)
}
"""


@pytest.mark.parametrize("parallel_min", [0, 1], ids=["serial", "parallel"])
def test_batch_norms_backward_sums_its_statistics_where_the_convolution_makes_the_maps(
        tmp_path, parallel_min):
    """The second convolution's input gradient computes, in its epilogue, the maps batch norm's
    backward sums per channel: those sums join it as tails over the same axes (one loop nest,
    several accumulators), serially and split across threads (parallel_min=1: every nest a
    prange), and the step matches the reference."""
    import netdsl
    from netdsl.backends.numba_cpu import CodegenOptions
    from netdsl.passes.fusion_rules import reduction_axes
    (tmp_path / "net.net").write_text(BATCH_NORM)
    graph = training_graph(netdsl.load(tmp_path / "net.net").training_forward)
    fused = fuse(graph, windows=True)
    several = [g for g in fused.groups if len(g.tails) > 1]
    assert several and all(g.kind == "conv" for g in several), fused.format()
    for group in several:
        assert len({reduction_axes(tail) for tail in group.tails}) == 1
        assert all(tail.outputs[0] in group.outputs for tail in group.tails)
    compiled = compile_graph(graph, options=CodegenOptions(parallel_min=parallel_min))
    texts = "\n".join([compiled.generated.source,
                        *map(str, compiled.generated.segments.values())])
    assert ("acc2" in texts) and (("parts2" in texts) == (parallel_min == 1))
    arrays = training_arrays(graph, batch=5)
    arrays["label"] = np.array([0, 2, 1, 2, 1], np.int64)
    assert_matches_reference(graph, arrays, compiled=compiled, steps=2, rtol=1e-4, atol=1e-5)


RANDOM_GRAPHS = [pytest.param(random_graph, seed, id=f"plain{seed}") for seed in range(12)] + \
    [pytest.param(random_fusion_graph, seed, id=f"mixed{seed}") for seed in range(12)]


@pytest.mark.parametrize("generator, seed", RANDOM_GRAPHS)
def test_schedule_is_topological_and_partitions_the_nodes(generator, seed):
    graph = generator(seed)
    fused = fuse(graph)
    seen = [n.id for g in fused.groups for n in g.nodes] + [n.id for n in fused.constants]
    assert sorted(seen) == sorted(n.id for n in graph.nodes)
    ready = {v.id for v in graph.inputs} | {p.value.id for p in graph.params}
    ready |= {v.id for n in fused.constants for v in n.outputs}
    for group in fused.groups:
        assert all(v.id in ready for v in group.inputs), group.describe()
        if group.kind in ("matmul", "conv"):     # the anchor runs first, then its epilogue
            assert all(v.id in ready for v in group.anchor.inputs), group.describe()
        if group.kind == "reduction":            # the loop nest ends with its reduction
            assert group.nodes[-1] is group.anchor, group.describe()
        inside = set()
        for node in group.nodes:          # nodes in order inside the group
            assert all(v.id in ready or v.id in inside for v in node.inputs)
            inside |= {v.id for v in node.outputs}
        ready |= inside
    # ... and the kernels compute what the graph means.
    arrays = random_arrays(graph, batch=3, seed=seed)
    assert_matches_reference(graph, arrays, compile_graph(graph), steps=2)


def _prologue_graph() -> Graph:
    b = GraphBuilder(Graph(name="prologue"))
    x = b.input("x", t32(B, 4))
    w = b.param("w", t32(4, 4), init=None)
    h = b.op("tanh", x)
    b.graph.outputs = {"y": b.op("add", b.op("matmul", h, w), h), "h": h}
    return b.graph


def test_matmul_group_holds_no_producer_of_its_operands():
    """An anchored group runs its matmul first and its epilogue after: a node that computes
    the matmul's operand cannot be in it."""
    for group in fuse(_prologue_graph()).groups:
        if group.anchor is not None and group.kind in ("matmul", "conv"):
            made_inside = {v.id for n in group.nodes for v in n.outputs}
            assert not made_inside & {v.id for v in group.anchor.inputs}, group.describe()


def test_residual_around_a_matmul_compiles_right():
    graph = _prologue_graph()
    assert_matches_reference(graph, random_arrays(graph))


# ---------------------------------------------------------------------------------------------
# windows: slices at unit steps read as shifted loads (the cpu target's fuse(windows=True))

def _gates_graph() -> Graph:
    """An LSTM cell's shape of computation: one [B, 8] product split into four gates."""
    b = GraphBuilder(Graph())
    x, w = b.input("x", t32(B, 3)), b.input("w", t32(3, 8))
    c = b.input("c", t32(B, 2))
    z = b.op("tanh", b.op("matmul", x, w))
    gates = [b.op("slice", z, starts=(None, 2 * k), stops=(None, 2 * k + 2)) for k in range(4)]
    i, f, g, o = (b.op(name, gate) for name, gate in zip(("sigmoid",) * 2 + ("tanh", "sigmoid"),
                                                            gates))
    cell = b.op("add", b.op("mul", f, c), b.op("mul", i, g))
    b.graph.outputs = {"h": b.op("mul", o, b.op("tanh", cell)), "c": cell}
    return b.graph


def test_slices_fuse_into_their_consumers_as_shifted_loads_only_where_asked():
    graph = _gates_graph()
    assert [k for k, _ in kinds(fuse(graph))].count("op") == 4          # four copies
    fused = fuse(graph, windows=True)
    assert kinds(fused)[0] == ("matmul", ["matmul", "tanh"])
    assert kinds(fused)[1][0] == "elementwise" and \
        [n for n in kinds(fused)[1][1] if n == "slice"] == ["slice"] * 4
    assert len(fused.groups) == 2
    assert_matches_reference(graph, random_arrays(graph, batch=5),
                             compile_graph(graph, "cpu"))


def test_a_window_never_shares_a_kernel_with_the_producer_of_what_it_reads():
    """`m[:, 1:] + m[:, :-1]` after a matmul: the epilogue writes over m in place, so the
    shifted reads of m must run in a kernel after it."""
    b = GraphBuilder(Graph())
    m = b.op("matmul", b.input("x", t32(B, 3)), b.input("w", t32(3, 5)))
    right = b.op("slice", m, starts=(None, 1))
    left = b.op("slice", m, starts=(None, 0), stops=(None, -1))
    b.graph.outputs = {"y": b.op("add", b.op("relu", left), right)}
    fused = fuse(b.graph, windows=True)
    for group in fused.groups:
        sources = {n.inputs[0].id for n in group.nodes if n.op.name == "slice"}
        assert not sources & {v.id for n in group.nodes for v in n.outputs}
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=4),
                             compile_graph(b.graph, "cpu"))


@pytest.mark.parametrize("key", [(slice(None), slice(1, 3), slice(None)),     # middle axis
                                 (slice(None), slice(None), slice(-3, None)),  # from the end
                                 (slice(None), slice(1, 4), slice(2, 5)),     # two axes
                                 (slice(None), slice(None), slice(0, 2, 1))])
def test_shifted_loads_of_a_rank_three_tensor_match_the_reference(key):
    from netdsl.ops.indexing import slice_attrs
    b = GraphBuilder(Graph())
    x = b.input("x", t32(B, 4, 6))
    part = b.op("slice", x, **slice_attrs(key))
    like = b.input("y", part.type)
    b.graph.outputs = {"y": b.op("mul", b.op("exp", part), like),
                       "s": b.op("sum", b.op("mul", part, part), axes=(1,))}
    assert all(g.kind != "op" for g in fuse(b.graph, windows=True).groups)
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=3),
                             compile_graph(b.graph, "cpu"))


def test_a_broadcast_window_and_an_update_of_the_parameter_it_reads():
    """A row of w broadcast over the batch, and `w <- w - 0.5 * w[0:1]`: the update reads row 0
    for every row it writes.  (A window's group has the window's shape, so the row is made in
    a kernel before the update's; memory.py still counts a shifted read as no elementwise one.)"""
    b = GraphBuilder(Graph())
    w = b.param("w", t32(3, 4), init=None)
    x = b.input("x", t32(B, 1, 4))
    b.graph.outputs = {"y": b.op("add", x, b.op("slice", w, starts=(1,), stops=(2,)))}
    first = b.op("slice", w, starts=(0,), stops=(1,))                       # [1, 4]
    b.graph.state_updates = {"w": b.op("sub", w, b.op("mul", first, scalar_constant(b, 0.5)))}
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=2), steps=2,
                             compiled=compile_graph(b.graph, "cpu"))


def test_a_concat_of_one_kernels_results_is_stored_by_that_kernel():
    b = GraphBuilder(Graph())
    x, y = b.input("x", t32(B, 3)), b.input("y", t32(B, 3))
    s = b.op("add", x, y)
    d = b.op("mul", s, y)
    joined = b.op("concat", s, b.op("tanh", d), s, axis=1)
    b.graph.outputs = {"j": joined, "d": d}                     # d is also used on its own
    assert kinds(fuse(b.graph)) == [("elementwise", ["add", "mul", "tanh"]),
                                    ("op", ["concat"])]
    fused = fuse(b.graph, windows=True)
    assert kinds(fused) == [("elementwise", ["add", "mul", "tanh", "concat"])]
    assert {v.producer.op.name for v in fused.groups[0].outputs} == {"concat", "mul"}
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=4),
                             compile_graph(b.graph, "cpu"))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_concat_tiles_along_each_axis_and_after_an_epilogue(axis):
    """Along the batch axis, a middle and the last axis; one concat after a matmul's epilogue
    (the product itself is not tiled: it stays an op), one feeding a reduction."""
    b = GraphBuilder(Graph())
    x, y = b.input("x", t32(2, 3, 4)), b.input("y", t32(2, 3, 4))
    joined = b.op("concat", b.op("exp", x), b.op("sub", x, y), axis=axis)
    m = b.op("matmul", b.input("a", t32(B, 3)), b.input("w", t32(3, 4)))
    act = b.op("relu", m)
    b.graph.outputs = {"j": joined, "total": b.op("sum", b.op("mul", joined, joined)),
                       "e": b.op("concat", act, b.op("neg", act), axis=1),
                       "raw": b.op("concat", m, act, axis=0)}
    fused = fuse(b.graph, windows=True)
    assert [n.op.name for n in fused.group_of[m.producer.id].nodes][:4] == \
        ["matmul", "relu", "neg", "concat"]
    assert_matches_reference(b.graph, random_arrays(b.graph, batch=3),
                             compile_graph(b.graph, "cpu"))


def test_window_rules_of_slice_and_concat():
    from netdsl.ops import all_ops
    ops = all_ops()
    slice_window, tiles = ops["slice"].window, ops["concat"].tiles
    assert slice_window(t32(4, 6), starts=(1, -2), stops=(-1, None)) == (1, 4)
    assert slice_window(t32(B, 6), starts=(None, 2)) == (0, 2)
    assert slice_window(t32(B, 6), starts=(-1,)) is None          # a symbolic axis: whole
    assert slice_window(t32(B, 6), starts=(1,)) is None
    assert slice_window(t32(B, 6), stops=(4,)) is None
    assert slice_window(t32(4, 6), starts=(None, 0), steps=(None, 2)) is None
    assert slice_window(t32(4, 6), starts=(1,), stops=(2,), squeeze=(0,)) is None
    assert tiles(t32(2, 3), t32(2, 5), axis=1) == [(0, 0), (0, 3)]
    assert tiles(t32(B, 3), t32(2, 3), axis=0) is None
