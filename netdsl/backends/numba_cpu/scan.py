"""Numba code for `scan`: the body subgraph becomes an njit function of the generated module
(compiled like any graph: fused, planned), called once per time step from a loop in the driver.

The body's arenas (one per dtype of its memory plan) are allocated once per scan: the driver
starts with empty arrays, the first call replaces them by arenas of the right size and returns
them, and every later step reuses them.  Carries ping-pong between two buffers (the body reads
one and writes the other, then they swap).  A step's slice of a sequence, or of a stacked output,
that is contiguous already (nothing before the time axis: a time-major sequence) is passed to the
body as a view; otherwise it is copied into a contiguous scratch buffer (a y out of one), through
`numba_support.take_step` / `put_step` on (P, T, Q) views of the sequences.

A stacked output that only loops read, as a sequence along the same axis (what a gradient loop
reads from the forward loop: the stored carries and the step values of
passes/scan_residuals.py), is laid out step-major in its buffer, whatever its type's axis order
([T, B, H] in memory for a [B, T, H] value): nothing else reads that buffer, and each step is
then one contiguous block, which the loop that makes it writes in place and the loop that reads
it reads in place, rows lo:hi of it too (scan_rows.py).  `step_major` decides; both sides
ask it.  The LSTM benchmark's step: 11 of its 15 copies per time step go.

Products in the body pick their BLAS thread count per call, by size (lowerings/linalg.py's
`matmul_2d`, blas_threads.py).
"""
from __future__ import annotations

from ...ir.graph import Value
from ...ir.types import dim_prod


def emit_scan(writer, node, ins: list[str], outs: list[str]) -> list[str]:
    """Driver lines for a scan node (writer: numba_cpu.FunctionWriter): the loop over its
    steps, or, for a loop whose body keeps the rows of the batch apart, a function of the
    module running blocks of its rows on Numba's threads, or one block (scan_rows.py)."""
    from .scan_rows import emit_row_scan, row_parallel
    body = node.attrs["body"]
    if row_parallel(writer, node):
        return emit_row_scan(writer, node, ins, outs,
                             writer.module.body_function(body, serial=True))
    return _loop(writer, node, ins, outs, writer.module.body_function(body))


def _loop(writer, node, ins: list[str], outs: list[str], function: str) -> list[str]:
    """The loop over the steps in the driver, calling body `function` once per step."""
    attrs = node.attrs
    body = attrs["body"]
    n_carry, n_seq, axis = attrs["n_carry"], attrs["n_seq"], attrs["axis"]
    reverse, stack = bool(attrs.get("reverse", False)), bool(attrs.get("stack_carries", False))
    ctx = writer.ctx
    take, put = ctx.use(_take()), ctx.use(_put())
    carries, sequences = node.inputs[:n_carry], node.inputs[n_carry:n_carry + n_seq]
    n_ys = len(body.outputs) - n_carry
    y_values = node.outputs[n_carry:n_carry + n_ys]
    stored = node.outputs[n_carry + n_ys:] if stack else ()
    p = ctx.fresh("scan")
    lines = [f"{p}_T = {steps_source(node, ins)}"]
    current, following = [], []
    for i, carry in enumerate(carries):
        current.append(f"{p}_c{i}")
        following.append(f"{p}_n{i}")
        lines += [f"{p}_c{i} = _empty({ins[i]}.shape, {ins[i]}.dtype)",
                  f"{p}_n{i} = _empty({ins[i]}.shape, {ins[i]}.dtype)"]
        lines += writer._copy(f"{p}_c{i}", ins[i], carry)
    arenas = _arenas(writer, function)
    for k, (arena, dtype) in enumerate(arenas):
        lines.append(f"{p}_a{k} = _empty(0, np.{dtype})")
    slices = [_step_buffer(writer, sequence, axis, ins[n_carry + j], f"{p}_x{j}", p, lines)
              for j, sequence in enumerate(sequences)]
    ys = [_step_buffer(writer, y, axis, outs[n_carry + j], f"{p}_y{j}", p, lines)
          for j, y in enumerate(y_values)]
    assign = ctx.use(_assign())
    before = []
    for i, value in enumerate(stored):          # the carry entering the step, stacked
        whole = outs[n_carry + n_ys + i]
        before.append(
            f"{assign}({_step_view(writer, value, axis, whole, p)}, {current[i]})"
            if step_major(writer, value) else
            f"{put}({_pq(writer, value, axis, current[i])}, {_ptq(writer, value, axis, whole)}, "
            f"{p}_t)")
    before += [f"{take}({_ptq(writer, sequence, axis, ins[n_carry + j])}, {p}_t, "
               f"{_pq(writer, sequence, axis, slices[j])})"
               for j, sequence in enumerate(sequences) if not _in_place(writer, sequence, axis)]
    after = [f"{put}({_pq(writer, y, axis, ys[j])}, "
             f"{_ptq(writer, y, axis, outs[n_carry + j])}, {p}_t)"
             for j, y in enumerate(y_values) if not _in_place(writer, y, axis)]
    owned = [f"{p}_a{k}" for k in range(len(arenas))]
    lines += step_loop((f"{p}_T", f"{p}_s", f"{p}_t", f"{p}_o"), reverse, before, function,
                       [current, slices, ins[n_carry + n_seq:], following, ys, owned], after)
    for i, carry in enumerate(carries):
        lines += writer._copy(outs[i], current[i], carry)
    return lines


def steps_source(node, ins: list[str]) -> str:
    """Source of scan `node`'s number of steps: its first sequence's extent along the axis
    (`ins`: the names of its inputs), or its `length`."""
    attrs = node.attrs
    if attrs["n_seq"]:
        return f"{ins[attrs['n_carry']]}.shape[{attrs['axis']}]"
    return str(int(attrs["length"]))


def step_loop(names: tuple[str, str, str, str], reverse: bool, before: list[str],
              function: str, arguments: list[list[str]], after: list[str]) -> list[str]:
    """The loop over the steps: `names` are (the count, the loop variable, the step index it
    gives, the prefix of the swap temporaries); per step the index, the lines `before` (stacked
    carries stored, sequences' steps taken), the body call with `arguments` ([current
    carries, sequence steps, constants, next carries, ys, arenas]: the arenas it returns
    replace them), the lines `after` (ys stored), then the new carries become the current."""
    count, step, index, spare = names
    current, following, owned = arguments[0], arguments[3], arguments[5]
    call = f"{function}({', '.join(a for group in arguments for a in group)})"
    loop = [f"{index} = {count} - 1 - {step}" if reverse else f"{index} = {step}", *before,
            f"{''.join(a + ', ' for a in owned)}= {call}" if owned else call, *after]
    for k, (now, then) in enumerate(zip(current, following)):
        loop += [f"{spare}{k} = {now}", f"{now} = {then}", f"{then} = {spare}{k}"]
    return [f"for {step} in range({count}):", *("    " + line for line in loop)]


def _arenas(writer, function: str) -> list[tuple[str, str]]:
    """(parameter, NumPy dtype name) of each arena the body function takes, from its `def`."""
    from ...ir.types import DType
    header = next(line for line in writer.module.definitions[function]
                  if line.startswith(f"def {function}("))
    params = header[header.index("(") + 1:header.rindex(")")].split(", ")
    return [(name, DType(name[len("arena_"):]).numpy.name)
            for name in params if name.startswith("arena_")]


def _step_buffer(writer, value, axis: int, whole: str, scratch: str, p: str,
                 lines: list[str]) -> str:
    """What the body reads or writes for one step of `value`: a view of the whole array when
    a step is one block of it (time-major, or laid out step-major), else a contiguous scratch
    buffer (its allocation appended to `lines`) that the loop copies through."""
    if _in_place(writer, value, axis):
        return _step_view(writer, value, axis, whole, p)
    lines.append(f"{scratch} = {writer.empty(_without(writer, value, axis), value.dtype)}")
    return scratch


def _time_major(stacked: Value, axis: int) -> bool:
    """A step of `stacked` is one contiguous block: nothing before the time axis."""
    return dim_prod(stacked.shape[:axis]) == 1


def step_major(writer, stacked: Value) -> bool:
    """Whether the buffer of `stacked`, a loop's stacked output, is laid out step-major: only
    loops read it, each as a sequence along that loop's axis, which is not already the first
    (see the module docstring); never a graph output."""
    loop = stacked.producer
    if loop is None or loop.op.name != "scan" or stacked.index < loop.attrs["n_carry"]:
        return False
    axis = loop.attrs["axis"]
    if _time_major(stacked, axis) or any(v is stacked for v in writer.graph.outputs.values()):
        return False
    readers = writer.consumers.get(stacked.id, [])
    for reader in readers:
        n_carry, n_seq = reader.attrs.get("n_carry", 0), reader.attrs.get("n_seq", 0)
        if reader.op.name != "scan" or reader.attrs["axis"] != axis or any(
                v is stacked and not n_carry <= k < n_carry + n_seq
                for k, v in enumerate(reader.inputs)):
            return False
    return bool(readers)


def _in_place(writer, stacked: Value, axis: int) -> bool:
    """A step of `stacked` is one contiguous block of its buffer."""
    return _time_major(stacked, axis) or step_major(writer, stacked)


def _step_view(writer, stacked: Value, axis: int, name: str, p: str) -> str:
    """Step `{p}_t` of a time-major or step-major `stacked` as a C-contiguous view."""
    step = writer.dim(dim_prod([d for k, d in enumerate(stacked.shape) if k != axis]))
    return f"_view({name}, {p}_t * {step}, {_without(writer, stacked, axis)})"


def _without(writer, value: Value, axis: int) -> str:
    dims = [writer.dim(d) for k, d in enumerate(value.shape) if k != axis]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _pq(writer, stacked: Value, axis: int, name: str) -> str:
    """A (P, Q) view of one step's value, P/Q: extents before/after the time axis."""
    before = writer.dim(dim_prod(stacked.shape[:axis]))
    after = writer.dim(dim_prod(stacked.shape[axis + 1:]))
    return f"_view({name}, 0, ({before}, {after}))"


def _ptq(writer, stacked: Value, axis: int, name: str) -> str:
    before = writer.dim(dim_prod(stacked.shape[:axis]))
    after = writer.dim(dim_prod(stacked.shape[axis + 1:]))
    return f"_view({name}, 0, ({before}, {writer.dim(stacked.shape[axis])}, {after}))"


def _take():
    from .support import take_step
    return take_step


def _put():
    from .support import put_step
    return put_step


def _assign():
    from .support import assign
    return assign


__all__ = ["emit_scan", "step_major"]
