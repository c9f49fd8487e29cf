"""Every example renders at every level to SVG through the real `dot`, and the SVG holds the
names, shapes and cluster labels a reader needs."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

import netdsl
from netdsl.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.net"))
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")


def svg_text(path: Path) -> str:
    tree = ElementTree.parse(path)            # well-formed XML, or this raises
    return " ".join(t for t in tree.getroot().itertext())


@needs_dot
@pytest.mark.parametrize("example", EXAMPLES)
@pytest.mark.parametrize("level", ["layers", "ops", "kernels"])
def test_every_example_renders_at_every_level(example, level, tmp_path, capsys):
    output = tmp_path / f"{level}.svg"
    assert main(["render", str(ROOT / "examples" / example), "--level", level,
                 "-o", str(output)]) == 0
    text = svg_text(output)
    model = netdsl.load(ROOT / "examples" / example)
    if level == "layers":
        for record in model.architecture.records:
            if record.category == "layer" and record.parent is None and not record.repeat:
                assert record.short_name in text, record.name
                assert str(record.output_types[0]) in text
    else:
        for value in model.graph.inputs:
            assert value.name in text


@needs_dot
def test_twelve_fold_repeat_renders_as_one_cluster(tmp_path):
    output = tmp_path / "deep.svg"
    assert main(["render", str(ROOT / "examples/deep_residual.net"), "-o", str(output)]) == 0
    root = ElementTree.parse(output).getroot()
    namespace = {"svg": "http://www.w3.org/2000/svg"}
    nodes = root.findall(".//svg:g[@class='node']", namespace)
    clusters = root.findall(".//svg:g[@class='cluster']", namespace)
    text = svg_text(output)
    assert "×12" in text
    assert len(nodes) < 25, f"{len(nodes)} nodes: the ×12 block did not collapse"
    expanded = tmp_path / "expanded.svg"
    assert main(["render", str(ROOT / "examples/deep_residual.net"), "--expand",
                 "-o", str(expanded)]) == 0
    assert len(ElementTree.parse(expanded).getroot().findall(".//svg:g[@class='node']",
                                                            namespace)) > 5 * len(nodes) // 2
    assert clusters


@needs_dot
def test_svg_tooltips_point_at_the_source_line(tmp_path):
    output = tmp_path / "xor.svg"
    assert main(["render", str(ROOT / "examples/xor.net"), "-o", str(output)]) == 0
    text = output.read_text()
    assert "xor.net:7" in text          # the pipeline line that made hidden and output


def test_dot_source_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))          # no `dot` anywhere
    output = tmp_path / "model.dot"
    assert main(["render", str(ROOT / "examples/xor.net"), "--format", "dot",
                 "-o", str(output)]) == 0
    assert output.read_text().startswith("digraph")


def test_missing_dot_writes_source_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    output = tmp_path / "model.svg"
    assert main(["render", str(ROOT / "examples/xor.net"), "-o", str(output)]) == 1
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and "Traceback" not in err
    assert (tmp_path / "model.dot").exists() and not output.exists()


def test_mermaid_for_markdown(tmp_path):
    output = tmp_path / "model.mmd"
    assert main(["render", str(ROOT / "examples/lenet_digits.net"), "--format", "mermaid",
                 "-o", str(output)]) == 0
    text = output.read_text()
    assert text.startswith("flowchart") and "conv1" in text
