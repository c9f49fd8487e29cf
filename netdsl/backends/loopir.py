"""Loop IR: a target-neutral loop nest for elementwise, reduction and epilogue kernel groups.

A `LoopNest` is an index space (a shape, with symbolic dims), the loads of the group's inputs
(each array dim either follows a loop axis or is broadcast), a straight-line scalar body built
from the ops' kernel templates (one typed local per node), full-index stores of the values the
group exports, and at most one reduction over some axes.  `collapse()` drops axes of extent 1
and merges adjacent axes that every array indexes the same way (a contiguous elementwise chain
becomes one flat loop; `x[B, N] + b[N]` stays two loops).  `emit_python` writes it as Python
source for Numba (CPU now; the CUDA backend maps the same nest onto a grid-stride loop).

Every node's scalar result is cast to the node's element type (`np.float32(...)`), and float
literals in templates are typed the same way, so an f32 model computes in f32 as the reference
interpreter does, instead of drifting to f64 through Python float literals.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

from ..ir.graph import Node, Value
from ..ir.types import DimLike, DType, dim_prod
from ..passes.fusion import KernelGroup, elementwise_template, is_scalar_constant

_FLOAT_LITERAL = re.compile(r"(?<![\w.{])(\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+)(?![\w.}])")


@dataclass
class Load:
    """An input array; axes[k] is 'i' (follows the loop axis), 'b' (broadcast) or None (absent)."""

    value: Value
    axes: tuple[str | None, ...]
    local: str


@dataclass
class Stmt:
    local: str
    expr: str
    dtype: DType


@dataclass
class Store:
    value: Value
    local: str


@dataclass
class Reduction:
    value: Value
    local: str
    op: str                      # sum | mean | max | min | prod
    axes: frozenset[int]         # loop axes reduced away


@dataclass
class LoopNest:
    """An index space, its loads, a scalar body, full-index stores and an optional reduction."""

    shape: list[DimLike]
    loads: list[Load]
    body: list[Stmt]
    stores: list[Store]
    reduction: Reduction | None = None
    groups: list[list[int]] = field(default_factory=list)   # original axes per loop (collapse)

    @property
    def arrays(self) -> list[Value]:
        """Kernel arguments in order: loads (non-literal), then stores, then the reduction."""
        return [l.value for l in self.loads] + [s.value for s in self.stores] + \
            ([self.reduction.value] if self.reduction else [])


def literal(value, dtype: DType) -> str:
    """A scalar of `dtype` as Numba source (inf and nan included)."""
    x = np.asarray(value).reshape(()).item()
    if dtype == DType.bool:
        return repr(bool(x))
    if dtype.is_float:
        text = "np.inf" if x == math.inf else "-np.inf" if x == -math.inf else \
            "np.nan" if x != x else repr(float(x))
        return f"np.{dtype.numpy.name}({text})"
    return f"np.{dtype.numpy.name}({int(x)})"


def _typed_template(template: str, dtype: DType | None) -> str:
    if dtype is None or dtype == DType.f64:
        return template
    return _FLOAT_LITERAL.sub(lambda m: f"np.{dtype.numpy.name}({m.group(1)})", template)


def _attr_text(value, dtype: DType | None) -> str:
    if isinstance(value, DType):
        return f"np.{value.numpy.name}" if value != DType.bool else "np.bool_"
    if isinstance(value, (float, np.floating)):
        return literal(value, dtype if dtype is not None and dtype.is_float else DType.f64)
    return repr(value)


def _cast(dtype: DType) -> str:
    return "np.bool_" if dtype == DType.bool else f"np.{dtype.numpy.name}"


def _float_dtype(node: Node) -> DType | None:
    for value in (*node.outputs, *node.inputs):
        if value.dtype.is_float:
            return value.dtype
    return None


def _axes_of(value: Value, shape) -> tuple[str | None, ...]:
    """How a (right-aligned, broadcast) array follows each loop axis."""
    offset = len(shape) - value.rank
    result: list[str | None] = [None] * offset
    for k, d in enumerate(value.shape):
        result.append("i" if d == shape[offset + k] else "b")
    return tuple(result)


def reduction_axes(node: Node) -> frozenset[int]:
    """Normalised `axes` attribute of a reduction node (None: all axes)."""
    rank = node.inputs[0].rank
    axes = node.attrs.get("axes", node.attrs.get("axis"))
    if axes is None:
        return frozenset(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    return frozenset(a % rank for a in axes)


def build_loop_nest(group: KernelGroup, constants: dict[int, Node]) -> LoopNest:
    """The loop nest of an elementwise, reduction, or matmul/conv-epilogue group."""
    anchored = group.kind in ("matmul", "conv")
    nodes = group.epilogue if anchored or group.kind == "reduction" else group.nodes
    shape = list(group.shape)
    local_of: dict[int, str] = {}
    loads: list[Load] = []
    body: list[Stmt] = []

    def operand(value: Value) -> str:
        if value.id in local_of:
            return local_of[value.id]
        producer = constants.get(value.producer.id) if value.producer is not None else None
        if producer is not None and is_scalar_constant(producer):
            local_of[value.id] = literal(producer.attrs["value"], value.dtype)
        else:
            local = f"x{len(loads)}"
            loads.append(Load(value, _axes_of(value, shape), local))
            local_of[value.id] = local
        return local_of[value.id]

    for node in nodes:
        dtype = _float_dtype(node)
        template, data = elementwise_template(node)
        operands = [operand(node.inputs[i]) for i in data]
        attrs = {k: _attr_text(v, dtype) for k, v in node.attrs.items()}
        expr = _typed_template(template, dtype).format(*operands, **attrs)
        local = f"t{len(body)}"
        out = node.outputs[0]
        body.append(Stmt(local, f"{_cast(out.dtype)}({expr})", out.dtype))
        local_of[out.id] = local
    exported = {v.id for v in group.outputs}
    stores = [Store(n.outputs[0], local_of[n.outputs[0].id]) for n in nodes
              if n.outputs[0].id in exported]
    reduction = None
    if group.kind == "reduction":
        anchor = group.anchor
        reduction = Reduction(anchor.outputs[0], operand(anchor.inputs[0]), anchor.op.name,
                              reduction_axes(anchor))
    return LoopNest(shape, loads, body, stores, reduction, [[a] for a in range(len(shape))])


def collapse(nest: LoopNest) -> LoopNest:
    """Drop extent-1 axes and merge adjacent axes that all arrays treat alike."""
    reduced = nest.reduction.axes if nest.reduction else frozenset()
    keep = [a for a in range(len(nest.shape)) if nest.shape[a] != 1]

    def signature(axis: int) -> tuple:
        marks = tuple(l.axes[axis] == "i" for l in nest.loads)
        return marks + (axis in reduced,)

    groups: list[list[int]] = []
    for axis in keep:
        if groups and signature(groups[-1][-1]) == signature(axis) and groups[-1][-1] == axis - 1:
            groups[-1].append(axis)
        else:
            groups.append([axis])
    return replace(nest, groups=groups)


def parallelizable(nest: LoopNest) -> bool:
    """Can the outermost loop be a prange (it exists and is not reduced over)?"""
    if not nest.groups:
        return False
    return nest.reduction is None or nest.groups[0][0] not in nest.reduction.axes


def extents(nest: LoopNest) -> list[DimLike]:
    """The extent of each (collapsed) loop."""
    return [dim_prod(nest.shape[a] for a in group) for group in nest.groups]


def emit_python(nest: LoopNest, names: dict[int, str], extent: list[str], prefix: str = "",
                parallel: bool = False) -> list[str]:
    """Python/Numba source lines for the nest: `names` maps value ids to array variables,
    `extent` gives each loop's extent as source; locals are prefixed with `prefix`."""
    p = prefix
    loops = nest.groups
    red = nest.reduction
    reduced = [k for k, g in enumerate(loops) if red and g[0] in red.axes]
    kept = [k for k in range(len(loops)) if k not in reduced]
    index = [f"{p}i{k}" for k in range(len(loops))]
    lines: list[str] = []

    def view(value: Value, axes_marks, name: str, rank_loops: list[int]) -> tuple[str, list[str]]:
        """A reshaped view of an array over the collapsed loops and its index expressions."""
        dims, subs, merged = [], [], False
        for k in rank_loops:
            marks = [axes_marks[a] for a in loops[k] if axes_marks[a] is not None]
            if not marks:
                continue
            merged = merged or len(loops[k]) > 1
            dims.append(extent[k] if marks[0] == "i" else "1")
            subs.append(index[k] if marks[0] == "i" else "0")
        if not dims:
            return name, ["0"] * value.rank
        if value.rank == len(dims) and not merged:      # every array dim is one loop: as is
            return name, subs
        local = f"{p}{name}_v"
        lines.append(f"{local} = _view({name}, 0, ({', '.join(dims)},))")
        return local, subs

    full = list(range(len(loops)))
    loop_loads, hoisted = [], []
    for load in nest.loads:
        array, subs = view(load.value, load.axes, names[load.value.id], full)
        target = loop_loads if any(s != "0" for s in subs) else hoisted
        index_text = ", ".join(subs) if subs else "()"
        target.append(f"{p}{load.local} = {array}[{index_text}]")
    stores = []
    for store in nest.stores:
        array, subs = view(store.value, ("i",) * len(nest.shape), names[store.value.id], full)
        stores.append(f"{array}[{', '.join(subs) if subs else '()'}] = {p}{store.local}")
    lines.extend(hoisted)
    body = loop_loads + [f"{p}{s.local} = {_prefixed(s.expr, p)}" for s in nest.body]

    if red is None:
        lines.extend(_nest(index, extent, full, body + stores, parallel))
        return lines
    out_name = names[red.value.id]
    out_dims = [extent[k] for k in kept]
    out_view = f"{p}{out_name}_r"
    out_size = " * ".join(out_dims) or "1"
    lines.append(f"{out_view} = _view({out_name}, 0, ({', '.join(out_dims) or '1'},))")
    out_index = ", ".join(index[k] for k in kept) or "0"
    dtype = red.value.dtype
    acc_dtype = DType.f64 if dtype.is_float and red.op in ("sum", "mean", "prod") else dtype
    init = literal(_INIT[red.op](dtype), acc_dtype)
    source = f"{p}{red.local}" if not red.local.startswith("np.") else red.local
    # Parenthesised: the count is spliced into `acc / (n0 * n1)`, where `acc / n0 * n1`
    # would divide by one loop's extent and multiply by the other's.
    count = "(" + (" * ".join(extent[k] for k in reduced) or "1") + ")"
    # The trailing reduced loops accumulate into a scalar (a register, not a store per
    # element); reduced loops outside the last kept one accumulate into the output itself.
    last_kept = max(kept, default=-1)
    trailing = [k for k in reduced if k > last_kept]
    outer = [k for k in range(len(loops)) if k <= last_kept]
    acc, cell = f"{p}acc", f"{out_view}[{out_index}]"
    inner = body + stores + [f"{acc} = {_COMBINE[red.op].format(acc, source)}"]
    block = [f"{acc} = {init}", *_nest(index, extent, trailing, inner, False)]
    if not any(k in reduced for k in outer):                # each output cell in one go
        finish = f"{acc} / {count}" if red.op == "mean" else acc
        block.append(f"{cell} = {_cast(dtype)}({finish})")
        lines.extend(_nest(index, extent, outer, block, parallel) if outer else block)
        return lines
    flat, k = f"{p}{out_name}_f", f"{p}k"
    lines += [f"{flat} = _view({out_name}, 0, ({out_size},))",
              f"for {k} in range({out_size}):",
              f"    {flat}[{k}] = {literal(_INIT[red.op](dtype), dtype)}"]
    block.append(f"{cell} = {_cast(dtype)}({_COMBINE[red.op].format(cell, acc)})")
    lines.extend(_nest(index, extent, outer, block, parallel and kept[0] == 0))
    if red.op == "mean":
        lines += [f"for {k} in range({out_size}):",
                  f"    {flat}[{k}] = {flat}[{k}] / {_cast(dtype)}({count})"]
    return lines


_INIT = {"sum": lambda d: 0, "mean": lambda d: 0, "prod": lambda d: 1,
         "max": lambda d: -math.inf if d.is_float else np.iinfo(d.numpy).min,
         "min": lambda d: math.inf if d.is_float else np.iinfo(d.numpy).max}
_COMBINE = {"sum": "{0} + {1}", "mean": "{0} + {1}", "prod": "{0} * {1}",
            "max": "max({0}, {1})", "min": "min({0}, {1})"}


def _prefixed(expr: str, prefix: str) -> str:
    """Prefix the body's local names (x3, t7) for inlining several nests in one function."""
    if not prefix:
        return expr
    return re.sub(r"(?<![\w.])([xt]\d+)\b", prefix + r"\1", expr)


def _nest(index: list[str], extent: list[str], loops: list[int], body: list[str],
          parallel: bool) -> list[str]:
    lines, depth = [], 0
    for position, k in enumerate(loops):
        rng = "prange" if parallel and position == 0 else "range"
        lines.append("    " * depth + f"for {index[k]} in {rng}({extent[k]}):")
        depth += 1
    lines.extend("    " * depth + line for line in body)
    return lines


def source_of(nest: LoopNest, parallel: bool, memory=None,
              name: str = "kernel") -> tuple[str, list[Value]]:
    """A standalone function `name(n0.., a0..)` for the nest, and its array arguments.

    `memory(value)` identifies the buffer a value lives in: values in one buffer with the same
    shape (an update written in place over the array it reads) share one parameter, so LLVM
    sees that a load and a store hit the same element and vectorises the loop instead of
    giving up on a possible overlap.  Two views of one buffer with different shapes
    (`reshape(p, [B, 1, T]) - reshape(p, [B, T, 1])`) stay two parameters: each is indexed
    by its own shape."""
    memory = memory or (lambda value: value.id)
    names: dict[int, str] = {}
    params = [f"n{k}" for k in range(len(nest.groups))]
    by_memory: dict = {}
    arrays: list[Value] = []
    for value in nest.arrays:
        key = (memory(value), tuple(value.shape))
        if key not in by_memory:
            by_memory[key] = f"a{len(arrays)}"
            arrays.append(value)
            params.append(by_memory[key])
        names[value.id] = by_memory[key]
    body = emit_python(nest, names, [f"n{k}" for k in range(len(nest.groups))], "", parallel)
    return "\n".join([f"def {name}({', '.join(params)}):"] + ["    " + l for l in body] +
                     ["    return 0"]), arrays


__all__ = ["LoopNest", "build_loop_nest", "collapse", "emit_python", "extents", "literal",
           "parallelizable",
           "source_of"]
