"""A `row_blocks` node (passes/row_regions.py) as one parallel loop over blocks of rows.

Its body becomes a function of the generated module (compiled like a scan body: fused,
planned, with arenas of its own, and serially: no parallel kernel inside a parallel region).
Two more functions run it: `row_blocks_<k>_block(chunk, chunks, inputs..., outputs...)` calls
the body on rows lo:hi of the row inputs and outputs (C-contiguous views, so a body's output
made by one of its kernels is written straight into the caller's rows) and the whole
constants; `row_blocks_<k>` runs it for every block on Numba's threads (parallel_calls.py:
Numba's parfor passes took time with the size of a prange's body, and ~0.35 s around a call
alone).

The driver asks `row_chunks` at run time for the number of blocks: one per thread, or fewer
so that every block gets MIN_BLOCK_ROWS rows of its largest product (a [B, T, F] @ W has T of
them per batch row), where that makes two or more and rows x the body's work per row (its
products' multiply-adds and the elements its other ops write: passes/scan_rows.py
`body_row_work`) reaches the codegen's `parallel_min`; else 1, and the driver calls the block
function once, over every row.  Each thread reads every weight (passes/row_regions.py caps
them at 2^20), which the MLP's forward (1.07 M weights) paid back at every batch that splits,
against products cut by columns: two threads, batch 4 28.1 -> 26.1 us, 8 55.6 -> 42.5, 16
85.8 -> 63.5, 32 139 -> 102, 128 305 -> 267, 1024 2166 -> 1955 (benchmarks/README.md).

Each block's body arenas start empty and grow to its rows on the call (one allocation per
block and call, reused by malloc from the call before).  The numbers per row are the whole
graph's, except that BLAS may round a product of fewer rows differently (MKL picks kernels by
size), as a product cut across threads did before.
"""
from __future__ import annotations

from numba.np.ufunc.parallel import _iget_num_threads

from ...passes.row_regions import product_rows
from ...passes.scan_rows import body_row_work
from .builtins_inline import max2, min2
from .jit import njit
from .scan_rows import add_block_functions

MIN_BLOCK_ROWS = 2


@njit(cache=True)
def row_chunks(rows, least, work, minimum):
    """Blocks of rows to run a `row_blocks` body in: one per thread, or fewer so that each
    gets `least` rows or more, where that makes two or more and rows * work reaches
    `minimum`; else 1."""
    blocks = min2(_iget_num_threads(), rows // max2(least, 1))
    if blocks < 2 or rows * work < minimum:
        return 1
    return blocks


def emit_row_blocks(writer, node, ins: list[str], outs: list[str]) -> list[str]:
    """Driver lines: the blocks' count, then the parallel function over them, or its one
    block over every row (writer: numba_cpu.FunctionWriter)."""
    body = node.attrs["body"]
    function = writer.module.body_function(body, serial=True)
    name = _functions(writer, node, function)
    p = writer.ctx.fresh("rows")
    chunks = writer.ctx.use(row_chunks)
    work = body_row_work(body, writer.options.size_hint)
    # A block's products get MIN_BLOCK_ROWS rows or more ([B, T, F] @ W has T a batch row).
    least = -(-MIN_BLOCK_ROWS // product_rows(body, writer.options.size_hint))
    minimum = writer.options.parallel_min if writer.ctx.parallel_min > 0 else 1 << 62
    arrays = ", ".join(ins + outs)
    count = (f"{chunks}(np.int64({ins[0]}.shape[0]), np.int64({least}), np.int64({work}), "
             f"np.int64({minimum}))")
    return [f"{p}_k = {count}",
            f"if {p}_k > 1:",
            f"    {name}({p}_k, {p}_k, {arrays})",
            "else:",
            f"    {name}_block(0, 1, {arrays})"]


def _functions(writer, node, function: str) -> str:
    """Define the block function and the parallel function over blocks; returns the
    parallel one's name (the block's is it + `_block`)."""
    from .scan import _arenas
    module = writer.module
    n_rows = node.attrs["n_rows"]
    ins = [f"i{k}" for k in range(len(node.inputs))]
    outs = [f"o{k}" for k in range(len(node.outputs))]
    values = dict(zip(ins + outs, node.inputs + node.outputs))
    rowed = ins[:n_rows] + outs
    dtypes = [dtype for _, dtype in _arenas(writer, function)]
    arenas = [f"a{k}" for k in range(len(dtypes))]
    arguments = [_rows(name, values[name].rank) if name in rowed else name
                 for name in ins + outs]
    inner = ["rows = hi - lo"] + [f"{arena} = _empty(0, np.{dtype})"
                                  for arena, dtype in zip(arenas, dtypes)]
    call = f"{function}({', '.join(arguments + arenas)})"
    inner.append(f"{''.join(a + ', ' for a in arenas)}= {call}" if arenas else call)
    name = f"row_blocks_{module.counts.setdefault('row_blocks', 0)}"
    module.counts["row_blocks"] += 1
    add_block_functions(module, name, ", ".join(ins + outs), ins[0], [], inner)
    return name


def _rows(name: str, rank: int) -> str:
    """Rows lo:hi of a C-contiguous `name` of `rank` >= 1, as a C-contiguous view."""
    per_row = " * ".join(f"{name}.shape[{k}]" for k in range(1, rank)) or "1"
    dims = ["rows"] + [f"{name}.shape[{k}]" for k in range(1, rank)]
    return f"_view({name}, lo * ({per_row}), ({', '.join(dims)}{',' if rank == 1 else ''}))"


__all__ = ["emit_row_blocks", "row_chunks"]
