"""Diagrams and their formats: the neutral `Diagram` every level builds, and its emitters.

The layers, ops and kernels builders produce a `Diagram` (boxes, nested groups, links) and know
nothing about Graphviz syntax; this module turns a diagram into a `graphviz.Digraph` (which
Jupyter shows inline), into Mermaid flowchart text, and into files: dot source (always, with no
Graphviz program needed), or svg/png/pdf through the `dot` program.  Every file goes through
`runtime.files.write_atomically` (a complete new file renamed over the target, links and devices
refused, folders never created), so a failed render never leaves half a file behind.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import graphviz

from ..errors import Error
from ..runtime.files import check_output, write_atomically
from . import style

FORMATS = ("svg", "png", "pdf", "dot", "mermaid")
# The file endings each format is written under; the first is the usual one.
EXTENSIONS = {"svg": (".svg",), "png": (".png",), "pdf": (".pdf",), "dot": (".dot", ".gv"),
              "mermaid": (".mmd", ".md", ".mermaid")}
_ALIASES = {"gv": "dot", "mmd": "mermaid", "md": "mermaid"}
RANKDIRS = ("TB", "LR", "BT", "RL")
INSTALL_HINT = ("install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install graphviz`")


@dataclass
class Box:
    """One drawn node: a layer, a collapsed block, an op, a value."""

    id: str
    title: str                          # bold first line: the kind or op name
    category: str                       # palette entry (style.PALETTE)
    subtitle: str | None = None         # the (scoped) name
    details: list[str] = field(default_factory=list)
    shape: str | None = None            # output type(s), e.g. "f32[B, 10]"
    tooltip: str | None = None          # "file:line — kind name"
    url: str | None = None
    badge: str | None = None            # "×12" on a collapsed repeat
    emphasis: bool = False


@dataclass
class Group:
    """A cluster: a block instance, a collapsed repeat, a fused kernel, the backward pass."""

    id: str
    label: str
    kind: str = "block"                 # style.CLUSTERS key
    note: str | None = None             # a smaller second line, e.g. the parameter count
    tooltip: str | None = None
    url: str | None = None
    boxes: list[Box] = field(default_factory=list)
    groups: list["Group"] = field(default_factory=list)

    def walk_boxes(self):
        yield from self.boxes
        for group in self.groups:
            yield from group.walk_boxes()


@dataclass
class Link:
    source: str
    target: str
    label: str | None = None
    kind: str = "data"                  # style.EDGES key
    tooltip: str | None = None
    ltail: str | None = None            # cluster the edge leaves (drawn from its border)
    lhead: str | None = None            # cluster the edge enters
    clip: bool = True                   # may end at a cluster's border (clip_at_clusters)
    constraint: bool = True             # False: the edge does not pull ranks (dot's constraint)


@dataclass
class Diagram:
    name: str
    root: Group
    links: list[Link] = field(default_factory=list)
    title: str | None = None
    legend: str | None = None           # a smaller line under the title
    rankdir: str = "TB"


def check_rankdir(rankdir: str) -> str:
    if rankdir not in RANKDIRS:
        raise Error(f"unknown rankdir '{rankdir}'", hint="use TB (top to bottom) or LR (left to right)")
    return rankdir


def location(span) -> tuple[str | None, str | None]:
    """(`file:line`, a link to the line) for a span, or (None, None)."""
    if span is None:
        return None, None
    # A relative link with a GitHub-style #L anchor: it opens the file when the SVG sits next to
    # the source, and stays meaningful (and private: no absolute paths) anywhere else.
    return f"{span.file}:{span.line}", f"{span.file}#L{span.line}"


# ---------------------------------------------------------------------------------------------
# Graphviz

def _gv_id(identifier: str) -> str:
    # ':' in an edge endpoint means "port" to Graphviz; nothing we draw has ports.
    return identifier.replace(":", "_")


# Above this many boxes edge labels become `xlabel`s: dot places those after layout, which
# keeps big graphs fast (a labelled edge is an extra node per rank to dot) and sidesteps the
# "trouble in init_rank" failure dot 2.4x hits with labelled edges between many clusters.
LABELLED_EDGES_LIMIT = 150


def to_digraph(diagram: Diagram, *, xlabels: bool | None = None) -> graphviz.Digraph:
    """The diagram as a graphviz.Digraph (renders inline in Jupyter)."""
    if xlabels is None:
        xlabels = sum(1 for _ in diagram.root.walk_boxes()) > LABELLED_EDGES_LIMIT
    digraph = graphviz.Digraph(
        name=diagram.name, graph_attr=style.graph_attrs(check_rankdir(diagram.rankdir), diagram.title,
                                    diagram.legend),
        node_attr=style.NODE_DEFAULTS, edge_attr=style.EDGE_DEFAULTS)
    _emit_group(digraph, diagram.root, depth=-1)
    for link in diagram.links:
        attrs = dict(style.EDGES.get(link.kind, {}))
        if link.label:
            attrs["xlabel" if xlabels else "label"] = link.label
        if link.tooltip:
            attrs["tooltip"] = link.tooltip
        if link.ltail:
            attrs["ltail"] = _gv_id(link.ltail)
        if link.lhead:
            attrs["lhead"] = _gv_id(link.lhead)
        if not link.constraint:
            attrs["constraint"] = "false"
        digraph.edge(_gv_id(link.source), _gv_id(link.target), **attrs)
    digraph.netdsl_diagram = diagram        # lets write(..., "mermaid") reuse the same diagram
    return digraph


def _emit_group(graph: graphviz.Digraph, group: Group, depth: int) -> None:
    for box in group.boxes:
        attrs = style.node_attrs(box.category, box.emphasis)
        if box.tooltip:
            attrs["tooltip"] = box.tooltip
        if box.url:
            attrs["URL"] = box.url
        label = style.html_label(box.title, box.subtitle, box.details, box.shape, box.category,
                                 box.badge)
        graph.node(_gv_id(box.id), label=label, **attrs)
    for child in group.groups:
        with graph.subgraph(name=_gv_id(child.id)) as sub:
            attrs = style.cluster_attrs(child.kind, depth + 1)
            attrs["label"] = style.cluster_label(child.label, child.note)
            if child.tooltip:
                attrs["tooltip"] = child.tooltip
            if child.url:
                attrs["URL"] = child.url
            sub.attr(**attrs)
            _emit_group(sub, child, depth + 1)


def clip_at_clusters(diagram: Diagram, kinds: tuple[str, ...] = ("data",)) -> None:
    """End edges at the border of the outermost cluster they enter or leave.

    An edge drawn into a cluster would otherwise cross the cluster's label; clipped at the
    border it reads as "into this block".  Only edges into a cluster's entry boxes (fed from
    nothing inside it) and out of its exit boxes are clipped: an edge to a box in the middle,
    like a residual block's skip connection, stays visible all the way.
    """
    chains: dict[str, list[str]] = {}

    def walk(group: Group, chain: list[str]) -> None:
        for box in group.boxes:
            chains[box.id] = chain
        for child in group.groups:
            # A loop's body reads weights from outside: those edges go all the way to the op.
            walk(child, chain + [child.id] if child.kind != "loop" else chain)

    walk(diagram.root, [])
    clipped = [link for link in diagram.links if link.kind in kinds and link.clip]
    feeds: dict[str, list[str]] = {}
    reads: dict[str, list[str]] = {}
    for link in clipped:
        feeds.setdefault(link.target, []).append(link.source)
        reads.setdefault(link.source, []).append(link.target)
    kept, seen = [], set()
    for link in diagram.links:
        if link.kind in kinds and link.clip:
            tail, head = chains.get(link.source, []), chains.get(link.target, [])
            lhead = next((c for c in head if c not in tail), None)
            ltail = next((c for c in tail if c not in head), None)
            if link.lhead is None and lhead and not any(
                    lhead in chains.get(s, []) for s in feeds.get(link.target, [])):
                link.lhead = lhead
            if link.ltail is None and ltail and not any(
                    ltail in chains.get(t, []) for t in reads.get(link.source, [])):
                link.ltail = ltail
            # Two clipped edges between the same ends would be drawn on top of each other.
            key = (link.ltail or link.source, link.lhead or link.target)
            if key in seen:
                continue
            seen.add(key)
        kept.append(link)
    diagram.links = kept


# ---------------------------------------------------------------------------------------------
# Mermaid

_MERMAID_ARROWS = {"data": "-->", "memory": "==>", "grad": "-.->", "repeat": "-.->",
                   "fused": "-.->", "shared": "-.-"}


def _mermaid_text(text: str) -> str:
    # Mermaid reads #...; entity codes inside quoted labels; quotes and brackets must be coded.
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def diagram_to_mermaid(diagram: Diagram) -> str:
    """A Mermaid flowchart of the diagram, for Markdown documentation."""
    direction = check_rankdir(diagram.rankdir)
    ids: dict[str, str] = {}
    lines = [f"flowchart {direction}"]
    for comment in (diagram.title, diagram.legend):
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


# ---------------------------------------------------------------------------------------------
# Files

def dot_available() -> bool:
    """Whether Graphviz's `dot` program can be found on PATH."""
    return shutil.which("dot") is not None


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format a diagram is written to path in: `format`, else the path's extension.

    An unknown format, or an extension that does not match the format (`-o model.png --format
    svg`, or no extension at all), is an error: netdsl writes only what the name says.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    chosen = (format or suffix or "svg").lower()
    chosen = _ALIASES.get(chosen, chosen)
    if chosen not in FORMATS:
        raise Error(f"unknown diagram format '{chosen}'", hint="use one of " + ", ".join(FORMATS))
    extensions = EXTENSIONS[chosen]
    if path.suffix.lower() not in extensions:
        names = " or ".join(extensions)
        raise Error(f"diagram {path} must end in {names} to be written as {chosen}",
                    hint=f"write to {path.with_suffix(extensions[0]).name}, or choose the "
                         f"format its name says")
    return chosen


def output_path(path: str | os.PathLike, format: str | None = None) -> Path:
    """Check, before any drawing, that a diagram can be written to path in that format."""
    output_format(path, format)
    return check_output(path, "diagram")


def write(digraph: graphviz.Digraph, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write the diagram to path as svg | png | pdf (through dot), dot source, or mermaid.

    With no format, the path's suffix decides; the suffix must match the format.  dot source
    never needs Graphviz installed; for the image formats a missing `dot` program writes the
    dot source beside the path and raises netdsl.Error saying where it went and how to install
    Graphviz.
    """
    path = Path(path)
    format = output_format(path, format)
    check_output(path, "diagram")
    if format == "dot":
        return write_atomically(path, digraph.source, "diagram")
    if format == "mermaid":
        return write_mermaid(digraph, path)
    missing = not dot_available()
    if not missing:
        try:
            data = _pipe(digraph, format)
        except graphviz.ExecutableNotFound:
            missing = True
    if missing:
        fallback = path.with_suffix(".dot")
        write_atomically(fallback, digraph.source, "diagram")
        raise Error(f"Graphviz's dot program is not installed, so {path} could not be drawn",
                    hint=f"the diagram's dot source was written to {fallback}; {INSTALL_HINT}, "
                         f"then run again (or `dot -T{format} {fallback} -o {path}`)")
    return write_atomically(path, data, "diagram")


def _pipe(digraph: graphviz.Digraph, format: str) -> bytes:
    """Run dot; if it fails on labelled edges, lay out again with labels placed afterwards."""
    try:
        return digraph.pipe(format=format, quiet=True)
    except graphviz.CalledProcessError as error:
        detail = (error.stderr or b"").decode("utf-8", "replace").strip()
        diagram = getattr(digraph, "netdsl_diagram", None)
        if diagram is not None and "init_rank" in detail:
            try:
                return to_digraph(diagram, xlabels=True).pipe(format=format, quiet=True)
            except graphviz.CalledProcessError as again:
                detail = (again.stderr or b"").decode("utf-8", "replace").strip()
        raise Error(f"Graphviz could not draw the diagram: {detail.splitlines()[0] if detail else error}",
                    hint="write --format dot and report the file as a bug") from None
