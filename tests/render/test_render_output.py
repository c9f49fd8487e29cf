"""Formats: svg/png/pdf through dot, dot source without Graphviz, Mermaid, atomic writes."""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

import graphviz
import pytest

from netdsl.errors import Error
from netdsl.render import (INSTALL_HINT, build_layers, render_layers, render_ops, to_mermaid,
                           write, write_mermaid)
from render_helpers import needs_dot


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"),
                                        ("pdf", b"%PDF")])
def test_image_formats_go_through_dot(tmp_path, lenet, fmt, magic):
    path = write(render_layers(lenet), tmp_path / f"lenet.{fmt}", fmt)
    assert path.read_bytes().startswith(magic)
    assert os.listdir(tmp_path) == [f"lenet.{fmt}"]        # no temporary file left behind


@needs_dot
def test_format_comes_from_the_suffix(tmp_path, lenet):
    path = write(render_layers(lenet), tmp_path / "model.svg")
    ET.fromstring(path.read_bytes())


def test_dot_source_needs_no_graphviz(tmp_path, lenet, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))     # no `dot` anywhere
    path = write(render_layers(lenet), tmp_path / "lenet.dot", "dot")
    text = path.read_text()
    assert text.startswith("digraph LeNet5 {")
    assert "subgraph cluster_res1" in text and 'tooltip="lenet.net:9 — Dense fc1"' in text
    graphviz.Source(text)                                    # parses as dot source


def test_missing_dot_writes_source_and_says_how_to_install(tmp_path, lenet, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "out" / "lenet.svg"
    target.parent.mkdir()                                    # netdsl never creates folders
    with pytest.raises(Error) as raised:
        write(render_layers(lenet), target, "svg")
    message = str(raised.value)
    assert "Graphviz's dot program is not installed" in message
    for installer in ("apt-get install graphviz", "brew install graphviz",
                      "conda install graphviz"):
        assert installer in message
    assert not target.exists()
    fallback = target.with_suffix(".dot")
    assert fallback.read_text().startswith("digraph LeNet5")
    assert str(fallback) in message
    assert "apt-get install graphviz" in INSTALL_HINT


def test_missing_dot_seen_only_by_graphviz_is_handled_too(tmp_path, lenet, monkeypatch):
    """`which` finds a dot, but running it fails as if absent (graphviz.ExecutableNotFound)."""
    import netdsl.render.output as output

    def absent(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(output, "dot_available", lambda: True)
    monkeypatch.setattr(graphviz.Digraph, "pipe", absent)
    with pytest.raises(Error, match="not installed"):
        write(render_layers(lenet), tmp_path / "lenet.png")
    assert (tmp_path / "lenet.dot").exists()


def test_unknown_format_is_an_error(tmp_path, lenet):
    with pytest.raises(Error) as raised:
        write(render_layers(lenet), tmp_path / "lenet.jpg")
    assert "unknown diagram format 'jpg'" in str(raised.value)
    assert "svg" in raised.value.diagnostics[0].hint
    assert os.listdir(tmp_path) == []


def test_mermaid_flowchart_structure(lenet):
    text = to_mermaid(lenet)
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    nodes = [line for line in lines if re.match(r"\s+n\d+\[\"", line)]
    assert len(nodes) == len([r for r in lenet.records if r.category != "block"])
    assert any("<b>Conv2D</b><br/>conv1" in line and "f32[B, 6, 28, 28]" in line for line in nodes)
    assert lines.count("    end") == 1
    assert any(line.strip().startswith("subgraph") and "res1 (Residual)" in line for line in lines)
    assert "%% edges: --> data (its type on the edge)" in lines[2]     # the key to the arrows
    edges = [line for line in lines if "-->" in line and not line.strip().startswith("%%")]
    assert len(edges) == 13
    assert any('-->|"i64[B]"|' in line for line in edges)
    assert any(line.strip().startswith("classDef conv fill:") for line in lines)
    assert 'click n3 href "lenet.net#L5" "lenet.net:5 — Conv2D conv1"' in text
    # every node id used by an edge is declared
    declared = {re.match(r"\s+(n\d+)\[", line).group(1) for line in nodes}
    used = {name for line in edges for name in re.findall(r"\bn\d+\b", line)}
    assert used <= declared


def test_mermaid_of_a_collapsed_repeat(encoder12, tmp_path):
    path = write_mermaid(encoder12, tmp_path / "enc.mmd", rankdir="LR")
    text = path.read_text()
    assert text.startswith("flowchart LR")
    assert "encoder ×12 (TransformerEncoderLayer)" in text
    assert "-.->" in text                                   # the copy-to-copy back edge
    assert text.count('["<b>') == 11


def test_mermaid_escapes_quotes_and_brackets():
    from netdsl.ir.architecture import Architecture, LayerRecord
    arch = Architecture("Quoted")
    arch.add(LayerRecord("x", "input", "input"))
    arch.add(LayerRecord("say", "Say", "layer", {"text": '"<hi>"'}, ["x"]))
    text = to_mermaid(arch)
    assert "#quot;#lt;hi#gt;#quot;" in text and '"<hi>"' not in text


def test_write_mermaid_from_a_rendered_digraph(tmp_path, lenet, mlp):
    assert write(render_layers(lenet), tmp_path / "a.mmd").read_text() == to_mermaid(lenet)
    assert write(render_ops(mlp.forward), tmp_path / "b.md", "mermaid").read_text() \
        .startswith("flowchart")
    with pytest.raises(Error, match="not made by netdsl.render"):
        to_mermaid(graphviz.Digraph())


def test_digraph_shows_inline_in_jupyter(lenet):
    digraph = render_layers(lenet)
    assert hasattr(digraph, "_repr_mimebundle_")
    assert build_layers(lenet).title == "LeNet5 · 196k parameters"
