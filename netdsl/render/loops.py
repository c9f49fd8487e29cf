"""Loops in diagrams: a `scan` drawn as a cluster "scan over axis 1 (×T)" holding its body.

A scan node (netdsl/ops/control.py) carries its body as a Graph whose inputs are the carried
states, one slice of each scanned sequence, and the captured constants (weights).  The layers and
ops levels draw it alike: one "loop" cluster; inside it a box per carried state (`h`, "carried
state") and per step slice (`x_t`, "step slice"), the body, and last the scan's own box, which
stands for its outputs (the stacked yields and the final carries), so whatever follows the loop
reads from the loop and not from an op of its body.  The sequence outside feeds the slice box,
the initial value feeds the carried-state box, and a dashed loop-back edge ("next step") runs
from what makes a carry's next value back to the carry's box; it does not constrain the layout.
Captured constants are not drawn twice: edges come straight from the weights outside.

The layers level knows its records, not the body graph: a body's records are found by source
span (the scan's record and node share the scan expression's span, and the body's records lie
inside it), and the graph, when given, says which records read a carry or a slice and which make
the loop's outputs (records list only the records that feed them, and a body input is none).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..ir.architecture import LayerRecord
from ..ir.graph import Graph, Node, Value
from ..source import Span
from .output import Box, Group, Link


STEP_INDEX = "__scan_step__"     # the body input frontend/scan.py adds for random ops


def is_loop(node: Node) -> bool:
    """Whether a node is a loop with a body graph (the `scan` op)."""
    return isinstance(node.attrs.get("body"), Graph) and "n_carry" in node.attrs


@dataclass
class LoopParts:
    """What a scan node's inputs and attributes mean, in the terms a diagram needs."""

    node: Node
    carries: list[tuple[Value, Value]]       # (body input, initial value outside)
    slices: list[tuple[Value, Value]]        # (body input, scanned sequence outside)
    constants: list[tuple[Value, Value]]     # (body input, captured value outside)
    next_carries: list[Value]                # body outputs: each carry's next value
    yields: list[Value]                      # body outputs stacked along the axis
    axis: int
    length: str
    reverse: bool

    @property
    def body(self) -> Graph:
        return self.node.attrs["body"]

    @property
    def title(self) -> str:
        return f"scan over axis {self.axis} (×{self.length})" + \
            (", in reverse" if self.reverse else "")

    @property
    def note(self) -> str:
        carried = ", ".join(b.name or f"%{b.id}" for b, _ in self.carries)
        parts = [f"carries {carried}" if carried else "no carried state",
                 f"{len(self.yields)} stacked output" + ("" if len(self.yields) == 1 else "s")]
        return " · ".join(parts)


def loop_parts(node: Node) -> LoopParts:
    attrs, body = node.attrs, node.attrs["body"]
    carry_count, sequence_count = attrs["n_carry"], attrs["n_seq"]
    pairs = list(zip(body.inputs, node.inputs))
    outputs = list(body.outputs.values())
    axis = attrs["axis"]
    if sequence_count:
        length = node.inputs[carry_count].type.shape[axis]
    else:
        length = attrs.get("length", "?")
    return LoopParts(node, pairs[:carry_count], pairs[carry_count:carry_count + sequence_count],
                     pairs[carry_count + sequence_count:], outputs[:carry_count],
                     outputs[carry_count:], axis, str(length), bool(attrs.get("reverse")))


def loop_group(group_id: str, parts: LoopParts | None, tooltip: str | None = None,
               url: str | None = None) -> Group:
    """The loop's cluster; without parts (no graph to read) it says only that it is a loop."""
    if parts is None:
        return Group(group_id, "scan (a loop over steps)", "loop", tooltip=tooltip, url=url)
    return Group(group_id, parts.title, "loop", note=parts.note, tooltip=tooltip, url=url)


def input_boxes(parts: LoopParts, box_id: Callable[[Value], str]) -> list[Box]:
    """One box per carried state and per step slice, carries first."""
    boxes = []
    for (body_input, outer), (category, role) in \
            [(pair, ("carry", "carried state")) for pair in parts.carries] + \
            [(pair, ("step", "step slice")) for pair in parts.slices]:
        name = body_input.name or f"%{body_input.id}"
        what = f"{outer.name or 'a sequence'} along axis {parts.axis}" if category == "step" \
            else "its value from the previous step (first: the initial value)"
        boxes.append(Box(box_id(body_input), "step index" if name == STEP_INDEX else name,
                         category, subtitle=role, shape=str(body_input.type),
                         tooltip=f"{role} {name}: {what}"))
    return boxes


def output_details(parts: LoopParts | None) -> list[str]:
    """The lines under the scan's own box: what its outputs are."""
    if parts is None:
        return []
    lines = [f"yields stacked along axis {parts.axis}"] if parts.yields else []
    if parts.carries:
        lines.append("final " + ", ".join(b.name or "carry" for b, _ in parts.carries))
    return lines


def loop_links(parts: LoopParts, box_id: Callable[[Value], str], scan_box: str,
               outer_sources: Callable[[Value], Iterable[str]],
               body_sources: Callable[[Value], Iterable[str]]) -> list[Link]:
    """Sequence -> slice, initial value -> carry, body outputs -> the scan's box, loop-backs.

    `outer_sources(value)`: the boxes a value outside the loop comes out of; `body_sources`:
    the boxes a body output comes out of (a body input's own box when the body passes it on).
    """
    links: list[Link] = []
    for body_input, outer in parts.slices:
        for source in outer_sources(outer):
            links.append(Link(source, box_id(body_input), label=str(outer.type), clip=False,
                              tooltip=f"{outer.name or 'sequence'} sliced along axis "
                                      f"{parts.axis}: one {body_input.type} per step"))
    for body_input, outer in parts.carries:
        for source in outer_sources(outer):
            links.append(Link(source, box_id(body_input), label=str(outer.type), clip=False,
                              tooltip=f"the initial {body_input.name}"))
    seen: set[str] = set()
    for value in parts.next_carries + parts.yields:
        for source in body_sources(value):
            if source not in seen and source != scan_box:
                seen.add(source)
                links.append(Link(source, scan_box, label=str(value.type), clip=False,
                                  tooltip="out of the loop"))
    for (body_input, _), value in zip(parts.carries, parts.next_carries):
        for source in body_sources(value):
            links.append(Link(source, box_id(body_input), kind="loop", label="next step",
                              tooltip=f"{body_input.name} for the next step"))
    return links


def body_nodes(nodes: Iterable[Node]) -> list[Node]:
    """Every node inside the loop bodies of `nodes`, nested loops included."""
    found: list[Node] = []
    for node in nodes:
        if is_loop(node):
            inner = list(node.attrs["body"].nodes)
            found += inner + body_nodes(inner)
    return found


# ---------------------------------------------------------------------------------------------
# The layers level: records found by span

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
        for scan, members in self.members.items():      # outer scans first: inner ones win
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
        """The body records that read a body input, looking through ops no record made."""
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
                if record is not None:
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


# ---------------------------------------------------------------------------------------------
# The ops level: the body graph itself

def _value_box_id(value: Value) -> str:
    return f"v{value.id}"                   # the id ops.py gives a value's box


class OpLoops:
    """The ops level's loops: clusters made while the boxes are placed, edges once all exist."""

    def __init__(self, boxes: dict[str, Box]):
        self.boxes = boxes
        self.drawn: dict[int, LoopParts] = {}       # scan node id -> its parts
        self.grad: set[int] = set()                 # the scan nodes of the backward pass
        self.aliases: dict[int, Value] = {}         # captured body input id -> value outside
        self.bodies: set[int] = set()               # the body graphs drawn (by id)

    def outside(self, value: Value) -> Value:
        """A captured body input stands for the value outside the loop it was captured from."""
        while value.id in self.aliases:
            value = self.aliases[value.id]
        return value

    def place(self, node: Node, box: Box, group: Group, make_box: Callable[[Node], Box],
              skip: dict[int, str], grad: bool = False) -> None:
        """Put a node's box into `group`; a loop's box goes into a loop cluster with its body.

        `skip`: the values not drawn as boxes (inlined constants)."""
        self.boxes[box.id] = box
        body = node.attrs.get("body")
        if is_loop(node) and id(body) in self.bodies:
            # The gradient's twin of a forward loop (it also stacks the carries) shares its
            # body graph: drawn once, the twin is one box.
            box.details = ["the loop's body again, keeping", "each step's carries"]
        if not is_loop(node) or id(body) in self.bodies:
            group.boxes.append(box)
            return
        self.bodies.add(id(body))
        parts = self.drawn[node.id] = loop_parts(node)
        if grad:
            self.grad.add(node.id)
        cluster = loop_group(f"cluster_loop{node.id}", parts, box.tooltip, box.url)
        group.groups.append(cluster)
        for input_box in input_boxes(parts, _value_box_id):
            self.boxes[input_box.id] = input_box
            cluster.boxes.append(input_box)
        self.aliases.update((inner.id, outer) for inner, outer in parts.constants)
        for inner in parts.body.nodes:
            if not (inner.outputs and inner.outputs[0].id in skip):
                self.place(inner, make_box(inner), cluster, make_box, skip, grad)
        box.details = output_details(parts)
        cluster.boxes.append(box)

    def body_nodes(self) -> list[Node]:
        return [n for parts in self.drawn.values() for n in parts.body.nodes]

    def backward_boxes(self) -> set[str]:
        """The boxes of the backward loops: their body ops and input boxes."""
        return {box for node_id in self.grad for box in
                [f"op{n.id}" for n in self.drawn[node_id].body.nodes] +
                [_value_box_id(b) for b, _ in self.drawn[node_id].carries +
                 self.drawn[node_id].slices]}

    def links(self, endpoint: Callable[[Value], str]) -> list[Link]:
        links = []
        for node_id, parts in self.drawn.items():
            kind = "grad" if node_id in self.grad else "data"
            for link in loop_links(parts, _value_box_id, f"op{node_id}",
                                   lambda v: [endpoint(v)], lambda v: [endpoint(v)]):
                link.kind = "loop" if link.kind == "loop" else kind
                links.append(link)
        return links
