"""The registry of one compiled target's op lowerings (numba_cpu/lowerings/, numba_cuda/...).

A target's `lowerings` package makes one `LoweringRegistry` over its family modules (one per
op family, matching netdsl/ops/) and exports its `lowering` decorator and lookups.  The family
modules import the target's compiler (Numba), so they load on the first lookup, not when the
package is imported: building or checking a graph never needs them.  A lookup by OpDef loads
the module of the op's family (OpDef.family) first, and the rest only where that one does not
lower it: the CPU target's family modules lower their own families' ops only (the registry
test checks), so a graph loads the families it uses: a warm `netdsl train examples/xor.net`
imported all eleven CPU families, 74 ms, where the three it uses (linalg with batched_matmul,
and reduce) take ~45.
"""
from __future__ import annotations

import importlib
from typing import Callable

Lowering = Callable[..., list[str]]


class LoweringRegistry:
    """op name -> the function that lowers it, for one target."""

    def __init__(self, package: str, families: tuple[str, ...], target: str):
        self.package, self.families, self.target = package, families, target
        self._lowerings: dict[str, Lowering] = {}
        self._loaded: set[str] = set()         # the family modules imported

    def lowering(self, op_name: str) -> Callable[[Lowering], Lowering]:
        """Decorator: register the function as the lowering of the op called `op_name`."""

        def register(function: Lowering) -> Lowering:
            if op_name in self._lowerings:
                raise ValueError(f"op {op_name!r} has two {self.target} lowerings")
            self._lowerings[op_name] = function
            return function

        return register

    def lowering_for(self, op) -> Lowering | None:
        """The lowering of `op` (an OpDef or an op name), or None when it has none."""
        name = op if isinstance(op, str) else op.name
        family = getattr(op, "family", "")
        if family in self.families:
            self._load(family)
        if name not in self._lowerings:     # a name, or an op lowered in another family's module
            self._load_families()
        return self._lowerings.get(name)

    def lowered_ops(self) -> frozenset[str]:
        """The names of every op with a lowering."""
        self._load_families()
        return frozenset(self._lowerings)

    def _load_families(self) -> None:
        """Import every family module once, so that their @lowering functions register."""
        for family in self.families:
            self._load(family)

    def _load(self, family: str) -> None:
        if family not in self._loaded:
            importlib.import_module(f"{self.package}.{family}")
            self._loaded.add(family)


__all__ = ["Lowering", "LoweringRegistry"]
