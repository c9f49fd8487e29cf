"""A `scan` whose body keeps the rows of its batch apart, run as one loop per block of rows,
the blocks in parallel on Numba's threads.

Which loops qualify is passes/scan_rows.py's `rows_independent` (a recurrent layer's loop and
its gradient's do).  Each such scan gets two functions in the generated module:
`scan_rows_<k>_block(chunk, chunks, steps, inputs..., outputs...)` runs every step of the loop
for one block of rows alone, with carries, step buffers and body arenas of its own, reading
its rows of the sequences and writing its rows of the outputs; `scan_rows_<k>` runs it for
every block on Numba's threads (parallel_calls.py: Numba's parfor passes took time with the
size of a prange's body, 2.3 s for the LSTM's loop written inside one).  The threads meet
once per loop instead of once per step (a step of the LSTM benchmark is a [32, 128] @
[128, 512] product and 4k gate values, 30-60 us: too little to split across threads 64 times
a training step).

The driver asks `scan_chunks` at run time for the number of blocks: the threads, at most one
per row, where rows x steps x the body's work per row (passes/scan_rows.py `row_work`)
reaches 4 x the codegen's `parallel_min` (2^22 by default, as for a parallel product); else
1, and the driver calls the block function once, over every row, so the loop is compiled
once.  Both paths call one body function, compiled serially (no parallel kernel inside a
parallel region: Numba's workqueue layer aborts on one), so a large product inside a loop of
a few rows no longer splits across threads: the batch does.

The numbers per row are the serial loop's, except that BLAS may round a product of fewer rows
differently (MKL picks kernels by size): a run repeats its numbers at a given thread count.
"""
from __future__ import annotations

from numba.np.ufunc.parallel import _iget_num_threads

from ...ir.graph import Value
from ...passes.scan_rows import row_work, rows_independent
from .builtins_inline import min2
from .function import INTERNAL
from .jit import njit

_BLOCK_DECORATOR = f"@njit(cache=True, fastmath=_FASTMATH, error_model='numpy', {INTERNAL})"


@njit(cache=True)
def scan_chunks(rows, steps, work, minimum):
    """Blocks of rows to run a row-independent scan in: one per thread (at most one per row)
    where rows * steps * work reaches `minimum`, else 1."""
    threads = _iget_num_threads()
    if threads < 2 or rows < 2 or rows * steps * work < minimum:
        return 1
    return min2(threads, rows)


def row_parallel(writer, node) -> bool:
    """Whether to emit scan `node` with a parallel path over blocks of rows."""
    return writer.options.parallel_min > 0 and writer.ctx.parallel_min > 0 and \
        rows_independent(node)


def emit_row_scan(writer, node, ins: list[str], outs: list[str], function: str) -> list[str]:
    """Driver lines: the blocks' count, then the parallel function over them, or its one
    block over every row.  `function`: the body function (compiled serially)."""
    ctx = writer.ctx
    p = ctx.fresh("rows")
    name = _row_function(writer, node, function)
    from .scan import steps_source
    steps = steps_source(node, ins)
    rows = writer.dim(node.inputs[0].shape[0])
    work = row_work(node, writer.options.size_hint)
    minimum = 4 * writer.options.parallel_min
    chunks = ctx.use(scan_chunks)
    # A rank-0 array goes in as a one-element view (see _row_function).
    arrays = ", ".join(f"_view({arg}, 0, (1,))" if value.rank == 0 else arg
                       for arg, value in zip(ins + outs, node.inputs + node.outputs))
    return [f"{p}_k = {chunks}(np.int64({rows}), np.int64({steps}), np.int64({work}), "
            f"np.int64({minimum}))",
            f"if {p}_k > 1:",
            f"    {name}({p}_k, {p}_k, np.int64({steps}), {arrays})",
            "else:",
            f"    {name}_block(0, 1, np.int64({steps}), {arrays})"]


def _row_function(writer, node, function: str) -> str:
    """Define the module's block function and the parallel function over its blocks for scan
    `node`; returns the parallel one's name (the block's is it + `_block`)."""
    from .scan import _arenas, _assign, _put, _take, step_loop, step_major
    module, ctx = writer.module, writer.ctx
    attrs = node.attrs
    body = attrs["body"]
    n_carry, n_seq, axis = attrs["n_carry"], attrs["n_seq"], attrs["axis"]
    reverse, stack = bool(attrs.get("reverse", False)), bool(attrs.get("stack_carries", False))
    n_ys = len(body.outputs) - n_carry
    take, put = ctx.use(_take()), ctx.use(_put())
    ins = [f"i{k}" for k in range(len(node.inputs))]
    outs = [f"o{k}" for k in range(len(node.outputs))]
    carries, sequences = ins[:n_carry], ins[n_carry:n_carry + n_seq]
    constants = ins[n_carry + n_seq:]
    ys = outs[n_carry:n_carry + n_ys]
    stored = outs[n_carry + n_ys:] if stack else []
    values = dict(zip(ins + outs, node.inputs + node.outputs))
    inner = ["rows = hi - lo"]
    current, following = [], []
    for k, carry in enumerate(carries):
        value = values[carry]
        inner += [f"c{k} = {writer.empty(_row_shape(carry, value, None), value.dtype)}",
                  f"n{k} = _empty(c{k}.shape, c{k}.dtype)"]
        inner += _copy(f"c{k}", _rows(carry, value), _per_row(carry, value), f"r{k}")
        current.append(f"c{k}")
        following.append(f"n{k}")
    # A step's buffers: its slice of each sequence (x), and of each stacked y; a view of rows
    # lo:hi of the step where the stacked array is laid out step-major (scan.py `step_major`).
    in_place = {name for name in sequences + ys + stored if step_major(writer, values[name])}
    slices = _step_buffers("x", sequences, values, axis, inner, in_place)
    step_ys = _step_buffers("y", ys, values, axis, inner, in_place)
    owned = []
    for k, (_, dtype) in enumerate(_arenas(writer, function)):
        inner.append(f"a{k} = _empty(0, np.{dtype})")
        owned.append(f"a{k}")
    assign = ctx.use(_assign())
    before = [f"{assign}({_step_rows(out, values[out], axis)}, {current[i]})" if out in in_place
              else f"{put}({_pq(current[i], out, values[out], axis)}, "
              f"{_ptq(out, values[out], axis)}, t)" for i, out in enumerate(stored)]
    before += [f"{take}({_ptq(sequence, values[sequence], axis)}, t, "
               f"{_pq(slices[j], sequence, values[sequence], axis)})"
               for j, sequence in enumerate(sequences) if sequence not in in_place]
    after = [f"{put}({_pq(step_ys[j], y, values[y], axis)}, {_ptq(y, values[y], axis)}, t)"
             for j, y in enumerate(ys) if y not in in_place]
    inner += step_loop(("steps", "s", "t", "w"), reverse, before, function,
                       [current, slices, constants, following, step_ys, owned], after)
    for k, carry in enumerate(carries):
        out = outs[k]
        inner += _copy(_rows(out, values[out]), f"c{k}", _per_row(out, values[out]), f"q{k}",
                       into=True)
    name = f"scan_rows_{module.counts.setdefault('row_scans', 0)}"
    module.counts["row_scans"] += 1
    # A rank-0 array (a scalar the body captures) is passed as a one-element 1-D view and
    # made 0-d again inside the block: Numba's parfor turns a 0-d array that a prange body
    # reads into a scalar, and the block, typed for an array, then failed to compile.
    scalars = [arg for arg in ins + outs if values[arg].rank == 0]
    arrays = ", ".join(f"{arg}_1" if arg in scalars else arg for arg in ins + outs)
    unwrap = [f"    {arg} = _view({arg}_1, 0, ())" for arg in scalars]
    # One block in a serial function, run per block on Numba's threads: Numba's parfor
    # passes took time with the size of a prange's body (2.3 s for the LSTM's loop written
    # inside it), and ~0.35 s around the call alone.
    add_block_functions(module, name, f"steps, {arrays}", ins[0], unwrap, inner)
    return name


def add_block_functions(module, name: str, arguments: str, rows: str, prologue: list[str],
                        inner: list[str]) -> None:
    """Define `<name>_block(chunk, chunks, <arguments>)`, running `inner` (lines) on rows
    lo:hi of block `chunk` of `chunks` over the rows of argument `rows` (after the
    `prologue` lines), and `<name>(count, chunks, <arguments>)`, which runs the block
    function for chunk = 0 .. count - 1 on Numba's threads (parallel_calls.py)."""
    module.add_function(f"{name}_block", [
        _BLOCK_DECORATOR, f"def {name}_block(chunk, chunks, {arguments}):", *prologue,
        f"    total = {rows}.shape[0]",
        "    size = (total + chunks - 1) // chunks",
        "    lo = chunk * size",
        "    hi = _min2(total, lo + size)",
        "    if lo < hi:", *("        " + line for line in inner),
        "    return 0"])
    module.add_parallel(name, f"{name}_block")


def _step_buffers(prefix: str, names: list[str], values: dict, axis: int,
                  inner: list[str], in_place: set[str]) -> list[str]:
    """Allocate (lines appended to `inner`) one step of `rows` rows of each stacked array in
    `names`, without its time axis, or take a view of them for those `in_place`; returns the
    buffers' names or the views' source."""
    buffers = []
    for j, name in enumerate(names):
        value = values[name]
        if name in in_place:
            buffers.append(_step_rows(name, value, axis))
            continue
        inner.append(f"{prefix}{j} = _empty({_row_shape(name, value, axis)}, "
                     f"np.{value.dtype.numpy.name})")
        buffers.append(f"{prefix}{j}")
    return buffers


def _step_rows(name: str, value: Value, axis: int) -> str:
    """Rows lo:hi of step t of a step-major stacked `name`, a C-contiguous view."""
    per_row = _extent(name, [k for k in range(1, value.rank) if k != axis])
    return (f"_view({name}, t * {name}.shape[0] * {per_row} + lo * {per_row}, "
            f"{_row_shape(name, value, axis)})")


def _extent(name: str, axes) -> str:
    """The product of `name`'s extents along `axes` (source), 1 for none."""
    return " * ".join(f"{name}.shape[{k}]" for k in axes) or "1"


def _per_row(name: str, value: Value) -> str:
    return f"({_extent(name, range(1, value.rank))})"


def _rows(name: str, value: Value) -> str:
    """Rows lo:hi of `name` as a flat C-contiguous view."""
    per_row = _per_row(name, value)
    return f"_view({name}, lo * {per_row}, (rows * {per_row},))"


def _row_shape(name: str, value: Value, axis: int | None) -> str:
    """The shape of `rows` rows of `name` (without its time `axis`, when given)."""
    dims = ["rows"] + [f"{name}.shape[{k}]" for k in range(1, value.rank) if k != axis]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _ptq(name: str, value: Value, axis: int) -> str:
    """Rows lo:hi of a stacked `name` as a (P, T, Q) view: P rows x the axes before time."""
    per_row = _per_row(name, value)
    before, after = _extent(name, range(1, axis)), _extent(name, range(axis + 1, value.rank))
    return (f"_view({name}, lo * {per_row}, (rows * ({before}), {name}.shape[{axis}], "
            f"({after})))")


def _pq(buffer: str, name: str, value: Value, axis: int) -> str:
    """A step's buffer of rows of stacked `name` as a (P, Q) view."""
    before, after = _extent(name, range(1, axis)), _extent(name, range(axis + 1, value.rank))
    return f"_view({buffer}, 0, (rows * ({before}), ({after})))"


def _copy(target: str, source: str, size: str, prefix: str, into: bool = False) -> list[str]:
    """Copy `rows * size` elements between a flat rows view and a block's own buffer (`into`:
    from the buffer `source` into the rows view `target`), through views named `prefix`."""
    flat = f"_view({source if into else target}, 0, (rows * {size},))"
    to, read = (target, flat) if into else (flat, source)
    return [f"{prefix}_t = {to}", f"{prefix}_s = {read}",
            f"for {prefix} in range(rows * {size}):",
            f"    {prefix}_t[{prefix}] = {prefix}_s[{prefix}]"]


__all__ = ["add_block_functions", "emit_row_scan", "row_parallel", "scan_chunks"]
