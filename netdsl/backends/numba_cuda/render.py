"""The CUDA rendering of the loop IR: one `@cuda.jit` kernel per loop nest, over flat arrays.

Every array reaches a kernel as a flat 1-D device array (C order), so one kernel source serves
every binding of the symbolic dims; the loop extents are its first arguments (`n0, n1, ...`).

* A nest without a reduction is one grid-stride loop over the flattened index space: thread
  `g` unravels `g` into the loop indices, loads each input at its own flat index (a broadcast
  axis contributes nothing), runs the scalar body and stores at `g`.
* A nest with a reduction gives each output cell to one block (grid-stride over cells): the
  block's threads stride over the cell's reduced elements, each accumulating in a register
  (f64 for sum, mean and prod, as the cpu target does), then combine their partials in a
  shared-memory tree; thread 0 applies the reduction's finish (mean's division) and stores.
  A short reduction (the host decides per launch: device.tree_min) runs as one thread per
  cell looping over its elements instead: no shared memory and no barriers.
  Elementwise values the group also exports are stored by the thread that computed them:
  every element of the index space is visited exactly once.

Scalars are rendered by ../python_source.py with CUDA's spelling of each function (`math.*`).
"""
from __future__ import annotations

from ...ir.types import DType
from ..expr import Cast, Expr, Ref, parse_template
from ..loopir import LoopNest
from ..python_source import literal, render, scalar_type

FUNCTIONS = {"exp": "math.exp", "log": "math.log", "tanh": "math.tanh", "erf": "math.erf",
             "sqrt": "math.sqrt", "log1p": "math.log1p", "abs": "abs", "sign": "_sign",
             "sin": "math.sin", "cos": "math.cos", "max": "max", "min": "min"}


def _expr(expr: Expr) -> str:
    return render(expr, "", FUNCTIONS)


def _accumulator_dtype(op: str, dtype: DType) -> DType:
    # f64 partials for sums: a long f32 sum drifts; the reference (NumPy's pairwise sum) does not.
    return DType.f64 if dtype.is_float and op in ("sum", "mean", "prod") else dtype


def _unravel(indices: list[int], extent: list[str], linear: str) -> list[str]:
    """Lines setting `i<k>` for the loops `indices` (C order) from the linear index `linear`."""
    lines, rest = [], linear
    for position, k in enumerate(reversed(indices)):
        last = position == len(indices) - 1
        if last:
            lines.append(f"i{k} = {rest}")
        else:
            lines.append(f"i{k} = {rest} % {extent[k]}")
            lines.append(f"q{k} = {rest} // {extent[k]}")
            rest = f"q{k}"
    return lines


def _flat_index(marks: list[str | None], extent: list[str]) -> str:
    """The flat index of an array over the loops it follows ('i'); broadcast loops add 0."""
    terms, stride = [], []
    for k in reversed(range(len(marks))):
        if marks[k] == "i":
            terms.append(" * ".join([f"i{k}"] + stride))
            stride = [extent[k]] + stride
    return " + ".join(reversed(terms)) or "0"


def _loop_marks(nest: LoopNest, axes: tuple) -> list[str | None]:
    """Per collapsed loop: 'i' when the array follows it, else None."""
    marks = []
    for group in nest.groups:
        followed = [axes[a] for a in group if axes[a] is not None]
        marks.append("i" if followed and followed[0] == "i" else None)
    return marks


def kernel_source(nest: LoopNest, memory=None, name: str = "kernel",
                  threads: int = 32, tree: bool = True) -> tuple[str, list]:
    """A `@cuda.jit` kernel `name(n0.., a0..)` for the nest, and its array arguments in order.

    `memory(value)` identifies a value's buffer: values in one buffer with one shape share a
    parameter (an in-place update reads and writes the same array).  A reduction is a block
    per output cell (`tree`; `threads` is the block size it is launched with, its shared
    array has that many partials), or one thread per cell looping over its elements (for
    short reductions: no shared memory, no barriers)."""
    memory = memory or (lambda value: value.id)
    loops = len(nest.groups)
    extent = [f"n{k}" for k in range(loops)]
    names: dict[int, str] = {}
    params = list(extent)
    by_memory: dict = {}
    arrays: list = []
    for value in nest.arrays:
        key = (memory(value), tuple(value.shape))
        if key not in by_memory:
            by_memory[key] = f"a{len(arrays)}"
            arrays.append(value)
            params.append(by_memory[key])
        names[value.id] = by_memory[key]
    # Flat indices assume every array follows the loops' extents: this target fuses no window or
    # tile (fuse(graph) without windows), so a shifted load or store here is a bug upstream.
    assert all(x.offsets is None for x in (*nest.loads, *nest.stores)), \
        "cuda: a shifted load or store in a loop nest"
    loads = [f"{load.local} = {names[load.value.id]}"
             f"[{_flat_index(_loop_marks(nest, load.axes), extent)}]" for load in nest.loads]
    body = [f"{stmt.local} = {_expr(stmt.expr)}" for stmt in nest.body]
    full = _flat_index(["i"] * loops, extent)
    stores = [f"{names[store.value.id]}[{full}] = {store.local}" for store in nest.stores]
    if nest.reduction is None:
        lines = _elementwise(extent, loads + body + stores)
    elif tree:
        lines = _reduction(nest, extent, names, loads + body + stores, threads)
    else:
        lines = _serial_reduction(nest, extent, names, loads + body + stores)
    header = f"def {name}({', '.join(params)}):"
    return "\n".join([header] + ["    " + line for line in lines]), arrays


def _elementwise(extent: list[str], body: list[str]) -> list[str]:
    total = " * ".join(extent) or "1"
    return ["g = cuda.grid(1)", "stride = cuda.gridsize(1)", f"total = {total}",
            "while g < total:",
            *("    " + line for line in _unravel(list(range(len(extent))), extent, "g")),
            *("    " + line for line in body),
            "    g += stride"]


def _reduction(nest: LoopNest, extent: list[str], names: dict, body: list[str],
               threads: int) -> list[str]:
    red = nest.reduction
    reduced = [k for k, kind in enumerate(nest.kinds) if kind == "reduce"]
    kept = [k for k in range(len(extent)) if k not in reduced]
    cells = " * ".join(extent[k] for k in kept) or "1"
    count = " * ".join(extent[k] for k in reduced) or "1"
    dtype = red.value.dtype
    acc_dtype = _accumulator_dtype(red.op, dtype)
    identity = literal(red.rule.identity(dtype), acc_dtype)
    combine = _expr(Cast(acc_dtype, parse_template(red.rule.combine,
                                                   [Ref("acc", acc_dtype), red.source], {},
                                                   None)))
    merge = _expr(Cast(acc_dtype, parse_template(
        red.rule.combine, [Ref("partial[tid]", acc_dtype),
                           Ref("partial[tid + half]", acc_dtype)], {}, None)))
    result: Expr = Ref("partial[0]", acc_dtype)
    if red.rule.finish:
        result = parse_template(red.rule.finish.replace("{count}", "{1}"),
                                [result, Ref(f"({count})", DType.i64)], {}, None)
    out = names[red.value.id]
    return [f"partial = cuda.shared.array({threads}, {_numba_type(acc_dtype)})",
            "tid = cuda.threadIdx.x",
            "cell = cuda.blockIdx.x",
            f"cells = {cells}",
            f"count = {count}",
            "while cell < cells:",
            *("    " + line for line in _unravel(kept, extent, "cell")),
            f"    acc = {identity}",
            "    r = tid",
            "    while r < count:",
            *("        " + line for line in _unravel(reduced, extent, "r")),
            *("        " + line for line in body),
            f"        acc = {combine}",
            "        r += cuda.blockDim.x",
            "    partial[tid] = acc",
            "    cuda.syncthreads()",
            f"    half = {threads // 2}",
            "    while half > 0:",
            "        if tid < half:",
            f"            partial[tid] = {merge}",
            "        cuda.syncthreads()",
            "        half //= 2",
            "    if tid == 0:",
            f"        {out}[cell] = {_expr(Cast(dtype, result))}",
            "    cuda.syncthreads()",
            "    cell += cuda.gridDim.x"]


def _serial_reduction(nest: LoopNest, extent: list[str], names: dict,
                      body: list[str]) -> list[str]:
    """A thread per output cell (grid-stride over cells) accumulating its elements in order."""
    red = nest.reduction
    reduced = [k for k, kind in enumerate(nest.kinds) if kind == "reduce"]
    kept = [k for k in range(len(extent)) if k not in reduced]
    count = " * ".join(extent[k] for k in reduced) or "1"
    dtype = red.value.dtype
    acc_dtype = _accumulator_dtype(red.op, dtype)
    combine = _expr(Cast(acc_dtype, parse_template(red.rule.combine,
                                                   [Ref("acc", acc_dtype), red.source], {},
                                                   None)))
    result: Expr = Ref("acc", acc_dtype)
    if red.rule.finish:
        result = parse_template(red.rule.finish.replace("{count}", "{1}"),
                                [result, Ref(f"({count})", DType.i64)], {}, None)
    return ["cell = cuda.grid(1)",
            "stride = cuda.gridsize(1)",
            f"cells = {' * '.join(extent[k] for k in kept) or '1'}",
            f"count = {count}",
            "while cell < cells:",
            *("    " + line for line in _unravel(kept, extent, "cell")),
            f"    acc = {literal(red.rule.identity(dtype), acc_dtype)}",
            "    for r in range(count):",
            *("        " + line for line in _unravel(reduced, extent, "r")),
            *("        " + line for line in body),
            f"        acc = {combine}",
            f"    {names[red.value.id]}[cell] = {_expr(Cast(dtype, result))}",
            "    cell += stride"]


def _numba_type(dtype: DType) -> str:
    """The numba type of a shared array's elements (`numba.float64`): np scalar types are not
    accepted there."""
    return "_numba." + ("boolean" if dtype == DType.bool else dtype.numpy.name)


__all__ = ["FUNCTIONS", "kernel_source", "scalar_type"]
