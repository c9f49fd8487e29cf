"""The `netdsl check` summary: one row per layer instance, then totals.

Better than Keras' `model.summary()` where it matters to a practitioner: scoped names that are the
checkpoint names, symbolic shapes as written (`f32[B, 10]`), the layer's key arguments, blocks
shown with their contents indented, shared layers marked, and per-example FLOPs and activation
memory.
"""
from __future__ import annotations

from .ir.architecture import Architecture, LayerRecord
from .ir.graph import Graph

_SHOWN = ("input", "param", "layer", "block", "output", "loss")


def format_count(n: int) -> str:
    return f"{n:,}"


def format_flops(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}FLOPs"
    return f"{n} FLOPs"


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _subtree_totals(arch: Architecture) -> dict[str, tuple[int, int]]:
    """Params and FLOPs of each record including everything nested inside it."""
    totals: dict[str, tuple[int, int]] = {}
    for record in reversed(arch.records):
        params, flops = totals.get(record.name, (0, 0))
        params += record.params
        flops += record.flops
        totals[record.name] = (params, flops)
        if record.parent is not None:
            parent_params, parent_flops = totals.get(record.parent, (0, 0))
            totals[record.parent] = (parent_params + params, parent_flops + flops)
    return totals


def _depth(record: LayerRecord, by_name: dict[str, LayerRecord]) -> int:
    depth, parent = 0, record.parent
    while parent is not None and parent in by_name:
        depth += 1
        parent = by_name[parent].parent
    return depth


def summarize(arch: Architecture, graph: Graph, source: str = "") -> str:
    """The summary table of one model as text."""
    by_name = {r.name: r for r in arch.records}
    totals = _subtree_totals(arch)
    rows = [("Layer", "Kind", "Arguments", "Output shape", "Params", "FLOPs/example")]
    for record in arch.records:
        if record.category not in _SHOWN:
            continue
        indent = "  " * _depth(record, by_name)
        params, flops = totals[record.name]
        kind = record.kind if record.category in ("layer", "block") else record.category
        if record.shared_with:
            kind += f" (shares {record.shared_with})"
            params = 0
        args = ", ".join(f"{k}={v}" for k, v in record.args.items())
        shape = ", ".join(str(t) for t in record.output_types)
        rows.append((indent + record.name, kind, args, shape,
                     format_count(params) if params else "",
                     format_flops(flops) if flops else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {4, 5}

    def line(row) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    width = max(len(line(r)) for r in rows)
    rule = "─" * width
    title = f"model {arch.model}" + (f"  ({source})" if source else "")
    out = [title, rule, line(rows[0]), rule, *(line(r) for r in rows[1:]), rule]
    total = sum(p.value.type.size for p in graph.params)
    trainable = sum(p.value.type.size for p in graph.params if p.trainable)
    param_bytes = sum(p.value.type.size * p.value.dtype.numpy.itemsize for p in graph.params)
    flops = sum(r.flops for r in arch.records)
    activations = sum(r.activation_bytes for r in arch.records
                      if r.category not in ("input", "output", "loss", "param"))
    out.append(f"Parameters:  {format_count(total)} ({format_bytes(param_bytes)})   "
               f"trainable {format_count(trainable)}   "
               f"non-trainable {format_count(total - trainable)}")
    out.append(f"Per example: forward {format_flops(flops)}, "
               f"activations {format_bytes(activations)}")
    inputs = ", ".join(f"{v.name} {v.type}" for v in graph.inputs if not v.name.startswith("__"))
    outputs = ", ".join(f"{name} {value.type}" for name, value in graph.outputs.items())
    losses = ", ".join(loss.name + (f" (wrt {', '.join(loss.wrt)})" if loss.wrt else "")
                       for loss in graph.losses)
    out.append(f"Inputs:      {inputs or '-'}")
    out.append(f"Outputs:     {outputs or '-'}")
    out.append(f"Losses:      {losses or '-'}")
    return "\n".join(out)
