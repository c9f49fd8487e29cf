"""The layers level's collapse rule on the ops and kernels levels: repeated copies drawn once.

`repeated_copies` (layers.py) names every copy after the first of each run; `OpCopies` maps the
ops and parameters of those copies onto the first copy's, so their edges land on drawn boxes.
"""
from __future__ import annotations

from ..ir.graph import Node

GRAD_SCOPE = "grad"        # the scope autodiff (netdsl/passes/autodiff.py) puts gradient nodes in


class OpCopies:
    """The layers level's collapse rule applied to ops: copies after the first are not drawn.

    `hidden` maps each copy's scope name to its run's first copy (repeated_copies).  The
    ops (forward and gradient apart) and parameters of a hidden copy map one to one, in order,
    onto the first copy's; a copy whose op sequence differs is drawn after all.
    """

    def __init__(self, hidden: dict[str, str], nodes: list[Node], grad_ids: set[int],
                 params: list):
        members: dict[tuple[bool, str], list[Node]] = {}
        for node in nodes:
            scope = plain_scope(node)
            for i in range(1, len(scope) + 1):
                members.setdefault((node.id in grad_ids, ".".join(scope[:i])), []).append(node)
        self.node_map: dict[int, int] = {}
        for (grad, copy), copies in members.items():
            firsts = members.get((grad, hidden.get(copy, "")), [])
            if copy in hidden and [n.op.name for n in copies] == [n.op.name for n in firsts]:
                self.node_map.update((a.id, b.id) for a, b in zip(copies, firsts))
        by_name = {p.name: p.value for p in params}
        self.param_map: dict[int, int] = {}
        for info in params:
            for copy, first in hidden.items():
                twin = by_name.get(first + info.name[len(copy):])
                if info.name.startswith(copy + ".") and twin is not None:
                    self.param_map[info.value.id] = twin.id
        self.hidden, self.firsts = hidden, set(hidden.values())

    def target(self, node_id: int) -> int:
        seen = 0
        while node_id in self.node_map and seen < 64:
            node_id, seen = self.node_map[node_id], seen + 1
        return node_id

    def redirect(self, nodes: list[Node]) -> dict[int, str]:
        """Value id -> box of its stand-in, for every value a hidden op or parameter makes."""
        out = {v.id: f"op{self.target(n.id)}" for n in nodes if n.id in self.node_map
               for v in n.outputs}
        for value_id, twin in self.param_map.items():
            while twin in self.param_map:
                twin = self.param_map[twin]
            out[value_id] = f"v{twin}"
        return out

    def crosses(self, a: Node | None, b: Node) -> bool:
        """Whether an edge runs from one copy of a run to another (drawn as a back edge)."""
        ca, cb = self.outer(a), self.outer(b)
        return bool(ca and cb) and ca != cb and self.hidden.get(ca, ca) == self.hidden.get(cb, cb)

    def outer(self, node: Node | None) -> str | None:
        """The outermost repeated copy (first or hidden) a node belongs to."""
        scope = plain_scope(node) if node is not None else ()
        for i in range(1, len(scope) + 1):
            name = ".".join(scope[:i])
            if name in self.hidden or name in self.firsts:
                return name
        return None


def plain_scope(node: Node) -> tuple[str, ...]:
    """A node's layer scope, without autodiff's leading "grad"."""
    scope = tuple(node.scope)
    return scope[1:] if scope and scope[0] == GRAD_SCOPE else scope
