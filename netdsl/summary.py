"""The `netdsl check` summary: one row per layer instance, then totals, FLOPs and memory.

Better than Keras' `model.summary()` where it matters to a practitioner: scoped names that are the
checkpoint names, symbolic shapes as written (`f32[B, 10]`), the layer's key arguments, blocks
shown with their contents indented, `repeat` copies folded into one row (as `render` draws
them), shared layers marked, per-example FLOPs, and what a step needs at a batch size: FLOPs of
the inference and training steps and their memory as the memory planner lays it out
(summary_memory.py).  Dims other than the batch stay symbolic (`608·T FLOPs`) unless bound.

`summary_data` is the summary as data (`check --json`); `format_summary` prints it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from .ir.architecture import Architecture, LayerRecord
from .ir.types import (DimLike, Sym, dim_add, dim_mul, dim_prod, opaque_symbols,
                       substitute_dim)
from .summary_text import format_bytes, format_count, format_flops, format_summary

_SHOWN = ("input", "param", "layer", "block", "output", "loss")
_SHOWN_FUNCTIONS = ("@",)        # a raw `x @ w` is a layer written out: it gets a row


def _shown(record: LayerRecord) -> bool:
    """Layers, blocks and declarations; a raw `@` the user wrote (not one inside a built-in
    layer written in netdsl, such as RNN's, which layers/stdlib/ holds)."""
    if record.category in _SHOWN:
        return True
    return record.category == "function" and record.kind in _SHOWN_FUNCTIONS and \
        not _in_stdlib(record)


def _in_stdlib(record: LayerRecord) -> bool:
    from pathlib import Path

    from .layers import stdlib
    if record.span is None or not record.span.file:
        return False
    return Path(record.span.file).resolve().parent == Path(stdlib.__file__).resolve().parent


def _subtree_totals(arch: Architecture) -> dict[str, tuple[int, DimLike]]:
    """Params and FLOPs of each record including everything nested inside it."""
    totals: dict[str, tuple[int, DimLike]] = {}
    for record in reversed(arch.records):
        params, flops = totals.get(record.name, (0, 0))
        params, flops = params + record.params, dim_add(flops, record.flops)
        totals[record.name] = (params, flops)
        if record.parent is not None:
            parent_params, parent_flops = totals.get(record.parent, (0, 0))
            totals[record.parent] = (parent_params + params, dim_add(parent_flops, flops))
    return totals


def _depth(record: LayerRecord, by_name: dict[str, LayerRecord]) -> int:
    depth, parent = 0, record.parent
    while parent is not None and parent in by_name:
        depth += 1
        parent = by_name[parent].parent
    return depth


def _folded(arch: Architecture, expand: bool) -> tuple[dict[str, str], set[str]]:
    """({copy: its run's first copy}, names not shown): the runs `render` draws as one cluster
    (render/layers.py `repeated_copies`), every copy but the first and all inside it hidden."""
    if expand:
        return {}, set()
    from .render.layers import repeated_copies
    copy_of, _ = repeated_copies(arch)
    hidden = set(copy_of)
    for record in arch.records:                     # parents come before their children
        if record.parent in hidden:
            hidden.add(record.name)
    return copy_of, hidden


def layer_rows(arch: Architecture, per_example: Callable[[DimLike], DimLike],
               expand: bool = False) -> list[dict]:
    """One row per shown record: params, and FLOPs `per_example(count)`.  A folded run's row
    holds the totals of all its copies; the rows nested under it are its first copy's."""
    by_name = {r.name: r for r in arch.records}
    totals = _subtree_totals(arch)
    copy_of, hidden = _folded(arch, expand)
    run_totals, copies = dict(totals), {}
    for copy, first in copy_of.items():
        params, flops = run_totals[first]
        run_totals[first] = (params + totals[copy][0], dim_add(flops, totals[copy][1]))
        copies[first] = copies.get(first, 1) + 1
    rows = []
    for record in arch.records:
        if not _shown(record) or record.name in hidden:
            continue
        params, flops = run_totals[record.name]
        kind = record.kind if record.category in ("layer", "block", "function") \
            else record.category
        if record.shared_with:
            kind += f" (shares {record.shared_with})"
            params = 0
        rows.append({
            "name": record.name, "depth": _depth(record, by_name), "kind": kind,
            "arguments": dict(record.args), "copies": copies.get(record.name, 1),
            "output_shapes": [str(t) for t in record.output_types],
            "params": params, "flops": per_example(flops)})
    return rows


def summary_data(model, batch: int | None = None, dims: Mapping[str, int] | None = None,
                 expand: bool = False, memory: bool = True,
                 plan_limit: int | None = None) -> dict[str, Any]:
    """The summary of one model as data: rows, totals, and each step's FLOPs and memory at
    `batch` (default: its train section's batch) with `dims` bound.  A step whose graph has
    more than `plan_limit` nodes (default summary_memory.PLAN_LIMIT; 0: any) is not planned."""
    from .summary_memory import PLAN_LIMIT, batch_symbol, inference_cost, training_cost
    limit = PLAN_LIMIT if plan_limit is None else plan_limit
    graph, arch = model.graph, model.architecture
    dims = dict(dims or {})
    symbol = batch_symbol(graph)
    batch_origin = "--batch"
    if symbol in dims:                             # --dim B=8 is --batch 8
        bound = dims.pop(symbol)
        batch, batch_origin = (bound, f"--dim {symbol}") if batch is None else (batch, "--batch")
    if batch is None:
        batch = model.train_config.batch
        batch_origin = "train section" if model.name in model.program.trains else "default"
    at_batch = {**dims, **({symbol: batch} if symbol else {})}
    per_example = _per_example(symbol, batch, dims)
    params = graph.params
    data: dict[str, Any] = {
        "model": model.name, "source": model.source,
        "batch": {"dim": symbol, "size": batch if symbol else None, "from": batch_origin},
        "dims": dims,
        "rows": layer_rows(arch, per_example, expand),
        "parameters": {
            "total": sum(p.value.type.size for p in params),
            "trainable": sum(p.value.type.size for p in params if p.trainable),
            "bytes": sum(p.value.type.size * p.value.dtype.numpy.itemsize for p in params)},
        "per_example": {},
        "inputs": [[v.name, str(v.type)] for v in graph.inputs if not v.name.startswith("__")],
        "outputs": [[name, str(value.type)] for name, value in graph.outputs.items()],
        "losses": [[loss.name, list(loss.wrt or ())] for loss in graph.losses],
    }
    data["parameters"]["non_trainable"] = \
        data["parameters"]["total"] - data["parameters"]["trainable"]
    if memory:
        steps = [inference_cost(model, at_batch, limit), training_cost(model, at_batch, limit)]
        data["plan_limit"] = limit
        data["not_planned"] = {step.kind: step.too_large for step in steps
                               if step is not None and step.too_large}
        steps = [step for step in steps if step is not None and not step.too_large]
        if steps and steps[0].kind == "inference":
            data["per_example"]["forward_flops"] = per_example(steps[0].graph_flops)
        data["steps"] = {step.kind: _step_data(step) for step in steps}
    data["free_dims"] = sorted(_free(data))
    return data


def _per_example(symbol: str | None, batch: int, dims: Mapping[str, int]):
    """A count per example: with the batch dim bound to 1; or, where the count divides the batch
    (a critic on B // 4 of the rows), the count at `batch` over `batch`, rounded."""
    def per_example(count: DimLike) -> DimLike:
        if symbol is None:
            return substitute_dim(count, dims)
        names = set() if isinstance(count, int) else count.symbols
        if not any(name != symbol and symbol in opaque_symbols(name) for name in names):
            return substitute_dim(count, {**dims, symbol: 1})
        at_batch = substitute_dim(count, {**dims, symbol: batch})
        if isinstance(at_batch, int):
            return round(at_batch / batch)
        result: DimLike = 0
        for monomial, coefficient in at_batch.terms:
            term = dim_mul(round(coefficient / batch), dim_prod(Sym.named(n) for n in monomial))
            result = dim_add(result, term)
        return result
    return per_example


def _step_data(step) -> dict[str, Any]:
    return {"flops": step.flops, "parameters": step.parameters, "optimizer": step.optimizer,
            "optimizers": step.optimizers, "gradients": step.gradients, "inputs": step.inputs,
            "constants": step.constants, "arena": step.arena,
            "arena_without_reuse": step.without_reuse, "buffers": step.buffers,
            "slots": step.slots, "exact": step.exact, "total": step.total,
            "objectives": step.steps}


def _free(data) -> set[str]:
    """The symbols left in any number of the summary."""
    found: set[str] = set()

    def walk(item):
        if isinstance(item, Sym):
            found.update(item.symbols)
        elif isinstance(item, dict):
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)
    walk({k: v for k, v in data.items() if k != "rows"})
    walk([row["flops"] for row in data["rows"]])
    return found


def as_json(data: Any) -> Any:
    """The summary with every symbolic number written as its expression (`"608*T"`)."""
    if isinstance(data, Sym):
        return str(data)
    if isinstance(data, dict):
        return {key: as_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [as_json(value) for value in data]
    return data


def summarize(model, *, batch: int | None = None, dims: Mapping[str, int] | None = None,
              expand: bool = False, ascii_only: bool = False, memory: bool = True,
              plan_limit: int | None = None) -> str:
    """The summary of one model as text (`Model.summary`, `netdsl check`)."""
    return format_summary(summary_data(model, batch, dims, expand, memory, plan_limit),
                          ascii_only=ascii_only)


__all__ = ["as_json", "format_bytes", "format_count", "format_flops", "layer_rows",
           "summarize", "summary_data"]
