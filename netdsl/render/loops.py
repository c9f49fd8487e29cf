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

This module holds what both levels share and the ops level's `OpLoops`; the layers level, which
finds a body's records by source span, is in loop_records.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..ir.graph import Graph, Node, Value
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

    def copy_links(self, node: Node, first: int, endpoint: Callable[[Value], str],
                   crosses: Callable[[Node | None, Node], bool]) -> list[Link]:
        """A loop in a copy not drawn: "next copy" edges into the first copy's input boxes."""
        if first not in self.drawn:
            return []
        mine, theirs = loop_parts(node), self.drawn[first]
        return [Link(endpoint(outer), _value_box_id(twin), kind="repeat", tooltip="next copy")
                for (_, outer), (twin, _) in zip(mine.carries + mine.slices,
                                                 theirs.carries + theirs.slices)
                if crosses(outer.producer, node)]

    def links(self, endpoint: Callable[[Value], str]) -> list[Link]:
        links = []
        for node_id, parts in self.drawn.items():
            kind = "grad" if node_id in self.grad else "data"
            for link in loop_links(parts, _value_box_id, f"op{node_id}",
                                   lambda v: [endpoint(v)], lambda v: [endpoint(v)]):
                link.kind = "loop" if link.kind == "loop" else kind
                links.append(link)
        return links
