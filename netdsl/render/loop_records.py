"""Loops at the layers level: a scan's body records, found by source span, and their edges.

The layers level knows records, not the body graph.  A body's records are found by span: the
scan's record and its node share the scan expression's span, and the body's records lie inside
it (those that make the initial values excepted).  The graph, when given, says which records read
a carried state or a step slice and which make the loop's outputs: records list only the records
that feed them, and a body input is none.  Drawing follows loops.py.
"""
from __future__ import annotations

from typing import Callable

from ..ir.architecture import LayerRecord
from ..ir.graph import Graph, Node, Value
from ..source import Span
from .loops import STEP_INDEX, LoopParts, body_nodes, is_loop, loop_links, loop_parts
from .output import Link


def _inside(inner: Span | None, outer: Span | None) -> bool:
    return inner is not None and outer is not None and inner.file == outer.file and \
        (outer.line, outer.column) <= (inner.line, inner.column) and \
        (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column)


def _scan_nodes(graph: Graph | None) -> dict[tuple, Node]:
    """(span, scope) -> scan node, through nested bodies; a block used twice has one span."""
    found: dict[tuple, Node] = {}
    nodes = list(graph.nodes) if graph is not None else []
    for node in nodes + body_nodes(nodes):
        if is_loop(node):
            found.setdefault((node.span, tuple(node.scope)), node)
    return found


class RecordLoops:
    """The scans among an Architecture's records: each one's body records and its parts."""

    def __init__(self, records: list[LayerRecord], graph: Graph | None):
        self.members: dict[str, list[LayerRecord]] = {}      # scan record -> its body records
        self.member_of: dict[str, str] = {}                  # body record -> innermost scan
        self.parts: dict[str, LoopParts] = {}
        nodes = _scan_nodes(graph)
        self.by_name = by_name = {r.name: r for r in records}
        for index, scan in enumerate(records):
            if scan.kind != "scan" or scan.span is None:
                continue
            candidates = [r for r in records[:index]
                          if r.parent == scan.parent and _inside(r.span, scan.span)]
            feeding, stack = set(), list(scan.inputs)       # the initial values' records
            while stack:
                name = stack.pop()
                if name not in feeding and name in by_name:
                    feeding.add(name)
                    stack.extend(by_name[name].inputs)
            self.members[scan.name] = [r for r in candidates if r.name not in feeding]
            scope = tuple(scan.parent.split(".")) if scan.parent else ()
            node = nodes.get((scan.span, scope))
            if node is None:
                matching = [n for (span, _), n in nodes.items() if span == scan.span]
                node = matching[0] if len(matching) == 1 else None
            if node is not None:
                parts = self.parts[scan.name] = loop_parts(node)
                # The step index random ops draw with (frontend/scan.py) is nothing the source
                # names: the layers level leaves it out.
                parts.slices = [s for s in parts.slices if s[0].name != STEP_INDEX]
        # Outer scans (more members) first, so that a nested scan's body goes to the inner one.
        for scan, members in sorted(self.members.items(), key=lambda item: -len(item[1])):
            for record in members:
                self.member_of[record.name] = scan
        for scan in self.members:
            self.members[scan] = [r for r in self.members[scan]
                                  if self.member_of[r.name] == scan]

    def in_body(self, record: LayerRecord | None, scan: str) -> bool:
        """Whether a record is in the scan's body, directly or inside a block of it."""
        while record is not None:
            if self.member_of.get(record.name) == scan:
                return True
            record = self.by_name.get(record.parent) if record.parent else None
        return False

    @staticmethod
    def box_id(scan: str) -> Callable[[Value], str]:
        return lambda body_input: f"{scan}/{body_input.name or body_input.id}"

    def record_of(self, scan: str, node: Node) -> LayerRecord | None:
        """The body record a body node belongs to.

        A node made inside a layer or block called in the body is named by its scope (its span
        is in the block's source); any other by span: the same, else the tightest around it."""
        scope = list(node.scope)
        while scope:
            record = self.by_name.get(".".join(scope))
            if record is not None and self.in_body(record, scan):
                return record
            scope.pop()
        around = [r for r in self.members[scan] if _inside(node.span, r.span)]
        exact = [r for r in around if r.span == node.span]
        if exact or around:
            return (exact or sorted(around, key=lambda r: (r.span.end_line - r.span.line,
                                                           r.span.end_column - r.span.column)))[0]
        return None

    def readers(self, scan: str, value: Value) -> list[str]:
        """The body records that read a body input, looking through ops no record made.

        A nested loop reads it through its own input boxes (its carries and slices), or, as a
        captured constant, in its body: there the search goes on."""
        body = self.parts[scan].body
        found: list[str] = []
        seen: set[int] = set()
        stack = [value]
        while stack:
            current = stack.pop()
            for node in body.nodes:
                if node.id in seen or all(v.id != current.id for v in node.inputs):
                    continue
                seen.add(node.id)
                record = self.record_of(scan, node)
                if record is not None and record.name in self.parts and is_loop(node):
                    inner = self.parts[record.name]
                    found += [name for captured, outer in inner.constants
                              if outer.id == current.id
                              for name in self.readers(record.name, captured)]
                elif record is not None:
                    found.append(record.name)
                else:
                    stack.extend(node.outputs)
        return list(dict.fromkeys(found))

    def makers(self, scan: str, value: Value) -> list[str]:
        """The body records (or input boxes) a body output comes from."""
        parts = self.parts[scan]
        inputs = {b.id for b, _ in parts.carries + parts.slices}
        found: list[str] = []
        stack, seen = [value], set()
        while stack:
            current = stack.pop()
            if current.id in seen:
                continue
            seen.add(current.id)
            if current.id in inputs:
                found.append(self.box_id(scan)(current))
            elif current.producer is not None:
                record = self.record_of(scan, current.producer)
                if record is not None:
                    found.append(record.name)
                else:
                    stack.extend(current.producer.inputs)
        return list(dict.fromkeys(found))


def layer_loop_links(layout, scan: str) -> list[Link]:
    """A drawn loop's edges: into its input boxes, from its inputs to the body, and out.

    `layout` is the layers level's layout (layers.py `_LayerLayout`): its boxes, clusters and the
    way it finds the boxes a record's values come out of and go into.

    A loop in a copy that is not drawn adds only the "next copy" edges into the first
    copy's input boxes."""
    parts, record, drawn = layout.loops.parts[scan], layout.by_name[scan], layout.canon(scan)
    if drawn not in layout.boxes:
        return []                       # inside a block drawn as one box
    box_id = layout.loops.box_id(drawn)

    # The scan's record names the records of its sequences, then of its initial values
    # (deduplicated, those without a record left out): match them in order, by type; a
    # value met again, or another output of a record met, has no name of its own.
    names, made_by, used = [n for n in record.inputs if n in layout.by_name], {}, []
    for value in [o for _, o in parts.slices] + [o for _, o in parts.carries]:
        if value.id in made_by:
            continue
        if names and value.type in layout.by_name[names[0]].output_types:
            used.append(names.pop(0))
            made_by[value.id] = used[-1:]
        else:
            made_by[value.id] = [n for n in used if value.type in
                                 layout.by_name[n].output_types[1:]][-1:]

    if drawn != scan:
        return [Link(box, box_id(body_input), kind="repeat", tooltip="next copy")
                for body_input, outer in parts.slices + parts.carries
                for name in made_by.get(outer.id, [])
                for box, _, origin in layout.sources(name, scan)
                if layout.crosses_copies(origin, scan)]

    enclosing = layout.loops.parts.get(layout.loops.member_of.get(scan, ""))
    enclosing_inputs = {b.id for b, _ in enclosing.carries + enclosing.slices} \
        if enclosing is not None else set()

    def outer_sources(value) -> list[str]:
        if value.id in enclosing_inputs:        # a nested loop starts from the outer one's h
            return [layout.loops.box_id(layout.loops.member_of[scan])(value)]
        return [box for name in made_by.get(value.id, [])
                for box, _, _ in layout.sources(name, scan)]

    def heads(name: str) -> list[str]:
        drawn = layout.canon(name)
        return layout.ends(drawn, outgoing=False) if drawn in layout.clusters else [drawn]

    def body_sources(value) -> list[str]:
        return [box for name in layout.loops.makers(scan, value)
                for box in ([name] if name.startswith(scan + "/") else layout.exits(name))]

    links = loop_links(parts, box_id, scan, outer_sources, body_sources)
    for body_input, _ in parts.carries + parts.slices:
        for reader in layout.loops.readers(scan, body_input):
            links += [Link(box_id(body_input), head, tooltip=f"{body_input.name} → {reader}")
                      for head in heads(reader)]
    return links
