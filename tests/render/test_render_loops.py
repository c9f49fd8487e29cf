"""Loops (`scan`) drawn as loop clusters at the layers and ops levels, --grad's layout, and the
command's --dpi, -o - and --grad --level layers; all on the real examples."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import netdsl
from netdsl.cli import main
from netdsl.passes.training import loss_and_grad_graph
from netdsl.render import build_layers, build_ops, render_layers, to_digraph
from render_helpers import SVG, needs_dot, svg

ROOT = Path(__file__).resolve().parents[2]
RNN = ROOT / "examples" / "rnn_sequence.net"


@pytest.fixture(scope="module")
def rnn():
    return netdsl.load(RNN)


def boxes_of(group) -> dict[str, object]:
    return {box.id: box for box in group.walk_boxes()}


def loop_groups(group) -> list:
    found = [g for g in group.groups if g.kind == "loop"]
    return found + [inner for g in group.groups for inner in loop_groups(g)]


def edge_lines(source: str, tail: str, head: str) -> list[str]:
    return [line for line in source.splitlines()
            if re.match(rf'\s*"?{re.escape(tail)}"? -> "?{re.escape(head)}"? ', line)]


# ---------------------------------------------------------------------------------------------
# Layers level

def test_layers_level_draws_the_scan_as_a_loop(rnn):
    diagram = build_layers(rnn.architecture, graph=rnn.graph)
    (loop,) = loop_groups(diagram.root)
    assert loop.id == "cluster_loop_rnn.scan_1"
    assert loop.label == "scan over axis 1 (×T)"
    inside = boxes_of(loop)
    slice_box, carry_box = inside["rnn.scan_1/x_t"], inside["rnn.scan_1/h"]
    assert (slice_box.subtitle, slice_box.shape) == ("step slice", "f32[B, 1]")
    assert (carry_box.subtitle, carry_box.shape) == ("carried state", "f32[B, 16]")
    assert "rnn.tanh_1" in inside and "rnn.scan_1" in inside        # the body and the outputs
    assert "rnn.zeros_1" not in inside and "rnn.weight_hh" not in inside
    links = {(link.source, link.target): link for link in diagram.links}
    assert links[("x", "rnn.scan_1/x_t")].label == "f32[B, T, 1]"      # the sequence, sliced
    assert ("rnn.zeros_1", "rnn.scan_1/h") in links                      # the initial state
    assert ("rnn.scan_1/x_t", "rnn.matmul_1") in links                   # x_t @ W_ihᵀ
    assert ("rnn.scan_1/h", "rnn.matmul_2") in links                     # h @ W_hhᵀ
    assert links[("rnn.tanh_1", "rnn.scan_1/h")].kind == "loop"         # the loop-back
    assert ("rnn.tanh_1", "rnn.scan_1") in links                         # out of the loop
    into_classifier = [link.source for link in diagram.links if link.target == "classifier"]
    assert into_classifier == ["rnn.scan_1"]                   # the loop's outputs, no body op
    source = to_digraph(diagram).source
    assert 'subgraph "cluster_loop_rnn.scan_1"' in source
    assert "scan over axis 1 (×T)" in source
    (back,) = edge_lines(source, "rnn.tanh_1", "rnn.scan_1/h")
    assert "constraint=false" in back and "style=dashed" in back and 'label="next step"' in back
    (classifier,) = edge_lines(source, "rnn.scan_1", "classifier")
    assert "ltail=cluster_rnn" in classifier


def test_layers_level_without_the_graph_still_keeps_the_body_in_its_loop(rnn):
    diagram = build_layers(rnn.architecture)
    (loop,) = loop_groups(diagram.root)
    assert loop.label == "scan (a loop over steps)"
    assert {"rnn.tanh_1", "rnn.add_3", "rnn.scan_1"} <= set(boxes_of(loop))
    assert [link.source for link in diagram.links if link.target == "classifier"] == \
        ["rnn.scan_1"]


def test_two_carries_each_loop_back(tmp_path):
    model = netdsl.load(ROOT / "examples" / "lstm_sequence.net")
    diagram = build_layers(model.architecture, graph=model.graph)
    loops = loop_groups(diagram.root)
    assert [g.id for g in loops] == ["cluster_loop_lstm1.scan_1", "cluster_loop_lstm2.scan_1"]
    backs = {(link.source, link.target) for link in diagram.links if link.kind == "loop"}
    for block in ("lstm1", "lstm2"):
        assert {target for _, target in backs if target.startswith(block + ".")} == \
            {f"{block}.scan_1/h", f"{block}.scan_1/c"}
        sources = {source for source, target in backs if target.startswith(block + ".")}
        assert len(sources) == 2 and not any("/" in s for s in sources)   # body ops make them
    into_lstm2 = {link.source for link in diagram.links if link.target == "lstm2.scan_1/xw_t"}
    assert into_lstm2 == {"lstm2.add_1"}            # xw, computed before the loop


# ---------------------------------------------------------------------------------------------
# Ops level

def test_ops_level_draws_the_scan_as_a_loop(rnn):
    diagram = build_ops(rnn.graph, arch=rnn.architecture)
    (loop,) = loop_groups(diagram.root)
    scan = next(n for n in rnn.graph.nodes if n.op.name == "scan")
    body = scan.attrs["body"]
    h, x_t = body.inputs[0], body.inputs[1]
    assert loop.label == "scan over axis 1 (×T)" and loop.note == "carries h · 1 stacked output"
    assert diagram.title == "SequenceSign · 8 ops, and 8 in loop bodies"
    inside = boxes_of(loop)
    assert inside[f"v{h.id}"].subtitle == "carried state"
    assert inside[f"v{x_t.id}"].subtitle == "step slice"
    assert {f"op{n.id}" for n in body.nodes} | {f"op{scan.id}"} <= set(inside)
    tanh = next(n for n in body.nodes if n.op.name == "tanh")
    links = {(link.source, link.target): link for link in diagram.links}
    assert links[(f"op{tanh.id}", f"v{h.id}")].kind == "loop"
    weight_ih = next(p.value for p in rnn.graph.params if p.name == "rnn.weight_ih")
    transpose = next(n for n in body.nodes if n.op.name == "transpose" and
                     n.inputs[0] is body.inputs[2])
    assert (f"v{weight_ih.id}", f"op{transpose.id}") in links      # captured: from outside
    x = rnn.graph.inputs[0]
    assert (f"v{x.id}", f"v{x_t.id}") in links and (f"v{x.id}", f"op{scan.id}") not in links
    classifier_matmul = next(n for n in rnn.graph.nodes if n.scope == ("classifier",)
                             and n.op.name == "matmul")
    assert [link.source for link in diagram.links
            if link.target == f"op{classifier_matmul.id}" and link.source.startswith("op")] == \
        [f"op{scan.id}"]
    assert "constraint=false" in edge_lines(to_digraph(diagram).source, f"op{tanh.id}",
                                            f"v{h.id}")[0]


def test_grad_edges_from_the_forward_pass_do_not_constrain_the_layout(rnn):
    forward = rnn.training_forward
    diagram = build_ops(forward, grad_graph=loss_and_grad_graph(forward), arch=rnn.architecture)
    (backward,) = [g for g in diagram.root.groups if g.kind == "grad"]
    backward_ids = set(boxes_of(backward))
    forward_ids = set(boxes_of(diagram.root)) - backward_ids
    crossing = [link for link in diagram.links
                if link.source in forward_ids and link.target in backward_ids]
    inside = [link for link in diagram.links
              if link.source in backward_ids and link.target in backward_ids]
    assert crossing and all(not link.constraint for link in crossing)
    assert inside and all(link.constraint for link in inside if link.kind != "loop")
    source = to_digraph(diagram).source
    for link in crossing[:5]:
        assert all("constraint=false" in line
                   for line in edge_lines(source, link.source, link.target))
    assert len(loop_groups(backward)) == 1          # the reverse scan (BPTT) is a loop too
    assert any(g.label == "scan over axis 1 (×T), in reverse" for g in loop_groups(backward))


@needs_dot
def test_grad_keeps_the_forward_graph_upright():
    """Inputs above the loss: forward→backward edges used to pull LeNet's forward pass over."""
    model = netdsl.load(ROOT / "examples" / "lenet_digits.net")
    drawn = svg(model.render("ops", grad=True))
    y = {}
    for node in drawn.nodes:
        text = next(node.iter(f"{SVG}text"))
        y[node.find(f"{SVG}title").text] = float(text.get("y"))    # SVG y grows downwards
    image = next(v for v in model.training_forward.inputs if v.name == "image")
    assert y[f"v{image.id}"] < y["loss__loss"]


# ---------------------------------------------------------------------------------------------
# Legend, command

def test_the_legend_names_the_edge_styles_drawn(rnn):
    source = render_layers(rnn.architecture, graph=rnn.graph).source
    assert "data (its type on the edge)" in source and "to the next step of a loop" in source
    assert "gradient (backward pass)" not in source
    grad = rnn.render("ops", grad=True).source
    assert "gradient (backward pass)" in grad


def test_grad_with_the_layers_level_says_it_has_no_effect(tmp_path, capsys):
    output = tmp_path / "rnn.dot"
    assert main(["render", str(RNN), "--grad", "-o", str(output)]) == 0
    captured = capsys.readouterr()
    assert "--grad has no effect with --level layers" in captured.err
    assert "wrote" in captured.out and "cluster_loop_rnn.scan_1" in output.read_text()


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big")        # IHDR's width


@needs_dot
def test_dpi_sets_the_resolution_of_a_png(tmp_path, capsys):
    coarse, default = tmp_path / "coarse.png", tmp_path / "default.png"
    assert main(["render", str(RNN), "--dpi", "100", "-o", str(coarse)]) == 0
    assert main(["render", str(RNN), "-o", str(default)]) == 0
    assert png_width(default) == pytest.approx(2 * png_width(coarse), abs=4)   # default 200
    assert main(["render", str(RNN), "--dpi", "100", "-o", str(tmp_path / "a.svg")]) == 1
    assert "--dpi sets a png's resolution" in capsys.readouterr().err


def test_dash_writes_mermaid_to_standard_output(tmp_path):
    env = dict(os.environ, NETDSL_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "netdsl", "render", str(RNN), "-o", "-"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "flowchart TB"
    assert any(line.strip().startswith("subgraph") and "scan over axis 1 (×T)" in line
               for line in lines)
    assert "-.->" in done.stdout and "wrote" not in done.stdout
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"] or not list(tmp_path.glob("*.mmd"))


def test_a_loop_body_calling_a_block():
    """The diffusion sampler's loop calls a Denoiser block and draws noise at every step."""
    model = netdsl.load(ROOT / "examples" / "diffusion_moons.net", "Sampler")
    diagram = build_layers(model.architecture, graph=model.graph)
    (loop,) = loop_groups(diagram.root)
    assert loop.label == "scan over axis 0 (×100)"
    assert [g.id for g in loop.groups] == ["cluster_denoiser"]          # the block, in the loop
    inside = boxes_of(loop)
    assert {"scan_1/x", "scan_1/steps_t"} <= set(inside)
    assert not any("__scan_step__" in box for box in inside)      # the random ops' step index
    links = {(link.source, link.target): link.kind for link in diagram.links}
    assert links[("scan_1/x", "denoiser.input_proj")] == "data"    # found by scope, not span
    assert links[("x_T", "scan_1/x")] == "data" and links[("sub_5", "scan_1/steps_t")] == "data"
    assert [source for source, target in links if target == "scan_1/x"] == ["x_T", "add_2"]
    assert [source for source, target in links if target == "samples"] == ["scan_1"]
    ops = build_ops(model.graph, arch=model.architecture)
    (op_loop,) = loop_groups(ops.root)
    assert "step index" in {box.title for box in op_loop.boxes}    # the ops level shows it


STACKED = """
model Stacked {
    in  x: f32[B, T, 4]
    in  label: i64[B]
    h = x |> repeat(3, RNN(8)) as layers
    logits = h |> RNN(8, return_sequences=false) |> Dense(2)
    loss cross_entropy(logits, label)
}
"""


def test_loops_in_repeated_blocks_are_drawn_once(tmp_path):
    (tmp_path / "stacked.net").write_text(STACKED)
    model = netdsl.load(tmp_path / "stacked.net")
    layers = build_layers(model.architecture, graph=model.graph)
    assert len(loop_groups(layers.root)) == 2                 # the first copy and the last RNN
    repeats = [(link.source, link.target) for link in layers.links if link.kind == "repeat"]
    assert repeats == [("layers_1.scan_1", "layers_1.scan_1/x_t")]     # copy k's output, k+1's x_t
    ops = build_ops(model.graph, arch=model.architecture)
    (first, last) = loop_groups(ops.root)
    scans = [n for n in model.graph.nodes if n.op.name == "scan"]
    x_t = scans[0].attrs["body"].inputs[1]
    repeats = [(link.source, link.target) for link in ops.links if link.kind == "repeat"]
    assert repeats == [(f"op{scans[0].id}", f"v{x_t.id}")]
    into_scan_boxes = [link for link in ops.links if link.target == f"op{scans[0].id}"]
    assert all(link.source.startswith("op") for link in into_scan_boxes)    # no inputs: body


NESTED = """
model Nested {
    in  x: f32[B, T, 3]
    in  y: f32[B, 3]
    hs, h_last = scan x over 1 with h = zeros([B, 3]) {
        gs, g_last = scan x over 1 with g = h {
            g = tanh(g + x_t * h)
            yield g
        }
        h = h + g_last * x_t
        yield h
    }
    out h_last
    loss mse(h_last, y)
}
"""


def test_a_loop_inside_a_loop(tmp_path):
    (tmp_path / "nested.net").write_text(NESTED)
    model = netdsl.load(tmp_path / "nested.net")
    diagram = build_layers(model.architecture, graph=model.graph)
    (outer,) = [g for g in diagram.root.groups if g.kind == "loop"]
    (inner,) = outer.groups
    assert set(b.id for b in inner.boxes) == {"scan_1/g", "scan_1/x_t", "mul_1", "add_1",
                                              "tanh_1", "scan_1"}
    assert {"scan_2/h", "scan_2/x_t", "mul_2", "add_2", "scan_2"} == {b.id for b in outer.boxes}
    links = {(link.source, link.target): link.kind for link in diagram.links}
    assert links[("scan_2/h", "scan_1/g")] == "data"      # g starts from the outer h
    assert links[("scan_2/h", "mul_1")] == "data"         # and the inner body reads h
    assert ("scan_2/h", "scan_1") not in links
    assert links[("tanh_1", "scan_1/g")] == "loop" and links[("add_2", "scan_2/h")] == "loop"
    ops = build_ops(model.graph)
    (outer_ops,) = loop_groups(ops.root)[:1]
    assert [g.label for g in outer_ops.groups] == ["scan over axis 1 (×T)"]
