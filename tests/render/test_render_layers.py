"""The layers level: names, shapes, clusters, tooltips, and the collapse rules, read from SVG."""
from __future__ import annotations

import graphviz
import pytest

from netdsl.errors import Error
from netdsl.render import build_layers, render_layers
from render_helpers import needs_dot, svg

pytestmark = needs_dot


def test_layers_svg_has_names_kinds_shapes_and_params(lenet):
    digraph = render_layers(lenet)
    assert isinstance(digraph, graphviz.Digraph)
    drawn = svg(digraph)
    for text in ["conv1", "Conv2D", "fc1", "Dense", "maxpool_1", "Dropout", "p=0.5",
                 "filters=6, kernel=5, padding=2", "f32[B, 6, 28, 28]", "f32[B, 1600]",
                 "156 params", "192k params", "probs", "cross_entropy", "i64[B]"]:
        assert text in drawn.texts, text
    assert "LeNet5 · 196k parameters" in drawn.texts


def test_every_layer_is_one_node_and_block_is_a_cluster_named_by_scope(lenet):
    drawn = svg(render_layers(lenet))
    titles = drawn.node_titles()
    expected = [r.name for r in lenet.records if r.category != "block"]
    assert sorted(titles) == sorted(expected)
    assert "res1 (Residual)" in drawn.cluster_texts()
    assert "342 params" in drawn.cluster_texts()
    # the block's layers sit inside it (SVG clusters are flat, so ask the diagram)
    (cluster,) = build_layers(lenet).root.groups
    assert [box.id for box in cluster.boxes] == ["res1.conv2d_1", "res1.batchnorm_1"]


def test_edges_are_labelled_with_shapes(lenet):
    drawn = svg(render_layers(lenet))
    edge_texts = [t for g in drawn.edges for t in
                  (x.text for x in g.iter("{http://www.w3.org/2000/svg}text")) if t]
    assert "f32[B, 1, 28, 28]" in edge_texts
    assert "i64[B]" in edge_texts
    assert len(drawn.edges) == 13


def test_tooltips_and_links_carry_file_and_line(lenet):
    drawn = svg(render_layers(lenet))
    assert drawn.tooltip_of("fc1") == "lenet.net:9 — Dense fc1"
    assert drawn.tooltip_of("res1.conv2d_1") == "lenet.net:20 — Conv2D res1.conv2d_1"
    assert "lenet.net#L9" in drawn.hrefs
    # every node carries its source location
    assert all(drawn.tooltip_of(name) and "lenet.net:" in drawn.tooltip_of(name)
               for name in drawn.node_titles())
    assert "lenet.net:6 — Residual res1" in drawn.titles     # the cluster too


def test_inputs_outputs_and_losses_are_styled_apart(lenet):
    source = render_layers(lenet).source
    colours = {}
    for line in source.splitlines():
        name = line.strip().split(" ", 1)[0].strip('"')
        if "fillcolor=" in line:
            colours[name] = line.split('fillcolor="', 1)[1].split('"', 1)[0]
    assert len({colours["image"], colours["probs"], colours["loss"], colours["fc1"]}) == 4
    assert colours["conv1"] == colours["conv2"]           # one colour per category
    assert colours["conv1"] != colours["fc1"] != colours["relu_1"]


def test_twelve_fold_repeat_collapses_into_one_cluster(encoder12):
    drawn = svg(render_layers(encoder12))
    assert len(drawn.nodes) < 20
    assert len(drawn.nodes) == 5 + 6                      # one copy's 5 layers + 6 around it
    assert "encoder ×12 (TransformerEncoderLayer)" in drawn.cluster_texts()
    assert "12 × 198k params" in drawn.cluster_texts()
    assert "attn" in drawn.texts and "MultiHeadAttention" in drawn.texts
    assert "f32[B, T, 512]" in drawn.texts
    # the copy-to-copy edge becomes one dashed back edge inside the cluster
    source = render_layers(encoder12).source
    assert source.count('style=dashed') == 1
    assert '"encoder_1.norm2" -> pool' in source or '"encoder_1.norm2" -> "pool"' in source


def test_expand_draws_every_copy(encoder12):
    drawn = svg(render_layers(encoder12, expand=True))
    assert len(drawn.nodes) == 12 * 5 + 6
    labels = drawn.cluster_texts()
    assert "encoder_12 (TransformerEncoderLayer)" in labels
    assert not any("×" in label for label in labels)


def test_identical_chained_blocks_collapse_but_parallel_ones_do_not(stacked):
    drawn = svg(render_layers(stacked))
    labels = drawn.cluster_texts()
    assert "residual_1 … residual_3 ×3 (Residual)" in labels
    assert "left (Residual)" in labels and "right (Residual)" in labels
    assert "residual_2.dense_1" not in drawn.node_titles()
    assert len(svg(render_layers(stacked, expand=True)).nodes) == 1 + 3 * 2 + 2 + 2


def test_depth_collapses_deeper_blocks_into_one_node(nested):
    full = svg(render_layers(nested))
    assert {"stage (Stage)", "unit (Unit)"} <= set(full.cluster_texts())
    one = svg(render_layers(nested, depth=1))
    assert "stage (Stage)" in one.cluster_texts()
    assert "unit (Unit)" not in one.cluster_texts()
    assert "stage.unit" in one.node_titles()
    assert "2 layers inside" in one.texts and "72 params" in one.texts
    zero = svg(render_layers(nested, depth=0))
    assert zero.clusters == []
    assert sorted(zero.node_titles()) == ["stage", "x", "y"]
    assert "144 params" in zero.texts


def test_depth_applies_to_repeated_blocks(encoder12):
    drawn = svg(render_layers(encoder12, depth=0))
    assert drawn.clusters == []
    assert "×12" in drawn.texts
    assert len(drawn.nodes) == 7


def test_rankdir(lenet):
    assert "rankdir=LR" in render_layers(lenet, rankdir="LR").source
    with pytest.raises(Error) as error:
        render_layers(lenet, rankdir="sideways")
    assert "rankdir" in str(error.value)


def test_shared_layers_are_linked():
    from netdsl.ir.architecture import Architecture, LayerRecord
    from render_helpers import B, f32
    arch = Architecture("Siamese")
    for name in ("a", "b"):
        arch.add(LayerRecord(name, "input", "input", output_types=[f32(B, 4)]))
    arch.add(LayerRecord("enc", "Dense", "layer", {"units": "8"}, ["a"], [f32(B, 8)], 40, 40))
    arch.add(LayerRecord("enc_2", "Dense", "layer", {"units": "8"}, ["b"], [f32(B, 8)],
                         shared_with="enc"))
    diagram = build_layers(arch)
    shared = [link for link in diagram.links if link.kind == "shared"]
    assert [(link.source, link.target) for link in shared] == [("enc", "enc_2")]
    assert "shares weights with enc" in svg(render_layers(arch)).texts


def test_unknown_parents_and_inputs_do_not_break_rendering():
    from netdsl.ir.architecture import Architecture, LayerRecord
    arch = Architecture("Odd")
    arch.add(LayerRecord("x", "input", "input"))
    arch.add(LayerRecord("lost.dense_1", "Dense", "layer", inputs=["x", "nowhere"],
                         parent="lost"))
    drawn = svg(render_layers(arch))
    assert sorted(drawn.node_titles()) == ["lost.dense_1", "x"]
