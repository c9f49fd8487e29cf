"""Memory planning: where every value of a fused graph lives during one step.

Algorithm:

1. Liveness over the kernel schedule.  Group t defines its output values at time t; a value is
   live until the last group that reads it (graph outputs, losses and state updates that are not
   done in place are read by the pseudo-step G at the end).  Reshape views alias their source,
   which then lives as long as its longest-lived view.  A group that reads a value for its shape
   only (ops' `shape_inputs`: a mean's gradient broadcasts to the shape of the mean's input)
   does not keep it alive: it reads the shape off the value's view, never its buffer.
2. In-place updates.  A state update `p <- v` writes v straight into p's array when v is made
   by an elementwise loop (or an epilogue) over exactly p's shape and dtype, and no group after
   v's reads p's old value (directly or through a view), and v's own group reads p only in its
   elementwise part: element i of p is then read before it is overwritten, in the same
   iteration.  Adam's m, v and the parameter itself all update in place this way.  The other
   updates keep v in a buffer until the end of the step and are copied then.
3. Buffer reuse.  A linear scan over the schedule assigns each buffered value a *slot*: a free
   slot of the same dtype (its last value dead before the value is defined) of exactly its
   size if there is one, else the smallest free one up to twice its size, else a larger free one
   that no value it would suit begins to need while the value lives, else the largest free one
   below its size (grown), else a new slot (`_assign_slot`).  A
   slot's size is the largest of its values, evaluated at run time once the symbolic dims are
   bound; slots of one dtype are laid out in one flat arena (offsets rounded to 64 bytes), so
   the short last batch of an epoch fits in the arena of the full batch.  Values a group reads
   are live through that group, so a kernel never writes a buffer it is still reading, except
   the in-place updates of step 2 and the epilogue that runs in place over its matmul's output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..ir.graph import Value
from ..ir.types import DType, evaluate_dim
from .fusion import FusedGraph, KernelGroup
from .fusion_rules import window_offsets

ALIGN = 16            # elements; 64 bytes for f32
SIZE_HINT = 64        # a symbolic dim's assumed value when choosing between slots of other sizes


@dataclass
class Location:
    """kind: slot (arena slot `slot`), user (input/param/state array `name`), const (constant
    node index `slot`), alias (reshape of value `alias`)."""

    kind: str
    slot: int = -1
    name: str = ""
    alias: int = -1


@dataclass
class Slot:
    index: int
    dtype: DType
    values: list[Value] = field(default_factory=list)
    free_after: int = -1

    def elements(self, bindings: Mapping[str, int]) -> int:
        size = max(evaluate_dim(v.type.size, bindings) for v in self.values)
        return -(-max(size, 1) // ALIGN) * ALIGN


@dataclass
class MemoryPlan:
    """Locations of every value, arena slots, liveness, in-place and end-of-step updates."""

    location: dict[int, Location]
    slots: list[Slot]
    live: dict[int, tuple[int, int]]              # value id -> (defined at, last read at)
    in_place: dict[str, Value]                    # state name -> value written into it
    copies: list[tuple[str, Value]]               # end-of-step copies state <- value
    snapshots: list[tuple[Value, Value]]          # (user value, slot copy) taken before copies
    end: int                                      # the pseudo-step G
    # Outputs and losses that read a state array the step updates (a parameter returned as
    # is, or a reshape of it): value id -> the snapshot the step returns instead.
    returned: dict[int, Value] = field(default_factory=dict)
    # layout() by binding: every fit binds its step anew, and a layout walks every slot's
    # symbolic size (0.5 ms of the MLP's 3 ms fit setup).  The offsets are read, never written.
    _layouts: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def dtypes(self) -> list[DType]:
        return sorted({s.dtype for s in self.slots}, key=lambda d: d.value)

    def layout(self, bindings: Mapping[str, int]) -> tuple[np.ndarray, dict[DType, int]]:
        """Offsets of every slot within its dtype's arena, and each arena's element count."""
        key = tuple(sorted(bindings.items()))
        known = self._layouts.get(key)
        if known is not None:
            return known[0], dict(known[1])
        offsets = np.zeros(max(len(self.slots), 1), dtype=np.int64)
        totals: dict[DType, int] = {d: 0 for d in self.dtypes}
        for slot in self.slots:
            offsets[slot.index] = totals[slot.dtype]
            totals[slot.dtype] += slot.elements(bindings)
        if len(self._layouts) < 64:         # a bounded cache: bindings vary with batch sizes
            self._layouts[key] = (offsets, dict(totals))
        return offsets, totals

    def report(self, bindings: Mapping[str, int]) -> str:
        """Arena bytes with reuse against one buffer per value, for a binding."""
        _, totals = self.layout(bindings)
        used = sum(n * d.numpy.itemsize for d, n in totals.items())
        naive = sum(-(-max(evaluate_dim(v.type.size, bindings), 1) // ALIGN) * ALIGN *
                    v.dtype.numpy.itemsize for s in self.slots for v in s.values)
        where = ", ".join(f"{k}={v}" for k, v in sorted(bindings.items())) or "static"
        return (f"memory: {sum(len(s.values) for s in self.slots)} buffers in "
                f"{len(self.slots)} slots, {used} bytes (without reuse {naive}) at {where}; "
                f"{len(self.in_place)} updates in place, {len(self.copies)} copied")


def plan_memory(fused: FusedGraph) -> MemoryPlan:
    """Liveness, in-place updates and slot assignment for a fused graph (module docstring)."""
    graph, groups = fused.graph, fused.groups
    end = len(groups)
    location: dict[int, Location] = {}
    for value in graph.inputs:
        location[value.id] = Location("user", name=value.name)
    for info in graph.params:
        location[info.value.id] = Location("user", name=info.name)
    for index, node in enumerate(fused.constants):
        location[node.outputs[0].id] = Location("const", slot=index)

    defined: dict[int, int] = {}
    last: dict[int, int] = {}
    reads: dict[int, list[tuple[int, bool]]] = {}     # root id -> (group, elementwise-only read)
    root: dict[int, int] = {}

    def root_of(value_id: int) -> int:
        while value_id in root:
            value_id = root[value_id]
        return value_id

    windowed = {n.inputs[0].id for g in groups if g.kind != "op" for n in g.nodes
                if window_offsets(n) is not None}
    for t, group in enumerate(groups):
        if group.kind == "view":
            source, out = group.nodes[0].inputs[0], group.nodes[0].outputs[0]
            root[out.id] = source.id
            location[out.id] = Location("alias", alias=source.id)
        for value in group.nodes[0].outputs if group.kind == "view" else ():
            defined[value.id] = t
        for value in group.inputs:
            if value.id in group.shape_only:      # its shape only: no read of its buffer
                continue
            r = root_of(value.id)
            last[r] = max(last.get(r, -1), t)
            anchor_reads = group.anchor is not None and group.kind != "reduction" and \
                value in group.anchor.inputs
            # A window reads other elements than the one written in the same iteration.
            shifted = value.id in windowed
            reads.setdefault(r, []).append((t, not anchor_reads and not shifted and
                                            r == value.id))
        for value in _buffered(group):
            defined.setdefault(value.id, t)
            last.setdefault(value.id, t)
    for value in (*graph.outputs.values(), *(l.value for l in graph.losses)):
        r = root_of(value.id)
        last[r] = end
        reads.setdefault(r, []).append((end, False))

    in_place, copies = _choose_in_place(fused, defined, reads, root_of)
    for name, value in in_place.items():
        location[value.id] = Location("user", name=name)
    for name, value in copies:
        r = root_of(value.id)
        last[r] = end
    snapshots: list[tuple[Value, Value]] = []
    updated = {name for name, _ in copies} | set(in_place)
    for position, (name, value) in enumerate(copies):
        if value.kind != "node" and location[root_of(value.id)].name in updated:
            copy = Value(value.type, kind="node", name=f"snapshot of {value.name}")
            snapshots.append((value, copy))
            copies[position] = (name, copy)
            defined[copy.id] = last[copy.id] = end

    returned: dict[int, Value] = {}
    for value in (*graph.outputs.values(), *(l.value for l in graph.losses)):
        where = location.get(root_of(value.id))
        if where is not None and where.kind == "user" and where.name in updated and \
                value.id not in returned and value.id not in {v.id for v in in_place.values()}:
            copy = Value(value.type, kind="node", name=f"snapshot of output {value.name}")
            snapshots.append((value, copy))
            returned[value.id] = copy
            defined[copy.id] = last[copy.id] = end

    slots: list[Slot] = []
    products = _epilogue_products(groups, location)
    buffered = [v for g in groups for v in _buffered(g)
                if v.id not in location and v.id not in products]
    buffered += [copy for _, copy in snapshots]
    held: dict[int, tuple[list, int]] = {}      # slot index -> (its values' sizes, largest hint)
    largest_from = _LargestFrom(end + 1, [(defined[v.id], v.dtype, _hint(v.type.size))
                                          for v in buffered])
    for value in sorted(buffered, key=lambda v: defined[v.id]):
        _assign_slot(value, defined[value.id], last.get(value.id, defined[value.id]), slots,
                     location, held, largest_from)
    for product_id, value in products.items():
        location[product_id] = location[value.id]
    live = {vid: (defined[vid], last.get(vid, defined[vid])) for vid in defined}
    return MemoryPlan(location, slots, live, in_place, copies, snapshots, end, returned)


def _buffered(group: KernelGroup) -> list[Value]:
    """Values of a group that need memory: its outputs, and a matmul/conv anchor's result."""
    if group.kind == "view":
        return []
    values = list(group.outputs)
    if group.anchor is not None and group.kind in ("matmul", "conv"):
        if group.anchor.outputs[0] not in values:
            values.insert(0, group.anchor.outputs[0])
    return [v for v in values if v.producer is not None and v.producer in group.nodes]


def _choose_in_place(fused: FusedGraph, defined, reads, root_of):
    """Split the state updates into in-place writes and end-of-step copies."""
    graph = fused.graph
    user = {info.name: info.value for info in graph.params}
    user.update({v.name: v for v in graph.inputs})
    in_place: dict[str, Value] = {}
    copies: list[tuple[str, Value]] = []
    taken: set[int] = set()
    for name, value in graph.state_updates.items():
        target = user[name]
        if value is target:
            continue                                       # p <- p: nothing to do
        group = fused.group_of.get(value.producer.id) if value.producer is not None else None
        ok = (group is not None and value.id not in taken and value.id in defined
              and group.kind in ("elementwise", "matmul", "conv")
              and value.producer is not group.anchor
              and tuple(value.shape) == tuple(target.shape) and value.dtype == target.dtype
              and tuple(group.shape) == tuple(target.shape))
        if ok:
            t = defined[value.id]
            for when, elementwise in reads.get(root_of(target.id), []):
                if when > t or (when == t and not elementwise):
                    ok = False
        if ok:
            in_place[name] = value
            taken.add(value.id)
        else:
            copies.append((name, value))
    return in_place, copies


def _assign_slot(value: Value, start: int, stop: int, slots: list[Slot], location,
                 held: dict[int, tuple[list, int]], largest_from: _LargestFrom) -> None:
    """Put `value` (live from group `start` to `stop`) in a free slot of its dtype: one whose
    largest value is its size (one of its size first), else the smallest one up to twice its
    size, else the smallest larger one that no value it would suit (half its size or more)
    needs meanwhile (none begins while `value` lives), else the largest one below its size
    (grown to it: less than a new slot), else a new slot.

    A small value parked in a large slot for long (a layer's statistics, kept for the backward
    pass) kept the slot from the large values meanwhile, and the arena grew by new large
    slots: a ResNet's training arena at batch 64 was 95 MiB for 67 MiB live at its peak.
    `held` keeps each slot's sizes and largest size at the size hint: a size is a symbolic
    product, and recomputing them for every candidate slot was a tenth of a second of a
    transformer's warm compile."""
    size = value.type.size
    want = _hint(size)
    free = [s for s in slots if s.dtype == value.dtype and s.free_after < start]
    fitting = [s for s in free if want <= held[s.index][1] <= 2 * want]
    exact = [s for s in fitting if held[s.index][1] == want and size in held[s.index][0]]
    if exact:
        chosen = exact[0]
    elif fitting:
        chosen = min(fitting, key=lambda s: held[s.index][1])
    else:
        larger = [s for s in free if held[s.index][1] > 2 * want]
        if larger:          # those that no value they would suit needs while `value` lives
            needed = 2 * largest_from(start + 1, stop + 1, value.dtype)
            larger = [s for s in larger if needed < held[s.index][1]]
        smaller = [s for s in free if held[s.index][1] < want]
        if larger:
            chosen = min(larger, key=lambda s: held[s.index][1])
        elif smaller:
            chosen = max(smaller, key=lambda s: held[s.index][1])
        else:
            chosen = Slot(len(slots), value.dtype)
            slots.append(chosen)
            held[chosen.index] = ([], want)
    chosen.values.append(value)
    chosen.free_after = stop
    sizes, largest = held[chosen.index]
    sizes.append(size)
    held[chosen.index] = (sizes, max(largest, want))
    location[value.id] = Location("slot", slot=chosen.index)


class _LargestFrom:
    """`(start, stop, dtype)` -> the largest size (at the hint) of the values of `dtype`
    defined at groups start .. stop - 1: a sparse table of maxima per dtype, O(1) a query."""

    def __init__(self, times: int, values: list[tuple[int, DType, int]]):
        self.tables: dict[DType, list[list[int]]] = {}
        for when, dtype, hint in values:
            table = self.tables.setdefault(dtype, [[0] * times])
            table[0][when] = max(table[0][when], hint)
        for table in self.tables.values():
            width = 1
            while 2 * width <= times:
                row = table[-1]
                table.append([max(row[i], row[i + width]) for i in range(times - 2 * width + 1)])
                width *= 2

    def __call__(self, start: int, stop: int, dtype: DType) -> int:
        table = self.tables.get(dtype)
        if table is None or start >= stop:
            return 0
        level = (stop - start).bit_length() - 1
        return max(table[level][start], table[level][stop - (1 << level)])


def _hint(size) -> int:
    names = size.symbols if not isinstance(size, int) else set()
    return evaluate_dim(size, {n: SIZE_HINT for n in names})


def _epilogue_products(groups, location) -> dict[int, Value]:
    """An epilogue runs in place over its matmul's result when that result is not exported:
    the product is written straight into the first epilogue output's buffer."""
    products: dict[int, Value] = {}
    for group in groups:
        if group.kind not in ("matmul", "conv") or group.anchor.outputs[0] in group.outputs:
            continue
        product = group.anchor.outputs[0]
        for value in group.outputs:
            if (value.dtype == product.dtype and tuple(value.shape) == tuple(product.shape)
                    and value.id not in location):
                products[product.id] = value
                break
    return products


def check_plan(fused: FusedGraph, plan: MemoryPlan) -> list[str]:
    """Violations of the plan's invariant: two values live at once in one slot."""
    problems = []
    scratch_of = {g.anchor.outputs[0].id: g for g in fused.groups
                  if g.anchor is not None and g.kind in ("matmul", "conv")}
    occupants: dict[int, list[int]] = {}
    for vid, where in plan.location.items():
        if where.kind == "slot" and vid in plan.live:
            occupants.setdefault(where.slot, []).append(vid)
    for slot, ids in occupants.items():
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                (sa, ea), (sb, eb) = plan.live[a], plan.live[b]
                same_group_epilogue = (a in scratch_of or b in scratch_of) and sa == sb
                if sa <= eb and sb <= ea and not same_group_epilogue:
                    problems.append(f"slot {slot}: values {a} [{sa}, {ea}] and {b} "
                                    f"[{sb}, {eb}] are live at the same time")
    return problems


__all__ = ["Location", "MemoryPlan", "Slot", "check_plan", "plan_memory"]
