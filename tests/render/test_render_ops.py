"""The ops level (forward and gradient) and the kernels level, read from SVG and from the diagram."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from netdsl.render import (build_kernels, build_ops, is_gradient_node, kernel_groups,
                           render_kernels, render_ops)
from render_helpers import needs_dot, svg


@needs_dot
def test_ops_level_draws_ops_params_and_scope_clusters(mlp):
    drawn = svg(render_ops(mlp.forward))
    for text in ["matmul", "add", "relu", "sum", "f32[B, 8]", "f32[4, 8]", "axis=(0, 1)",
                 "weight", "bias", "x", "y", "loss"]:
        assert text in drawn.texts, text
    assert {"fc1", "fc2", "relu_1"} <= set(drawn.cluster_texts())
    assert len(drawn.nodes) == 5 + 1 + 3 + 2          # ops, input, params, output + loss
    assert "mlp.net:4 — matmul fc1" in drawn.titles
    assert not any("backward" in t for t in drawn.cluster_texts())


@needs_dot
def test_gradient_graph_is_drawn_apart(mlp):
    digraph = render_ops(mlp.forward, grad_graph=mlp.train)
    drawn = svg(digraph)
    assert "backward pass (gradients)" in drawn.cluster_texts()
    assert {"∇ fc1", "∇ fc2", "∇ relu_1"} <= set(drawn.cluster_texts())
    assert "relu_grad" in drawn.texts
    assert "grad:fc1.weight" in drawn.texts
    assert "mlp.net:5 — matmul grad.fc2" in drawn.titles    # gradients point at the source
    diagram = build_ops(mlp.forward, grad_graph=mlp.train)
    (backward,) = [g for g in diagram.root.groups if g.kind == "grad"]
    grad_boxes = list(backward.walk_boxes())
    assert len(grad_boxes) == 8 and all(b.category == "grad" for b in grad_boxes)
    # the scalar seed is drawn inside the box that reads it, not as a box of its own
    assert [b.title for b in grad_boxes if "const 1" in b.details] == ["mul"]
    grad_ids = {b.id for b in grad_boxes}
    assert all(link.kind == "grad" for link in diagram.links if link.target in grad_ids)
    assert "style=\"rounded,filled,dashed\"" in digraph.source


def test_gradient_nodes_are_recognised_by_scope_or_absence(mlp):
    forward_ids = {n.id for n in mlp.forward.nodes}
    extra = [n for n in mlp.train.nodes if n.id not in forward_ids]
    seed = extra[0]                                   # the seed constant has no grad scope
    assert not is_gradient_node(seed) and is_gradient_node(seed, forward_ids)
    assert all(is_gradient_node(n) for n in extra[1:])
    assert not any(is_gradient_node(n, forward_ids) for n in mlp.forward.nodes)


def test_a_training_graph_alone_still_shows_its_gradients(mlp):
    diagram = build_ops(mlp.train)
    assert any(g.kind == "grad" for g in diagram.root.groups)


@needs_dot
def test_kernels_level_draws_each_fused_kernel_as_a_cluster(mlp, fused_mlp):
    digraph = render_kernels(mlp.forward, fused_mlp)
    drawn = svg(digraph)
    assert "fc1_epilogue (matmul+elementwise)" in drawn.cluster_texts()
    assert "3 ops fused" in drawn.cluster_texts()
    assert len(drawn.clusters) == 1                   # single-op kernels are not clusters
    assert any("(kernel fc2_matmul)" in (t or "") for t in drawn.titles)
    assert "fc1.weight" in drawn.texts                # no scope clusters: full names
    diagram = build_kernels(mlp.forward, fused_mlp)
    kinds = {(link.source, link.target): link.kind for link in diagram.links}
    matmul1, add, relu, matmul2, _ = mlp.forward.nodes
    assert kinds[(f"op{matmul1.id}", f"op{add.id}")] == "fused"
    assert kinds[(f"op{relu.id}", f"op{matmul2.id}")] == "memory"
    texts = " ".join(drawn.texts)                     # the legend names both kinds of edge
    assert "inside a kernel (stays in registers)" in texts
    assert "between kernels (through memory)" in texts
    assert "gradient (backward pass)" not in texts     # only the kinds drawn


@pytest.mark.parametrize("shape", ["namespaces", "lists", "dict", "object", "ids"])
def test_kernel_groups_accepts_the_documented_shapes(mlp, fused_mlp, shape):
    lists = [g.nodes for g in fused_mlp]
    fused = {"namespaces": fused_mlp, "lists": lists,
             "dict": {g.name: g.nodes for g in fused_mlp},
             "object": SimpleNamespace(groups=fused_mlp),
             "ids": [[n.id for n in nodes] for nodes in lists]}[shape]
    groups = kernel_groups(mlp.forward, fused)
    assert [len(g.nodes) for g in groups] == [3, 1, 1]
    assert all(g.name for g in groups)


def test_ops_diagram_has_a_mermaid_form(mlp):
    from netdsl.render import to_mermaid
    text = to_mermaid(build_ops(mlp.forward, grad_graph=mlp.train))
    assert text.startswith("flowchart TB\n")
    assert "-.->" in text and 'subgraph' in text and "backward pass (gradients)" in text


def test_repeated_blocks_are_drawn_once_at_the_ops_level(rep3):
    from netdsl.render.layers import repeated_copies
    assert repeated_copies(rep3.arch) == ({"rep_2": "rep_1", "rep_3": "rep_1"},
                                          {"rep_1": "rep ×3 (Block)"})
    full = build_ops(rep3.graph)
    collapsed = build_ops(rep3.graph, arch=rep3.arch)
    assert len(list(full.root.walk_boxes())) == 1 + 3 * 4 + 1      # x, 3 × (w, matmul, mul, relu), y
    boxes = list(collapsed.root.walk_boxes())
    assert len(boxes) == 1 + 4 + 1
    assert not any("rep_2" in (b.tooltip or "") for b in boxes)
    (cluster,) = collapsed.root.groups
    assert cluster.label == "rep ×3 (Block)" and cluster.kind == "repeat"
    assert [link.kind for link in collapsed.links].count("repeat") == 1   # relu -> next matmul
    assert "const 0.5" in [d for b in boxes for d in b.details]
    (output,) = [b for b in boxes if b.category == "output"]
    assert any(link.target == output.id for link in collapsed.links)     # the last copy's output
    assert build_ops(rep3.graph, arch=rep3.arch, expand=True).links == full.links


@needs_dot
def test_repeated_blocks_are_drawn_once_at_the_kernels_level(rep3):
    nodes = [n for n in rep3.graph.nodes if n.op.name != "constant"]
    groups = [SimpleNamespace(name=f"k{i}", kind="matmul", nodes=nodes[i * 3:i * 3 + 3])
              for i in range(3)]
    drawn = svg(render_kernels(rep3.graph, groups, arch=rep3.arch))
    assert [t for t in drawn.cluster_texts() if t.startswith("k")] == ["k0 (matmul)"]
    assert "3 ops fused · in rep ×3 (Block)" in drawn.cluster_texts()
    assert len(svg(render_kernels(rep3.graph, groups, arch=rep3.arch, expand=True)).clusters) == 3
