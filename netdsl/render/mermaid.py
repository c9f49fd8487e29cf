"""Mermaid flowcharts of diagrams, for Markdown documentation (`netdsl render -o model.mmd`).

Reads the same neutral `Diagram` (output.py) the Graphviz emitter reads: boxes become nodes with
their category's colours, groups become subgraphs, links become arrows by kind, and the title, the
note and the key to the arrows become `%%` comments.
"""
from __future__ import annotations

import os
from pathlib import Path

import graphviz

from ..errors import Error
from ..runtime.files import write_atomically
from . import style
from .output import Diagram, Group, check_rankdir, output_path

_MERMAID_ARROWS = {"data": "-->", "memory": "==>", "grad": "-.->", "repeat": "-.->",
                   "fused": "-.->", "shared": "-.-", "loop": "-.->"}


def _mermaid_text(text: str) -> str:
    # Mermaid reads #...; entity codes inside quoted labels; quotes and brackets must be coded.
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def diagram_to_mermaid(diagram: Diagram) -> str:
    """A Mermaid flowchart of the diagram, for Markdown documentation."""
    direction = check_rankdir(diagram.rankdir)
    ids: dict[str, str] = {}
    lines = [f"flowchart {direction}"]
    kinds = dict.fromkeys(link.kind for link in diagram.links if link.kind in style.EDGE_LEGEND)
    edges = ", ".join(f"{_MERMAID_ARROWS.get(kind, '-->')} {style.EDGE_LEGEND[kind][2]}"
                      for kind in kinds)
    for comment in (diagram.title, diagram.legend, edges and f"edges: {edges}"):
        if comment:
            lines.append(f"    %% {comment}")
    classes: dict[str, list[str]] = {}
    clicks: list[str] = []

    def emit(group: Group, indent: str) -> None:
        for box in group.boxes:
            ids[box.id] = mid = f"n{len(ids) + 1}"
            parts = [f"<b>{_mermaid_text(box.title)}</b>" +
                     (f" {_mermaid_text(box.badge)}" if box.badge else "")]
            parts += [_mermaid_text(p) for p in [box.subtitle, *box.details, box.shape] if p]
            lines.append(f'{indent}{mid}["{"<br/>".join(parts)}"]')
            classes.setdefault(box.category, []).append(mid)
            if box.url:
                clicks.append(f'    click {mid} href "{box.url.replace(chr(34), "%22")}" '
                              f'"{_mermaid_text(box.tooltip or box.url)}"')
        for child in group.groups:
            label = _mermaid_text(child.label) + (f"<br/>{_mermaid_text(child.note)}" if child.note else "")
            lines.append(f'{indent}subgraph c{len(lines)} ["{label}"]')
            lines.append(f"{indent}    direction {direction}")
            emit(child, indent + "    ")
            lines.append(f"{indent}end")

    emit(diagram.root, "    ")
    for link in diagram.links:
        if link.source not in ids or link.target not in ids:
            continue
        arrow = _MERMAID_ARROWS.get(link.kind, "-->")
        label = f'|"{_mermaid_text(link.label)}"|' if link.label else ""
        lines.append(f"    {ids[link.source]} {arrow}{label} {ids[link.target]}")
    for category, members in classes.items():
        fill, border, ink = style.PALETTE.get(category, style.PALETTE["layer"])
        lines.append(f"    classDef {category} fill:{fill},stroke:{border},color:{ink}")
        lines.append(f"    class {','.join(members)} {category}")
    return "\n".join(lines + clicks) + "\n"


def to_mermaid(target, **options) -> str:
    """Mermaid flowchart text for an Architecture (layers level), a Diagram, or a rendered Digraph."""
    return diagram_to_mermaid(_as_diagram(target, **options))


def write_mermaid(target, path: str | os.PathLike, **options) -> Path:
    """Write `to_mermaid(target)` to path (a .mmd file, or embed it in Markdown)."""
    path = output_path(path, "mermaid")
    return write_atomically(path, to_mermaid(target, **options), "diagram")


def _as_diagram(target, **options) -> Diagram:
    if isinstance(target, Diagram):
        return target
    if isinstance(target, graphviz.Digraph):
        diagram = getattr(target, "netdsl_diagram", None)
        if diagram is None:
            raise Error("this graph was not made by netdsl.render, so it has no Mermaid form")
        return diagram
    from .layers import build_layers
    return build_layers(target, **options)
