"""The layer-level view of a model: one record per layer instance, block and function call.

Lowering records this beside the primitive graph.  `netdsl check` prints it as the summary table
and `netdsl render --level layers` draws it; both read the same records, so the table and the
diagram always agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..source import Span
from .types import DimLike, TensorType


@dataclass
class LayerRecord:
    """One layer instance (or block instance, or function application) of the model."""

    name: str                              # full scoped name: "block_1.conv2d_2"
    kind: str                              # "Dense", "Conv2D", "Residual" (a user block), "relu"
    category: str                          # "layer" | "block" | "function" | "input" | "output" | "loss"
    args: dict[str, str] = field(default_factory=dict)   # key arguments as written: {"units": "120"}
    inputs: list[str] = field(default_factory=list)      # names of the records feeding it
    output_types: list[TensorType] = field(default_factory=list)
    params: int = 0                        # parameters owned directly (not by children)
    trainable_params: int = 0
    flops: DimLike = 0                     # forward FLOPs, symbolic (frontend/cost.py)
    activation_bytes: int = 0              # bytes of its outputs per example
    span: Span | None = None
    parent: str | None = None              # enclosing block instance's name, None at model level
    repeat: tuple[str, int, int] | None = None   # (group id, index, count) when made by repeat(n, ...)
    shared_with: str | None = None         # a reused (bound) layer: the name of its first use

    @property
    def scope(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass
class Architecture:
    """Every record of a model in source order, plus its inputs, outputs and losses."""

    model: str
    records: list[LayerRecord] = field(default_factory=list)

    def add(self, record: LayerRecord) -> LayerRecord:
        self.records.append(record)
        return record

    def get(self, name: str) -> LayerRecord:
        for record in self.records:
            if record.name == name:
                return record
        raise KeyError(name)

    def children(self, parent: str | None) -> list[LayerRecord]:
        return [r for r in self.records if r.parent == parent]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.records)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.records)
