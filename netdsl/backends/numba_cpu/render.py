"""The Numba CPU rendering of the loop IR: scalar expressions as Numba-typed Python, loop nests
as `for` loops over `_view`s of the arrays, `prange` for a loop marked parallel.

Numerics: every statement's result is cast to its node's type (`np.float32(...)`), float
literals are typed (`np.float32(0.5)`), and sum/mean accumulate in f64 registers
(`_accumulator_dtype`) before the result is cast back once per output cell; an f32 sum over
a trailing loop of at least SUM_BLOCK static elements adds f32 blocks into its f64 total
(`_blocked_sum`).
"""
from __future__ import annotations

from ...ir.types import DType
from ..expr import Cast, Expr, Ref, parse_template
from ..loopir import LoopNest, extents
from ..python_source import FUNCTIONS, literal, scalar_type
from ..python_source import render as render_python

# exp, tanh and erf through fast_math.py: vectorisable float32 forms (libm's are scalar calls
# that keep LLVM from vectorising a loop); min and max through builtins_inline.py, the same
# code without compiling Numba's overload per pair of argument types (and np.empty, as
# `_empty`).  The generated module imports them under these names.
CPU_FUNCTIONS = {**FUNCTIONS, "exp": "_fast_exp", "tanh": "_fast_tanh", "erf": "_fast_erf",
                 "max": "_max2", "min": "_min2"}
HELPER_IMPORTS = ["from netdsl.backends.numba_cpu.fast_math import exp as _fast_exp",
                     "from netdsl.backends.numba_cpu.fast_math import tanh as _fast_tanh",
                     "from netdsl.backends.numba_cpu.fast_math import erf as _fast_erf",
                     "from netdsl.backends.numba_cpu.builtins_inline import max2 as _max2",
                     "from netdsl.backends.numba_cpu.builtins_inline import min2 as _min2",
                     "from netdsl.backends.numba_cpu.builtins_inline import empty as _empty"]


# Chunks of a split reduction's outermost loop (`_split`): enough for 16 threads.
SPLIT_CHUNKS = 16


def render(expr: Expr, prefix: str = "") -> str:
    """Source of a scalar expression in the cpu target's spelling."""
    return render_python(expr, prefix, CPU_FUNCTIONS)


def _accumulator_dtype(op: str, dtype: DType) -> DType:
    # Why f64: a long f32 sum drifts; the reference interpreter (NumPy's pairwise sum) does not.
    return DType.f64 if dtype.is_float and op in ("sum", "mean", "prod") else dtype


def render_nest(nest: LoopNest, names: dict[int, str], extent: list[str],
                prefix: str = "", view_call: str = "_view") -> list[str]:
    """Python/Numba source lines for the nest: `names` maps value ids to array variables,
    `extent` gives each loop's extent as source; locals are prefixed with `prefix`.  The
    nest views its arrays with `view_call`: "_unowned_view" (no owner, support.unowned_view)
    where every array it names is an argument of the function or made from one."""
    p = prefix
    loops = nest.groups
    red = nest.reduction
    reduced = [k for k, kind in enumerate(nest.kinds) if kind in ("reduce", "split")]
    kept = [k for k in range(len(loops)) if k not in reduced]
    index = [f"{p}i{k}" for k in range(len(loops))]
    lines: list[str] = []
    made: dict[str, str] = {}                  # view locals made so far -> their shapes

    def view(value, axes_marks, name: str) -> tuple[str, list[str]]:
        """A reshaped view of an array over the collapsed loops and its index expressions."""
        dims, subs, merged = [], [], False
        for k in range(len(loops)):
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
        # An array both loaded and stored (an update in place) is viewed once; another view of
        # it in another shape gets a name of its own.
        shape = f"({', '.join(dims)},)"
        local = f"{p}{name}_v"
        while made.get(local, shape) != shape:
            local += "_"
        if local not in made:
            made[local] = shape
            lines.append(f"{local} = {view_call}({name}, 0, {shape})")
        return local, subs

    def shifted(position: str, offset: int) -> str:
        """An index of a window's load or a tile's store (collapse kept every axis a loop)."""
        return f"{position} + {offset}" if offset else position

    loop_loads, hoisted = [], []
    for load in nest.loads:
        if load.offsets is not None:
            followed = [(k, mark) for k, mark in enumerate(load.axes) if mark is not None]
            array = names[load.value.id]
            subs = [shifted(index[k] if mark == "i" else "0", offset)
                    for (k, mark), offset in zip(followed, load.offsets)]
        else:
            array, subs = view(load.value, load.axes, names[load.value.id])
        target = loop_loads if any(s != "0" for s in subs) else hoisted
        index_text = ", ".join(subs) if subs else "()"
        target.append(f"{p}{load.local} = {array}[{index_text}]")
    stores = []
    for store in nest.stores:
        if store.offsets is not None:              # a tile: every axis is a loop of its own
            array = names[store.value.id]
            subs = [shifted(index[k], offset) for k, offset in enumerate(store.offsets)]
        else:
            array, subs = view(store.value, ("i",) * len(nest.shape), names[store.value.id])
        stores.append(f"{array}[{', '.join(subs) if subs else '()'}] = {p}{store.local}")
    lines.extend(hoisted)
    body = loop_loads + [f"{p}{s.local} = {render(s.expr, p)}" for s in nest.body]

    if red is None:
        lines.extend(_loops(nest, index, extent, list(range(len(loops))), body + stores))
        return lines
    reductions = [red, *nest.also]          # several: an epilogue's tails, over the same axes
    out_dims = [extent[k] for k in kept]
    out_size = " * ".join(out_dims) or "1"
    out_index = ", ".join(index[k] for k in kept) or "0"
    # Per reduction: its output's name, accumulator and output cell (the first one's names
    # carry no number, so a one-reduction nest reads as it always has).
    outs = [names[r.value.id] for r in reductions]
    accs, cells = [], []
    for number, (r, out_name) in enumerate(zip(reductions, outs)):
        out_view = f"{p}{out_name}_r"
        lines.append(f"{out_view} = {view_call}({out_name}, 0, "
                     f"({', '.join(out_dims) or '1'},))")
        accs.append(Ref(f"{p}acc{_number(number)}", _accumulator_dtype(r.op, r.value.dtype)))
        cells.append(Ref(f"{out_view}[{out_index}]", r.value.dtype))
    # Parenthesised: the count is spliced into `acc / (n0 * n1)`, where `acc / n0 * n1`
    # would divide by one loop's extent and multiply by the other's.
    count = Ref("(" + (" * ".join(extent[k] for k in reduced) or "1") + ")", DType.i64)
    # The trailing reduced loops accumulate into a scalar (a register, not a store per
    # element); reduced loops outside the last kept one accumulate into the output itself.
    # A split outermost loop (`_split`) stays outer, also where no loop is kept.
    last_kept = max(kept, default=-1)
    trailing = [k for k in reduced if k > last_kept and not (k == 0 and nest.kinds[0] == "split")]
    outer = [k for k in range(len(loops)) if k not in trailing]
    static = extents(nest)[trailing[0]] if len(trailing) == 1 else None
    if len(reductions) == 1 and accs[0].dtype != red.value.dtype and red.op in ("sum", "mean") \
            and isinstance(static, int) and static >= SUM_BLOCK:
        block = _blocked_sum(index, extent, trailing[0], body + stores, red, accs[0], p)
    else:
        combines = [f"{acc.name} = {render(_combine(r.rule, acc, r.source, p))}"
                    for r, acc in zip(reductions, accs)]
        block = [*(f"{acc.name} = {literal(r.rule.identity(r.value.dtype), acc.dtype)}"
                   for r, acc in zip(reductions, accs)),
                 *_loops(nest, index, extent, trailing, body + stores + combines)]
    if not any(k in reduced for k in outer):                # each output cell in one go
        for r, acc, cell in zip(reductions, accs, cells):
            finish = _finish(r.rule, acc, count) if r.rule.finish else acc
            block.append(f"{cell.name} = {render(Cast(r.value.dtype, finish))}")
        lines.extend(_loops(nest, index, extent, outer, block) if outer else block)
        return lines
    k = f"{p}k"
    if nest.kinds[0] == "split":
        # Each thread's cells; names used inside the prange are used nowhere else, so that
        # Numba's parfor pass finds no variable shared between the threads and the caller.
        partials = []
        for number, (r, acc) in enumerate(zip(reductions, accs)):
            part_cell = Ref(f"{p}part_v{_number(number)}[{out_index}]", acc.dtype)
            block.append(f"{part_cell.name} = {render(_combine(r.rule, part_cell, acc))}")
            partials.append((_number(number), literal(r.rule.identity(r.value.dtype),
                                                      acc.dtype), acc.dtype))
        lines += _split(nest, index, extent, outer, block, out_size, out_dims, partials, p)
        for number, (r, acc, out_name) in enumerate(zip(reductions, accs, outs)):
            parts, flat = f"{p}parts{_number(number)}", f"{p}{out_name}_f"
            total = Ref(f"{p}total{_number(number)}", acc.dtype)
            other = Ref(f"{parts}[{p}q * {out_size} + {k}]", acc.dtype)
            result = _finish(r.rule, total, count) if r.rule.finish else total
            lines += [f"{flat} = {view_call}({out_name}, 0, ({out_size},))",
                      f"for {k} in range({out_size}):",
                      f"    {total.name} = {parts}[{k}]",
                      f"    for {p}q in range(1, {p}chunks):",
                      f"        {total.name} = {render(_combine(r.rule, total, other))}",
                      f"    {flat}[{k}] = {render(Cast(r.value.dtype, result))}"]
        return lines
    for r, out_name in zip(reductions, outs):
        flat = f"{p}{out_name}_f"
        lines += [f"{flat} = {view_call}({out_name}, 0, ({out_size},))",
                  f"for {k} in range({out_size}):",
                  f"    {flat}[{k}] = {literal(r.rule.identity(r.value.dtype), r.value.dtype)}"]
    for r, acc, cell in zip(reductions, accs, cells):
        block.append(f"{cell.name} = {render(Cast(r.value.dtype, _combine(r.rule, cell, acc)))}")
    lines.extend(_loops(nest, index, extent, outer, block))
    for r, out_name in zip(reductions, outs):
        if r.rule.finish:
            element = Ref(f"{p}{out_name}_f[{k}]", r.value.dtype)
            finish = _finish(r.rule, element, Cast(r.value.dtype, count))
            lines += [f"for {k} in range({out_size}):",
                      f"    {element.name} = {render(finish)}"]
    return lines


def _number(number: int) -> str:
    """The suffix of the names of a nest's reduction `number` (none for the first)."""
    return str(number) if number else ""


# Elements a blocked sum adds in its own type before it adds the block to the wider total.
SUM_BLOCK = 1024


def _blocked_sum(index: list[str], extent: list[str], loop: int, body: list[str], red,
                 acc: Ref, p: str) -> list[str]:
    """A float32 sum over one trailing loop of at least SUM_BLOCK elements (a weight's
    gradient norm), in blocks: each block of SUM_BLOCK elements summed in float32, the
    blocks' sums in the wider accumulator.  Summed in float64 element
    by element, the loop did not vectorise as well: the Adam update of a [256, 784] weight
    with its gradient norm summed in the same loop took 47 us against 30 us so, the norm's sum
    alone 8.1 against 4.3 us.  The block's float32 sum is reassociated by LLVM into vector
    lanes (fastmath), a few dozen elements a lane: about NumPy's pairwise accuracy.  Shorter
    and symbolic loops (a layer norm's row, a batch) keep the float64 sum, whose result does
    not depend on the order LLVM adds in (an inline nest and a segment agree).
    The inner loop counts from 0 to a bound (`range(lo, hi)` did not vectorise, 10x slower)."""
    dtype, zero = red.value.dtype, red.rule.identity(red.value.dtype)
    part, lo, left, j = f"{p}part", f"{p}lo", f"{p}left", f"{p}j"
    add = render(Cast(dtype, _combine(red.rule, Ref(part, dtype), red.source, p)))
    return [f"{acc.name} = {literal(zero, acc.dtype)}",
            f"for {p}b in range(({extent[loop]} + {SUM_BLOCK - 1}) // {SUM_BLOCK}):",
            f"    {part} = {literal(zero, dtype)}",
            f"    {lo} = {p}b * {SUM_BLOCK}",
            f"    {left} = {extent[loop]} - {lo}",
            f"    for {j} in range({left} if {left} < {SUM_BLOCK} else {SUM_BLOCK}):",
            f"        {index[loop]} = {lo} + {j}",
            *["        " + line for line in body],
            f"        {part} = {add}",
            f"    {acc.name} = {acc.name} + {part}"]


def _split(nest: LoopNest, index: list[str], extent: list[str], outer: list[int],
           block: list[str], out_size: str, out_dims: list[str],
           partials: list[tuple[str, str, DType]], p: str) -> list[str]:
    """A reduction whose outermost loop is reduced, in parallel (loopir.mark_parallel): that
    loop cut into contiguous chunks, each accumulating into its own partial output
    (`{p}parts`, in the accumulator's type; one array per reduction, `partials`: its names'
    suffix, identity and type), which the caller combines.  The reduced loop keeps its
    place, so each chunk is read in the serial order."""
    chunks, c, j = f"{p}chunks", f"{p}c", f"{p}j"
    first = index[outer[0]]
    # `block`: the accumulators' starts, their loops, the folds into the partial cells.  With
    # no kept loop (a reduction to one number) the accumulators span the chunk: a fold per row
    # would store and load the one cell each time, a chain that does not vectorise.
    n = len(partials)
    start, end = (block[:n], block[-n:]) if len(outer) == 1 else ([], [])
    inner = _loops(nest, index, extent, outer[1:], block[len(start):len(block) - len(end)])
    # A fixed count of chunks, not one per thread: numba.get_num_threads() in a function
    # keeps Numba from caching it (a "dynamic global").  Numba's prange hands each thread a
    # contiguous run of chunks, so each still reads its rows in order.  Eight rows a chunk at
    # least: the partial results (8 bytes each) then take at most a quarter of an f32 input.
    dims = ", ".join(out_dims) or "1"
    return [f"{chunks} = max(1, min({SPLIT_CHUNKS}, {extent[outer[0]]} // 8))",
            *(f"{p}parts{suffix} = _empty(({chunks} * {out_size},), {scalar_type(dtype)})"
              for suffix, _, dtype in partials),
            f"for {c} in prange({chunks}):",
            *(f"    {p}part_v{suffix} = _view({p}parts{suffix}, {c} * {out_size}, ({dims},))"
              for suffix, _, _ in partials),
            f"    for {j} in range({out_size}):",
            *(f"        {p}parts{suffix}[{c} * {out_size} + {j}] = {identity}"
              for suffix, identity, _ in partials),
            *["    " + line for line in start],
            (f"    for {first} in range({c} * {extent[outer[0]]} // {chunks}, "
             f"({c} + 1) * {extent[outer[0]]} // {chunks}):"),
            *["        " + line for line in inner],
            *["    " + line for line in end]]


def _combine(rule, acc: Ref, value: Expr, prefix: str = "") -> Expr:
    # The value is a kernel local (prefixed) or a literal; the accumulator is already named.
    if isinstance(value, Ref):
        value = Ref(prefix + value.name, value.dtype)
    return parse_template(rule.combine, [acc, value], {}, None)


def _finish(rule, value: Ref, count: Expr) -> Expr:
    return parse_template(rule.finish.replace("{count}", "{1}"), [value, count], {}, None)


def _loops(nest: LoopNest, index: list[str], extent: list[str], loops: list[int],
           body: list[str]) -> list[str]:
    lines, depth = [], 0
    for k in loops:
        rng = "prange" if nest.kinds[k] == "parallel" else "range"
        lines.append("    " * depth + f"for {index[k]} in {rng}({extent[k]}):")
        depth += 1
    lines.extend("    " * depth + line for line in body)
    return lines


def kernel_source(nest: LoopNest, memory=None, name: str = "kernel") -> tuple[str, list]:
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
    arrays: list = []
    for value in nest.arrays:
        key = (memory(value), tuple(value.shape))
        if key not in by_memory:
            by_memory[key] = f"a{len(arrays)}"
            arrays.append(value)
            params.append(by_memory[key])
        names[value.id] = by_memory[key]
    # Every array is a parameter: views without an owner.
    body = render_nest(nest, names, [f"n{k}" for k in range(len(nest.groups))],
                       view_call="_unowned_view")
    return "\n".join([f"def {name}({', '.join(params)}):"] + ["    " + l for l in body] +
                     ["    return 0"]), arrays


__all__ = [
    "CPU_FUNCTIONS",
    "FUNCTIONS",
    "HELPER_IMPORTS",
    "kernel_source",
    "literal",
    "render",
    "render_nest",
    "scalar_type",
]
