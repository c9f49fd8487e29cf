"""Diagrams and their formats: the neutral `Diagram` every level builds, and its emitters.

The layers, ops and kernels builders produce a `Diagram` (boxes, nested groups, links) and know
nothing about Graphviz syntax; this module turns a diagram into a `graphviz.Digraph` (which
Jupyter shows inline) and into files: dot source (always, with no Graphviz program needed),
svg/png/pdf through the `dot` program, or Mermaid flowchart text (mermaid.py).  Every file goes through
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
        name=diagram.name, graph_attr=style.graph_attrs(
            check_rankdir(diagram.rankdir), diagram.title, diagram.legend,
            tuple(link.kind for link in diagram.links)),
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


def write(digraph: graphviz.Digraph, path: str | os.PathLike, format: str | None = None,
          *, dpi: float | None = None) -> Path:
    """Write the diagram to path as svg | png | pdf (through dot), dot source, or mermaid.

    With no format, the path's suffix decides; the suffix must match the format.  dot source
    never needs Graphviz installed; for the image formats a missing `dot` program writes the
    dot source beside the path and raises netdsl.Error saying where it went and how to install
    Graphviz.  `dpi` sets a png's resolution (default PNG_DPI).
    """
    path = Path(path)
    format = output_format(path, format)
    check_output(path, "diagram")
    if format == "mermaid":
        from .mermaid import write_mermaid
        return write_mermaid(digraph, path)
    try:
        data = render_bytes(digraph, format, dpi=dpi)
    except _DotMissing:
        fallback = path.with_suffix(".dot")
        write_atomically(fallback, digraph.source, "diagram")
        raise Error(f"Graphviz's dot program is not installed, so {path} could not be drawn",
                    hint=f"the diagram's dot source was written to {fallback}; {INSTALL_HINT}, "
                         f"then run again (or `dot -T{format} {fallback} -o {path}`)") from None
    return write_atomically(path, data, "diagram")


PNG_DPI = 200           # Graphviz's own 72 makes a png too coarse to read on a modern screen


class _DotMissing(Error):
    """Graphviz's dot program is not installed (write falls back to dot source)."""

    def __init__(self, format: str):
        super().__init__(f"Graphviz's dot program is not installed, so no {format} can be drawn",
                         hint=f"{INSTALL_HINT}; dot source and Mermaid need no Graphviz")


def render_bytes(digraph: graphviz.Digraph, format: str, *, dpi: float | None = None) -> bytes:
    """The diagram in one format, as bytes (what `netdsl render -o -` prints)."""
    format = _ALIASES.get(format, format)
    if format not in FORMATS:
        raise Error(f"unknown diagram format '{format}'", hint="use one of " + ", ".join(FORMATS))
    if format == "dot":
        return digraph.source.encode()
    if format == "mermaid":
        from .mermaid import to_mermaid
        return to_mermaid(digraph).encode()
    if not dot_available():
        raise _DotMissing(format)
    try:
        return _pipe(digraph, format, dpi=(dpi or PNG_DPI) if format == "png" else dpi)
    except graphviz.ExecutableNotFound:
        raise _DotMissing(format) from None


def _pipe(digraph: graphviz.Digraph, format: str, dpi: float | None = None) -> bytes:
    """Run dot; if it fails on labelled edges, lay out again with labels placed afterwards."""
    def pipe(graph: graphviz.Digraph) -> bytes:
        if dpi is not None:
            graph = graph.copy()
            graph.graph_attr["dpi"] = f"{dpi:g}"
        return graph.pipe(format=format, quiet=True)

    try:
        return pipe(digraph)
    except graphviz.CalledProcessError as error:
        detail = (error.stderr or b"").decode("utf-8", "replace").strip()
        diagram = getattr(digraph, "netdsl_diagram", None)
        if diagram is not None and "init_rank" in detail:
            try:
                return pipe(to_digraph(diagram, xlabels=True))
            except graphviz.CalledProcessError as again:
                detail = (again.stderr or b"").decode("utf-8", "replace").strip()
        raise Error(f"Graphviz could not draw the diagram: {detail.splitlines()[0] if detail else error}",
                    hint="write --format dot and report the file as a bug") from None
