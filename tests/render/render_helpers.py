"""Helpers for the render tests: tensor types, spans, and an SVG parsed with xml.etree."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from netdsl.ir.types import DType, Sym, TensorType
from netdsl.source import Span

B, T = Sym.named("B"), Sym.named("T")
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


class Svg:
    """A rendered SVG parsed with xml.etree: its texts, nodes, clusters and link titles."""

    def __init__(self, data: bytes):
        self.root = ET.fromstring(data)
        self.texts = [t.text.strip() for t in self.root.iter(f"{SVG}text") if t.text]
        self.nodes = [g for g in self.root.iter(f"{SVG}g") if g.get("class") == "node"]
        self.clusters = [g for g in self.root.iter(f"{SVG}g") if g.get("class") == "cluster"]
        self.edges = [g for g in self.root.iter(f"{SVG}g") if g.get("class") == "edge"]
        self.titles = [a.get(f"{XLINK}title") for a in self.root.iter(f"{SVG}a")]
        self.hrefs = [a.get(f"{XLINK}href") for a in self.root.iter(f"{SVG}a")]

    def node_titles(self) -> list[str]:
        return [g.find(f"{SVG}title").text for g in self.nodes]

    def cluster_texts(self) -> list[str]:
        return [t.text.strip() for g in self.clusters for t in g.iter(f"{SVG}text") if t.text]

    def tooltip_of(self, node_name: str) -> str | None:
        for g in self.nodes:
            if g.find(f"{SVG}title").text == node_name:
                link = g.find(f".//{SVG}a")
                return None if link is None else link.get(f"{XLINK}title")
        return None


def svg(digraph) -> Svg:
    """Render through the real dot program and parse."""
    return Svg(digraph.pipe(format="svg"))


def f32(*shape) -> TensorType:
    return TensorType(DType.f32, tuple(shape))


def at(line: int, file: str = "lenet.net") -> Span:
    return Span(file, line, 5, line, 30)


