"""Memory planning: no two live values share memory; in-place updates only when safe."""
from __future__ import annotations

import numpy as np
import pytest

from backend_helpers import (B, assert_matches_reference, mlp_graph, random_arrays,
                             random_graph, scalar_constant, t32, training_graph)
from netdsl.ir.graph import Graph, GraphBuilder
from netdsl.passes.fusion import fuse
from netdsl.passes.memory import check_plan, plan_memory


@pytest.mark.parametrize("seed", range(30))
def test_no_two_live_values_share_a_slot(seed):
    fused = fuse(random_graph(seed))
    plan = plan_memory(fused)
    assert check_plan(fused, plan) == []
    for value_id, (start, stop) in plan.live.items():
        assert start <= stop


def test_checker_detects_a_bad_plan():
    fused = fuse(random_graph(3))
    plan = plan_memory(fused)
    ids = [vid for vid, where in plan.location.items() if where.kind == "slot"]
    for vid in ids:                                   # squeeze everything into one slot
        plan.location[vid].slot = 0
    assert check_plan(fused, plan)


def test_buffers_are_reused():
    fused = fuse(training_graph(mlp_graph((4, 8, 8, 3))))
    plan = plan_memory(fused)
    values = sum(len(s.values) for s in plan.slots)
    assert len(plan.slots) < values
    offsets, totals = plan.layout({"B": 16})
    assert all(offset % 16 == 0 for offset in offsets)


def test_adam_updates_params_and_moments_in_place():
    graph = training_graph(mlp_graph((4, 8, 3)))
    plan = plan_memory(fuse(graph))
    assert set(plan.in_place) == set(graph.state_updates) and not plan.copies


def test_update_whose_old_value_is_read_later_is_copied():
    b = GraphBuilder(Graph())
    x = b.input("x", t32(B, 4))
    w = b.param("w", t32(4, 4), init=None)
    new = b.op("mul", w, scalar_constant(b, 2.0))
    # The matmul reads w's old value after the update's kernel.
    b.graph.outputs = {"y": b.op("matmul", b.op("matmul", x, new), w)}
    b.graph.state_updates = {"w": new}
    graph = b.graph
    plan = plan_memory(fuse(graph))
    assert [name for name, _ in plan.copies] == ["w"]
    assert_matches_reference(graph, random_arrays(graph), steps=2)


def test_swapped_updates_read_the_old_values():
    b = GraphBuilder(Graph())
    p = b.param("p", t32(3), init=None)
    q = b.param("q", t32(3), init=None)
    b.graph.outputs = {"s": b.op("add", p, q)}
    b.graph.state_updates = {"p": q, "q": p}
    plan = plan_memory(fuse(b.graph))
    assert len(plan.snapshots) == 2
    arrays = {"p": np.arange(3, dtype=np.float32), "q": np.ones(3, np.float32)}
    assert_matches_reference(b.graph, arrays, steps=3)
