"""Fusion: partition a graph's nodes into kernel groups, each compiled as one loop nest or call.

Algorithm (one greedy pass over the nodes in topological order):

* An elementwise node joins the group of one of its producers when that group is still open and
  iterates over the same index space (the node's output shape): chains and DAGs of elementwise
  ops with broadcasting inputs become one loop nest.  Broadcast inputs are loads with a
  broadcast index, never materialised.
* A reduction with a loop rule (`OpDef.reduction`: sum, mean, max, min over axes) joins the
  open elementwise group that produced its input when that group's index space is the
  reduction's input shape: the elementwise expression is evaluated inside the reduction loop
  and never stored.  The group is then closed.
* "matmul" and "conv" ops (by trait) open an *anchored* group; elementwise consumers of the
  anchor's output shape join it as an epilogue (bias add, activation) run over the anchor's
  output buffer, in place when the raw product is not needed elsewhere.  With `tails=True`
  (the cpu target), reductions of epilogue values over the group's index space join as the
  group's `tails` (all over the same axes), accumulated in the epilogue's loop, and close the
  group: a training step's gradient norm sums each weight gradient's squares where Adam's
  epilogue computes them, and batch norm's backward sums its per-channel statistics where
  the convolution's input gradient makes the maps, instead of storing them for reduction
  kernels to read back.
* Everything else (shape ops, pooling, random, scan, ...) is a one-node group, which the target
  lowers on its own; an op with the "view" trait (reshape) is a `view` group (an alias, no
  copy).  Scalar constants ("constant" trait) are inlined into the expressions that read them;
  other constants become arguments.  broadcast_to, cast and full fuse as elementwise through
  their `fusion_kernel` rule.
* With `windows=True` (the cpu target), a node with a `window` rule (a slice at unit steps) opens
  an elementwise group of its output's shape that reads its input at the window's offsets (a
  shifted load in the loop nest, no copy); elementwise consumers join it as usual.  A group never
  holds both a window and the producer of the window's input: an epilogue may run in place over
  its product, and the shifted reads would see elements already overwritten.  Likewise a node
  with a `tiles` rule (concat) whose inputs all come from one open elementwise or epilogue group
  of their shape joins it: the loop nest stores each input at its offset in the output, and the
  pieces are never stored on their own (unless used elsewhere).

What fusion knows of an op comes from its rules and traits, never its name (fusion_rules.py).

A node may only join a group if no path leaves the group and comes back to the node (that would
make the group graph cyclic): every value carries the bit set of groups it depends on, and a
node is refused by group G when one of its inputs from outside G already depends on G.  Values
used outside their group (or as graph outputs, losses, state updates) are the group's outputs;
the others are never stored -- the "bytes of intermediates saved" of the report, given as a
symbolic size and evaluated per example (every symbolic dimension bound to 1, i.e. B=1) unless
`FusedGraph.report(bindings)` is given other values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..ir.graph import Graph, Node, Value
from ..ir.types import DimLike, dim_add, dim_mul, evaluate_dim
from .fusion_partition import Partition, schedule
from .fusion_rules import (anchor_kind, elementwise_template, is_fusable_reduction,
                           is_identity_window, reduction_axes, shifted_window, tile_offsets,
                           window_offsets)

@dataclass(eq=False)
class KernelGroup:
    """One kernel: kind is elementwise | reduction | matmul | conv | view | op."""

    id: int
    kind: str
    nodes: list[Node]
    shape: tuple[DimLike, ...] = ()          # index space of the loop nest (elementwise part)
    anchor: Node | None = None               # the reduction / matmul / conv node, if any
    # A matmul/conv group's reductions of its epilogue's values (over the same axes).
    tails: list[Node] = field(default_factory=list)
    inputs: list[Value] = field(default_factory=list)    # values read from outside the group
    # Ids of the inputs its nodes read for their shape only (ops' `shape_inputs`): the memory
    # planner does not keep their buffers alive for this group.
    shape_only: set[int] = field(default_factory=set)
    outputs: list[Value] = field(default_factory=list)   # values needed outside the group
    open: bool = True                        # can more elementwise nodes still join?

    @property
    def epilogue(self) -> list[Node]:
        """The elementwise nodes of the group (all of them, minus the anchor and the tails)."""
        return [n for n in self.nodes if n is not self.anchor and
                not any(n is tail for tail in self.tails)]

    def describe(self) -> str:
        ops = " ".join(n.op.name for n in self.nodes)
        return f"k{self.id} {self.kind}[{', '.join(str(d) for d in self.shape)}]: {ops}"


@dataclass
class FusionReport:
    """Primitive ops in, kernels out, and the bytes of intermediates that are never stored."""

    primitive_ops: int
    kernels: int
    by_kind: dict[str, int]
    saved_bytes: DimLike                     # symbolic (e.g. 4096*B + 16)
    saved_bytes_evaluated: int               # for `bindings`
    bindings: dict[str, int]

    def format(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.by_kind.items()))
        where = ", ".join(f"{k}={v}" for k, v in sorted(self.bindings.items())) or "static"
        return (f"fusion: {self.primitive_ops} primitive ops -> {self.kernels} kernels ({kinds}); "
                f"intermediates saved: {self.saved_bytes} bytes = {self.saved_bytes_evaluated} "
                f"bytes at {where}")


@dataclass
class FusedGraph:
    """A graph and its kernel groups in execution order (the schedule)."""

    graph: Graph
    groups: list[KernelGroup]
    constants: list[Node]                    # constant nodes (not kernels)
    group_of: dict[int, KernelGroup]         # node id -> group

    def report(self, bindings: Mapping[str, int] | None = None) -> FusionReport:
        """The fusion report; symbolic sizes evaluated with `bindings` (default: all dims 1)."""
        saved: DimLike = 0
        for group in self.groups:
            exported = {v.id for v in group.outputs}
            for node in group.nodes:
                for value in node.outputs:
                    if value.id not in exported and value is not _scratch(group):
                        saved = dim_add(saved, dim_mul(value.type.size,
                                                       value.dtype.numpy.itemsize))
        names = _symbols(saved) | {s for v in self.graph.inputs for s in _symbols_of(v)}
        binding = {name: 1 for name in names}
        binding.update(bindings or {})
        kinds: dict[str, int] = {}
        for group in self.groups:
            if group.kind != "view":
                kinds[group.kind] = kinds.get(group.kind, 0) + 1
        return FusionReport(
            primitive_ops=sum(len(g.nodes) for g in self.groups),
            kernels=sum(kinds.values()), by_kind=kinds, saved_bytes=saved,
            saved_bytes_evaluated=evaluate_dim(saved, binding), bindings=binding)

    def format(self) -> str:
        """The `--emit kernels` listing: one line per kernel, inputs and outputs by name; a
        loop's or a row region's body (a Graph attribute) listed below it, indented, as a
        target fuses it."""
        names = value_names(self.graph)
        lines = []
        for group in self.groups:
            ins = ", ".join(names.get(v.id, "?") for v in group.inputs)
            outs = ", ".join(names.get(v.id, "?") for v in group.outputs)
            lines.append(f"{group.describe()}  ({ins}) -> ({outs})")
            for node in group.nodes:
                for key, body in node.attrs.items():
                    if isinstance(body, Graph):
                        listing = fuse(body, windows=True).format().splitlines()
                        lines += [f"    {key}: {line}" for line in listing]
        lines.append(self.report().format())
        return "\n".join(lines)


def _scratch(group: KernelGroup) -> Value | None:
    """The anchor output of a matmul/conv group: stored even when not exported."""
    if group.anchor is not None and group.kind in ("matmul", "conv"):
        return group.anchor.outputs[0]
    return None


def _symbols(d: DimLike) -> set[str]:
    return d.symbols if not isinstance(d, int) else set()


def _symbols_of(value: Value) -> set[str]:
    return {s for d in value.shape for s in _symbols(d)}


def value_names(graph: Graph) -> dict[int, str]:
    """Stable printable names: graph inputs/params by name, node values as %0, %1, ..."""
    names = {v.id: v.name for v in graph.inputs}
    names.update({p.value.id: p.name for p in graph.params})
    counter = 0
    for node in graph.nodes:
        for value in node.outputs:
            names[value.id] = f"%{counter}"
            counter += 1
    return names


# ---------------------------------------------------------------------------------------------
# the pass

def fuse(graph: Graph, windows: bool = False, tails: bool | None = None) -> FusedGraph:
    """Partition `graph` into kernel groups (see the module docstring); `windows`: fuse window
    nodes as shifted loads (a target whose loop nests render them asks for it); `tails`: let
    a reduction of an epilogue join its matmul/conv group (default: as `windows`, the cpu
    target's loop nests render both)."""
    tails = windows if tails is None else tails
    part = Partition(graph)
    constants: list[Node] = []
    for node in graph.nodes:
        if node.op.has("constant"):
            constants.append(node)
            continue
        template = elementwise_template(node)
        offsets = window_offsets(node) if windows else None
        if template is not None:
            _place_elementwise(part, node, template[1])
        elif offsets is not None and is_identity_window(node, offsets):
            _place_elementwise(part, node, (0,))
        elif offsets is not None:
            part.new("elementwise", node, tuple(node.outputs[0].shape))
        elif windows and _place_tiles(part, node):
            pass
        elif is_fusable_reduction(node):
            source = node.inputs[0]
            candidate = part.group_of_value(source)
            if (candidate is not None and candidate.open and candidate.kind == "elementwise"
                    and candidate.shape == tuple(source.shape)
                    and part.acyclic([candidate], node)):
                part.add(candidate, node)
                candidate.kind, candidate.anchor, candidate.open = "reduction", node, False
            else:
                part.new("reduction", node, tuple(source.shape), node, open_=False)
        elif anchor_kind(node) is not None and len(node.outputs) == 1:
            part.new(anchor_kind(node), node, tuple(node.outputs[0].shape), node)
        elif node.op.has("view") and len(node.outputs) == 1:
            part.new("view", node, tuple(node.outputs[0].shape), open_=False)
        else:
            part.new("op", node, open_=False)
    if tails:
        _attach_tails(part)
    groups = schedule(part)
    for index, group in enumerate(groups):
        group.id = index
    group_of = {node.id: group for group in groups for node in group.nodes}
    producer_group = {v.id: group for group in groups for n in group.nodes for v in n.outputs}
    _compute_interfaces(graph, groups, producer_group)
    return FusedGraph(graph, groups, constants, group_of)


def _attach_tails(part: Partition) -> None:
    """Merge each reduction group whose reduced value an epilogue makes over the same index
    space into that matmul/conv group, as one of its tails (see the module docstring): the
    first tail sets the axes the others must reduce too, so that one loop nest holds them.

    After the greedy pass, not in it: a training step's norm reads the squared gradient before
    Adam's update of that weight is placed, and a tail joined then would close the group to
    the update."""
    for reduction in part.live_groups():
        if reduction.kind != "reduction":
            continue
        source = reduction.anchor.inputs[0]
        group = part.group_of_value(source)
        if (group is None or group.kind not in ("matmul", "conv")
                or group.shape != reduction.shape or source.producer not in group.epilogue
                or group.tails and reduction_axes(group.tails[0]) != reduction_axes(
                    reduction.anchor)
                or not part.acyclic([group, reduction], reduction.anchor)):
            continue
        kind, anchor = group.kind, group.anchor
        part.merge(group, reduction)
        group.kind, group.anchor = kind, anchor
        group.tails.append(reduction.anchor)
        group.open = False


def _place_elementwise(part: Partition, node: Node, data: tuple[int, ...]) -> None:
    """Join (and merge) the open groups over the same index space that produce the node's data
    inputs, as far as that keeps the group graph acyclic; else start a group."""
    shape = tuple(node.outputs[0].shape)
    candidates: list[KernelGroup] = []
    for index in data:
        value = node.inputs[index]
        g = part.group_of_value(value)
        if (g is not None and g.open and g.shape == shape and tuple(value.shape) == shape
                and g not in candidates):
            candidates.append(g)
    chosen: list[KernelGroup] = []
    for g in candidates:
        if g.anchor is not None and any(c.anchor is not None for c in chosen):
            continue                                   # one matmul/conv per group
        if part.acyclic(chosen + [g], node) and not _feeds_anchor(part, chosen + [g]) \
                and not _window_meets_source(chosen + [g]):
            chosen.append(g)
    if not chosen:
        part.new("elementwise", node, shape)
        return
    anchored = [g for g in chosen if g.anchor is not None]
    target = anchored[0] if anchored else chosen[0]
    for g in chosen:
        if g is not target:
            part.merge(target, g)
    part.add(target, node)


def _place_tiles(part: Partition, node: Node) -> bool:
    """Add a tiling node to the open group that makes all its inputs, if there is one."""
    if tile_offsets(node) is None:
        return False
    groups = {id(g): g for g in (part.group_of_value(v) for v in node.inputs)}
    if len(groups) != 1:
        return False
    group = next(iter(groups.values()))
    if group is None or not group.open or group.kind not in ("elementwise", "matmul", "conv") \
            or any(tuple(v.shape) != group.shape for v in node.inputs) \
            or (group.anchor is not None and group.anchor.outputs[0] in node.inputs):
        return False
    part.add(group, node)
    return True


def _feeds_anchor(part: Partition, groups: list[KernelGroup]) -> bool:
    """Would one group's nodes produce an input of another's matmul/conv anchor?  An anchored
    kernel runs its anchor first and its epilogue after, so a producer of the anchor's
    operands (`tanh(x)` in `tanh(x) @ w + tanh(x)`) must stay in a kernel of its own."""
    return any(a.anchor is not None and a.kind in ("matmul", "conv") and
               part.deps[a.id] & part.bits[b.id] for a in groups for b in groups if b is not a)


def _window_meets_source(groups: list[KernelGroup]) -> bool:
    """Would one kernel hold a window and the producer of the window's input?"""
    nodes = [n for g in groups for n in g.nodes]
    sources = {n.inputs[0].id for n in nodes if shifted_window(n)}
    return bool(sources) and any(v.id in sources for n in nodes for v in n.outputs)


_NEST_KINDS = ("elementwise", "reduction", "matmul", "conv")


def _compute_interfaces(graph: Graph, groups: list[KernelGroup],
                        producer_group: dict[int, KernelGroup]) -> None:
    """Fill each group's inputs (read from outside) and outputs (needed outside)."""
    needed_at_end = {v.id for v in graph.outputs.values()}
    needed_at_end |= {loss.value.id for loss in graph.losses}
    needed_at_end |= {v.id for v in graph.state_updates.values()}
    used_outside: set[int] = set()
    for group in groups:
        seen: set[int] = set()
        data: set[int] = set()            # inputs some node reads the values of
        for node in group.nodes:
            for position, value in enumerate(node.inputs):
                if producer_group.get(value.id) is group:
                    continue
                # A loop nest takes its extents from the group's shape, never from a value
                # read for its shape (broadcast_to's `like`): no input, nothing to store.
                # (Batch norm's squared deviations were stored for such a read alone.)
                if position in node.op.shape_inputs and group.kind in _NEST_KINDS:
                    continue
                if position not in node.op.shape_inputs:
                    data.add(value.id)
                if value.id not in seen:
                    seen.add(value.id)
                    group.inputs.append(value)
                    used_outside.add(value.id)
        group.shape_only = seen - data
    for group in groups:
        for node in group.nodes:
            for value in node.outputs:
                if value.id in used_outside or value.id in needed_at_end:
                    group.outputs.append(value)
        for node in group.nodes:          # an op group's extra outputs still need buffers
            if group.kind in ("op", "view") or any(node is tail for tail in group.tails) or \
                    node is group.anchor and group.kind == "reduction":
                for value in node.outputs:
                    if value not in group.outputs:
                        group.outputs.append(value)


__all__ = ["FusedGraph", "FusionReport", "KernelGroup", "fuse", "value_names"]
