"""CUDA code for `scan`: the body subgraph becomes a host function of the generated module (its
kernels launched like the driver's), called once per time step from a loop in the driver.

The cpu target's scheme (numba_cpu/scan.py) on device arrays: the body's arenas are device
arrays made on its first call and reused for every later step; carries ping-pong between two
device buffers; a step's slice of a time-major sequence (nothing before the time axis) is a
device view, any other is gathered into a scratch buffer (and a stacked output scattered from
one) by the strided-copy kernel.
"""
from __future__ import annotations

from ..numba_cpu.scan import _arenas, _pq, _ptq, _step_view, _time_major, _without


def emit_scan(writer, node, ins: list[str], outs: list[str]) -> list[str]:
    """Driver lines for a scan node (writer: codegen.CudaFunctionWriter)."""
    attrs = node.attrs
    body = attrs["body"]
    n_carry, n_seq, axis = attrs["n_carry"], attrs["n_seq"], attrs["axis"]
    reverse, stack = bool(attrs.get("reverse", False)), bool(attrs.get("stack_carries", False))
    function = writer.module.body_function(body)
    carries, sequences = node.inputs[:n_carry], node.inputs[n_carry:n_carry + n_seq]
    n_ys = len(body.outputs) - n_carry
    y_values = node.outputs[n_carry:n_carry + n_ys]
    stored = node.outputs[n_carry + n_ys:] if stack else ()
    p = writer.ctx.fresh("scan")
    steps = f"{ins[n_carry]}.shape[{axis}]" if n_seq else str(int(attrs["length"]))
    lines = [f"{p}_T = {steps}"]
    current, following = [], []
    for i, carry in enumerate(carries):
        current.append(f"{p}_c{i}")
        following.append(f"{p}_n{i}")
        lines += [f"{p}_c{i} = cuda.device_array_like({ins[i]})",
                  f"{p}_n{i} = cuda.device_array_like({ins[i]})"]
        lines += writer._copy(f"{p}_c{i}", ins[i], carry)
    arenas = _arenas(writer, function)
    for k, (_, dtype) in enumerate(arenas):
        lines.append(f"{p}_a{k} = cuda.device_array(0, dtype=np.{dtype})")

    def step_buffer(value, whole: str, scratch: str) -> str:
        if _time_major(value, axis):
            return _step_view(writer, value, axis, whole, p)
        lines.append(f"{scratch} = cuda.device_array({_without(writer, value, axis)}, "
                     f"dtype=np.{value.dtype.numpy.name})")
        return scratch

    slices = [step_buffer(s, ins[n_carry + j], f"{p}_x{j}") for j, s in enumerate(sequences)]
    ys = [step_buffer(y, outs[n_carry + j], f"{p}_y{j}") for j, y in enumerate(y_values)]
    loop = [f"{p}_t = {p}_T - 1 - {p}_s" if reverse else f"{p}_t = {p}_s"]
    for i, value in enumerate(stored):
        loop.append(f"_put_step({_pq(writer, value, axis, current[i])}, "
                    f"{_ptq(writer, value, axis, outs[n_carry + n_ys + i])}, {p}_t)")
    for j, sequence in enumerate(sequences):
        if not _time_major(sequence, axis):
            loop.append(f"_take_step({_ptq(writer, sequence, axis, ins[n_carry + j])}, "
                        f"{p}_t, {_pq(writer, sequence, axis, slices[j])})")
    constants = ins[n_carry + n_seq:]
    owned = [f"{p}_a{k}" for k in range(len(arenas))]
    call = f"{function}({', '.join(current + slices + constants + following + ys + owned)})"
    loop.append(f"{''.join(a + ', ' for a in owned)}= {call}" if owned else call)
    for j, y in enumerate(y_values):
        if not _time_major(y, axis):
            loop.append(f"_put_step({_pq(writer, y, axis, ys[j])}, "
                        f"{_ptq(writer, y, axis, outs[n_carry + j])}, {p}_t)")
    for i in range(n_carry):                  # the new carries become the current ones
        loop += [f"{p}_o{i} = {p}_c{i}", f"{p}_c{i} = {p}_n{i}", f"{p}_n{i} = {p}_o{i}"]
    lines += [f"for {p}_s in range({p}_T):"] + ["    " + line for line in loop]
    for i, carry in enumerate(carries):
        lines += writer._copy(outs[i], current[i], carry)
    return lines


__all__ = ["emit_scan"]
