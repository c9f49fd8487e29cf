"""A generated program: typed values, statements, outputs and losses, written out as `.net` text.

The generator (generate.py) builds a `Program`; the oracle (oracle.py) lowers its text through
the real front end and runs it; the shrinker (shrink.py) edits it.  Types are the IR's own
`TensorType`s with `Sym` dimensions, so the generator can ask the op registry's shape rules
what an op makes, and the text spells dims exactly as the IR prints them (`B`, `3*B`).

Every float value carries an interval [lo, hi] that bounds it for every input the oracle
feeds: the generator only applies `log`, `sqrt`, division and `exp` where the interval keeps
them finite and well conditioned, so a difference between targets is a bug, not an overflow.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..ir.types import DType, TensorType, evaluate_dim


@dataclass(frozen=True)
class Var:
    """A named value of the program: an input, a raw param, or a statement's result."""

    name: str
    type: TensorType
    lo: float = -1.0          # bounds of every element (floats); ids lie in [lo, hi] (ints)
    hi: float = 1.0
    kind: str = "value"       # input | param | value

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return tuple(self.type.shape)

    @property
    def rank(self) -> int:
        return len(self.type.shape)

    @property
    def bound(self) -> float:
        return max(abs(self.lo), abs(self.hi))


@dataclass
class Stmt:
    """`targets = expr` (with `body` lines for a scan); `reads` names the values it uses.

    `alternatives` are other right-hand sides of exactly the same type that read fewer values
    (the shrinker tries them); `outputs` marks targets that are `out` of the model."""

    targets: tuple[str, ...]
    expr: str
    reads: tuple[str, ...]
    body: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()
    outputs: frozenset[str] = frozenset()
    tag: str = ""             # the menu entry that made it (statistics, shrinking reports)


@dataclass
class Loss:
    expr: str
    reads: tuple[str, ...]
    tag: str = ""


@dataclass
class Program:
    """A whole model: inputs, raw params, statements, losses and the dims' run-time values."""

    inputs: list[Var] = field(default_factory=list)
    params: list[tuple[Var, str]] = field(default_factory=list)     # (param, initialiser)
    stmts: list[Stmt] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    bindings: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    name: str = "Fuzz"
    values: dict[str, Var] = field(default_factory=dict)           # every name -> Var
    tags: list[str] = field(default_factory=list)                  # what each statement is
    entries: list[str] = field(default_factory=list)               # menu entries applied
    blocks: dict[str, str] = field(default_factory=dict)           # block name -> definition

    # -- text -----------------------------------------------------------------------------
    def text(self, header: str = "") -> str:
        """The program as a `.net` file."""
        lines = [f"# {line}" for line in header.splitlines()]
        used = " ".join(s.expr for s in self.stmts)
        for name, definition in self.blocks.items():
            if f"{name}(" in used:
                lines.append(definition)
        lines.append(f"model {self.name} {{")
        for var in self.inputs:
            lines.append(f"    in {var.name}: {type_text(var.type)}")
        for var, init in self.params:
            lines.append(f"    param {var.name}: {type_text(var.type)} = {init}")
        for stmt in self.stmts:
            lines.extend(self._stmt_lines(stmt))
        for loss in self.losses:
            lines.append(f"    loss {loss.expr}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _stmt_lines(stmt: Stmt) -> list[str]:
        if len(stmt.targets) == 1 and stmt.targets[0] in stmt.outputs:
            lines = [f"    out {stmt.targets[0]} = {stmt.expr}"]
        else:
            lines = [f"    {', '.join(stmt.targets)} = {stmt.expr}"]
        if stmt.body:
            lines[-1] += " {"
            lines += [f"        {line}" for line in stmt.body] + ["    }"]
        if len(stmt.targets) > 1:
            lines += [f"    out {name}_o = {name}" for name in stmt.targets if name in stmt.outputs]
        return lines

    # -- data -----------------------------------------------------------------------------
    def data_spec(self) -> "DataSpec":
        """What the oracle feeds: the dims' values and each input's range."""
        return DataSpec(dict(self.bindings), {v.name: (v.lo, v.hi) for v in self.inputs},
                        self.seed)

    # -- editing (the shrinker) -----------------------------------------------------------
    def copy(self) -> "Program":
        return replace(self, inputs=list(self.inputs), params=list(self.params),
                       stmts=list(self.stmts), losses=list(self.losses), blocks=dict(self.blocks),
                       bindings=dict(self.bindings), values=dict(self.values))

    def output_names(self) -> list[str]:
        return [name for s in self.stmts for name in s.targets if name in s.outputs]

    def prune(self) -> "Program":
        """Drop statements, params and inputs that no output or loss needs."""
        needed: set[str] = set()
        for loss in self.losses:
            needed.update(loss.reads)
        kept: list[Stmt] = []
        for stmt in reversed(self.stmts):
            live = stmt.outputs | needed
            if any(t in live for t in stmt.targets):
                kept.append(stmt)
                needed.update(stmt.reads)
        self.stmts = kept[::-1]
        self.params = [(v, init) for v, init in self.params if v.name in needed]
        self.inputs = [v for v in self.inputs if v.name in needed]
        return self


@dataclass
class DataSpec:
    """The data a program runs on: symbolic dims' values, each input's range, a seed.

    Written into a shrunk program's header (`# fuzz-data: {...}`) so the `.net` file alone
    reproduces the failure."""

    bindings: dict[str, int]
    ranges: dict[str, tuple[float, float]]
    seed: int = 0

    def arrays(self, inputs) -> dict[str, np.ndarray]:
        """Data for graph input Values (ids and labels inside their range)."""
        rng = np.random.default_rng(self.seed)
        arrays = {}
        for value in inputs:
            if value.name.startswith("__"):
                continue
            shape = tuple(int(evaluate_dim(d, self.bindings)) for d in value.shape)
            lo, hi = self.ranges.get(value.name, (-1.0, 1.0) if value.dtype.is_float else (0, 1))
            if value.dtype.is_int:
                arrays[value.name] = rng.integers(int(lo), int(hi) + 1, size=shape).astype(
                    value.dtype.numpy)
            elif value.dtype == DType.bool:
                arrays[value.name] = rng.random(shape) < 0.5
            else:
                arrays[value.name] = rng.uniform(lo, hi, size=shape).astype(value.dtype.numpy)
        return arrays

    def rebound(self) -> "DataSpec":
        """The same ranges at other dim values (a second batch of another size)."""
        return DataSpec({k: v + 1 if v <= 2 else v - 2 for k, v in self.bindings.items()},
                        dict(self.ranges), self.seed + 1)

    def to_json(self) -> str:
        import json
        return json.dumps({"bindings": self.bindings, "seed": self.seed,
                           "ranges": {k: [float(a), float(b)] for k, (a, b) in
                                      self.ranges.items()}})

    @staticmethod
    def from_json(text: str) -> "DataSpec":
        import json
        data = json.loads(text)
        return DataSpec({k: int(v) for k, v in data["bindings"].items()},
                        {k: (float(a), float(b)) for k, (a, b) in data["ranges"].items()},
                        int(data.get("seed", 0)))


def type_text(type_: TensorType) -> str:
    """`f32[B, 3]` as the .net grammar reads it."""
    return f"{type_.dtype.value}[{', '.join(dim_text(d) for d in type_.shape)}]"


def dim_text(d) -> str:
    return str(d) if isinstance(d, int) else str(d).replace(" ", "")


__all__ = ["DataSpec", "Loss", "Program", "Stmt", "Var", "dim_text", "type_text"]
