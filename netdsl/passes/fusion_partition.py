"""Bookkeeping of the fusion pass's greedy partition: groups, merges, and acyclicity.

Every group gets a bit; a group's `deps` holds the bits of all groups it transitively reads
from.  A set of groups may become one (with a new node) only if no group outside the set both
depends on the set and is depended on by it -- otherwise the merged kernel would have to run
both before and after that outside group.  When a group grows or absorbs another, everything
that depends on it inherits its new dependencies, so `deps` stays transitively closed.
`schedule` then orders the final groups topologically.
"""
from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from ..ir.graph import Graph, Node, Value

if TYPE_CHECKING:
    from .fusion import KernelGroup


class Partition:
    """Groups under construction, with transitive group dependencies as bit sets.

    Merged groups keep every id they absorbed in `bits`; `deps[g]` holds the ids of all groups
    g (transitively) reads from, kept closed when a group grows (`_grew`)."""

    def __init__(self, graph: Graph):
        self.groups: list[KernelGroup] = []
        self.parent: dict[int, int] = {}
        self.bits: dict[int, int] = {}
        self.deps: dict[int, int] = {}
        self.producer: dict[int, int] = {}          # value id -> group id (raw)
        self.position = {node.id: i for i, node in enumerate(graph.nodes)}

    def find(self, gid: int) -> KernelGroup:
        while gid in self.parent:
            gid = self.parent[gid]
        return self.groups[gid]

    def group_of_value(self, value: Value) -> KernelGroup | None:
        gid = self.producer.get(value.id)
        return None if gid is None else self.find(gid)

    def input_deps(self, node: Node, inside: int) -> int:
        """Groups the node's inputs come from (with their dependencies), outside `inside`."""
        result = 0
        for value in node.inputs:
            g = self.group_of_value(value)
            if g is not None and not self.bits[g.id] & inside:
                result |= self.bits[g.id] | self.deps[g.id]
        return result

    def acyclic(self, members: list[KernelGroup], node: Node) -> bool:
        """Can `members` and `node` become one group without a path leaving and re-entering it?"""
        inside = 0
        for g in members:
            inside |= self.bits[g.id]
        outside_deps = self.input_deps(node, inside)
        for g in members:
            outside_deps |= self.deps[g.id] & ~inside
        seen: set[int] = set()
        while outside_deps:
            low = outside_deps & -outside_deps
            outside_deps ^= low
            x = self.find(low.bit_length() - 1)
            if x.id not in seen:
                seen.add(x.id)
                if self.deps[x.id] & inside:
                    return False
        return True

    def new(self, kind: str, node: Node, shape=(), anchor=None, open_=True) -> "KernelGroup":
        from .fusion import KernelGroup
        group = KernelGroup(len(self.groups), kind, [], tuple(shape), anchor, open=open_)
        self.groups.append(group)
        self.bits[group.id], self.deps[group.id] = 1 << group.id, 0
        self.add(group, node)
        return group

    def add(self, group: KernelGroup, node: Node) -> None:
        group.nodes.append(node)
        for value in node.outputs:
            self.producer[value.id] = group.id
        self._grew(group, self.input_deps(node, self.bits[group.id]))

    def merge(self, target: KernelGroup, other: KernelGroup) -> None:
        target.nodes = sorted(target.nodes + other.nodes, key=lambda n: self.position[n.id])
        self.parent[other.id] = target.id
        self.bits[target.id] |= self.bits[other.id]
        if other.anchor is not None:
            target.kind, target.anchor = other.kind, other.anchor
        mine = self.bits[target.id]
        merged = (self.deps[target.id] | self.deps.pop(other.id)) & ~mine
        self.deps[target.id] = merged
        for gid, deps in self.deps.items():        # dependents of either part: of the whole
            if deps & mine:
                self.deps[gid] |= merged

    def _grew(self, group: KernelGroup, new_deps: int) -> None:
        """`group` now also depends on `new_deps`: so does everything that depends on it."""
        new_deps &= ~self.bits[group.id]
        if not new_deps & ~self.deps[group.id]:
            return
        self.deps[group.id] |= new_deps
        mine = self.bits[group.id]
        for gid, deps in self.deps.items():
            if deps & mine:
                self.deps[gid] |= new_deps

    def live_groups(self) -> list[KernelGroup]:
        return [g for g in self.groups if g.id not in self.parent]


def schedule(part: Partition) -> list[KernelGroup]:
    """The groups in a topological order (by first node when free to choose)."""
    groups = part.live_groups()
    first = {g.id: min(part.position[n.id] for n in g.nodes) for g in groups}
    readers: dict[int, set[int]] = {g.id: set() for g in groups}
    waiting: dict[int, int] = {}
    for g in groups:
        sources = {part.find(part.producer[v.id]).id for n in g.nodes for v in n.inputs
                   if v.id in part.producer} - {g.id}
        waiting[g.id] = len(sources)
        for s in sources:
            readers[s].add(g.id)
    by_id = {g.id: g for g in groups}
    ready = [(first[g.id], g.id) for g in groups if waiting[g.id] == 0]
    heapq.heapify(ready)
    order: list[KernelGroup] = []
    while ready:
        _, gid = heapq.heappop(ready)
        order.append(by_id[gid])
        for r in readers[gid]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, (first[r], r))
    if len(order) != len(groups):
        raise AssertionError("fusion made the kernel graph cyclic")
    return order


__all__ = ["Partition", "schedule"]
