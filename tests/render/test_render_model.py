"""render_model (what Model.render and `netdsl render` call), dot's fallbacks, and a real model."""
from __future__ import annotations

import textwrap
from types import SimpleNamespace

import graphviz
import pytest

from netdsl.errors import Error
from netdsl.render import render_model, write
from netdsl.render.output import LABELLED_EDGES_LIMIT, to_digraph
from netdsl.render.layers import build_layers
from render_helpers import needs_dot, svg


def test_render_model_levels(lenet, mlp):
    model = SimpleNamespace(architecture=lenet, graph=mlp.forward)
    assert "subgraph cluster_res1" in render_model(model).source
    assert "cluster_s_fc1" in render_model(model, level="ops", rankdir="LR").source
    with pytest.raises(Error) as raised:
        render_model(model, level="op")
    assert "unknown render level 'op'" in str(raised.value)
    assert "did you mean 'ops'?" in str(raised.value)


def test_big_diagrams_place_edge_labels_after_layout(encoder12):
    small = to_digraph(build_layers(encoder12))
    assert "label=\"f32[B, T, 128]\"" in small.source
    expanded = build_layers(encoder12, expand=True)
    assert len(list(expanded.root.walk_boxes())) < LABELLED_EDGES_LIMIT
    forced = to_digraph(expanded, xlabels=True)
    assert "xlabel=\"f32[B, T, 128]\"" in forced.source


@needs_dot
def test_dot_layout_failure_retries_with_xlabels(tmp_path, lenet, monkeypatch):
    """dot 2.4x can fail with 'trouble in init_rank' on labelled edges between clusters."""
    real_pipe = graphviz.Digraph.pipe
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append("xlabel=" in self.source)
        if len(calls) == 1:
            raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: trouble in init_rank\n")
        return real_pipe(self, *args, **kwargs)

    monkeypatch.setattr(graphviz.Digraph, "pipe", flaky)
    from netdsl.render import render_layers
    path = write(render_layers(lenet), tmp_path / "lenet.svg")
    assert calls == [False, True]
    assert path.read_bytes().startswith(b"<?xml")


def test_other_dot_failures_are_reported(tmp_path, lenet, monkeypatch):
    import netdsl.render.output as output

    def broken(self, *args, **kwargs):
        raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: syntax error in line 3\n")

    monkeypatch.setattr(output, "dot_available", lambda: True)
    monkeypatch.setattr(graphviz.Digraph, "pipe", broken)
    from netdsl.render import render_layers
    with pytest.raises(Error, match="syntax error in line 3"):
        write(render_layers(lenet), tmp_path / "lenet.svg")
    assert list(tmp_path.iterdir()) == []


SOURCE = """
block Residual(units: int) {
    in  x: f32[B, units]
    h = x |> Dense(units) |> relu |> Dense(units)
    out x + h
}

model Deep {
    in  x: f32[B, 8]
    in  y: f32[B, 2]
    features = x |> Dense(16) |> repeat(12, Residual(16)) as trunk
    pred = features |> Dense(2) as head
    out pred
    loss mse(pred, y)
}
"""


@needs_dot
def test_a_real_model_at_every_level(tmp_path, monkeypatch):
    import netdsl
    (tmp_path / "deep.net").write_text(textwrap.dedent(SOURCE))
    monkeypatch.chdir(tmp_path)
    model = netdsl.load("deep.net")
    layers = svg(model.render())
    assert "trunk ×12 (Residual)" in layers.cluster_texts()
    assert len(layers.nodes) < 20
    assert any(t and t.startswith("deep.net:") for t in layers.titles)
    ops = svg(model.render("ops", grad=True))
    assert "backward pass (gradients)" in ops.cluster_texts()
    assert "trunk ×12 (Residual)" in ops.cluster_texts()
    assert "∇ trunk ×12 (Residual)" in ops.cluster_texts()
    kernels = svg(model.render("kernels"))
    assert any("ops fused" in t for t in kernels.cluster_texts())
    assert len(kernels.nodes) < 40
