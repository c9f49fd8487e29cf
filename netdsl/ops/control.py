"""Control flow: `scan`, a loop over a time axis with a body subgraph, carried state and stacked
outputs; its gradient is a reverse `scan` (backpropagation through time), built generically.

    carries_T..., ys..., [stacked carries...] = scan(carries_0..., sequences..., constants...,
        body=Graph, n_carry=C, n_seq=S, axis=A, reverse=False, stack_carries=False, length=None)

* inputs: C initial carries, then S sequences (the time axis at `axis`), then the constants the
  body reads (weights: lowering turns the body's free variables into these explicit inputs).
* body: a Graph with no params whose inputs are [carries..., one slice of each sequence (the
  sequence type without `axis`)..., constants...] and whose outputs (an ordered dict) are
  [new carries (same types as the carries)..., per-step ys...].
* outputs: the C final carries, then each y stacked along `axis` (a y of type f32[B, H] stacks
  to f32[B, T, H] for axis=1); with `stack_carries=True`, also each carry as it was *entering*
  each step, stacked the same way (the gradient reads these).
* `reverse=True` walks the steps from T-1 down to 0; ys are still stored at the index of the step
  that made them.  T is the extent of the sequences at `axis`, or the attribute `length` when
  there are no sequences.

The gradient (`vjp`) of a scan is a scan running the other way whose body is the VJP of the
forward body: it recomputes the step from the stored entering carry, then pulls the carry and y
cotangents back through it.  Its carries are the carry cotangents and the accumulated gradients
of the constants; its sequences are the stored carries, the forward sequences and the y
cotangents; its ys are the gradients of the sequences.  The stored carries come from a twin of
the forward node with `stack_carries=True`; CSE merges the twin into the forward node, so the
forward pass runs once and keeps its carries.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, GraphBuilder
from ..ir.types import ShapeError, TensorType, normalize_axis
from .registry import op


def _split(items, n_carry: int, n_seq: int):
    return items[:n_carry], items[n_carry:n_carry + n_seq], items[n_carry + n_seq:]


def _without_axis(t: TensorType, axis: int) -> TensorType:
    return t.with_shape(t.shape[:axis] + t.shape[axis + 1:])


def _stacked(t: TensorType, axis: int, length) -> TensorType:
    if axis > t.rank:
        raise ShapeError(f"scan: cannot stack a per-step value of type {t} along axis {axis}")
    return t.with_shape(t.shape[:axis] + (length,) + t.shape[axis:])


@op("scan")
class Scan:
    """A loop over a time axis with a body subgraph, carried state and stacked outputs."""
    traits = {"control"}

    def infer(*types, body, n_carry, n_seq, axis, reverse=False, stack_carries=False,
              length=None):
        body_in = [v.type for v in body.inputs]
        body_out = [v.type for v in body.outputs.values()]
        if len(body_in) != len(types):
            raise ShapeError(f"scan: the body takes {len(body_in)} inputs, the loop gives "
                             f"{len(types)}")
        if len(body_out) < n_carry or n_carry + n_seq > len(types):
            raise ShapeError(f"scan: {n_carry} carries and {n_seq} sequences do not fit "
                             f"{len(types)} inputs and {len(body_out)} body outputs")
        carries, sequences, constants = _split(list(types), n_carry, n_seq)
        if axis < 0:
            raise ShapeError(f"scan: the time axis must be given as a non-negative index, "
                             f"got {axis}")
        if n_seq:
            axis_dims = []
            for t in sequences:
                axis_dims.append(t.shape[normalize_axis(axis, t.rank)])
            if any(d != axis_dims[0] for d in axis_dims):
                raise ShapeError(f"scan: sequences differ in length along axis {axis}: "
                                 f"{', '.join(map(str, sequences))}")
            steps = axis_dims[0]
            slices = [_without_axis(t, normalize_axis(axis, t.rank)) for t in sequences]
        else:
            if length is None:
                raise ShapeError("scan without sequences needs a `length`")
            steps, slices = length, []
        expected = carries + slices + constants
        for position, (given, wanted) in enumerate(zip(expected, body_in)):
            if given != wanted:
                raise ShapeError(f"scan: body input {position} has type {wanted}, "
                                 f"but the loop gives {given}")
        for position, (carry, new) in enumerate(zip(carries, body_out)):
            if carry != new:
                raise ShapeError(f"scan: carry {position} enters the body as {carry} "
                                 f"but leaves it as {new}",
                                 hint="a carried value must keep its type from step to step")
        ys = [_stacked(t, axis, steps) for t in body_out[n_carry:]]
        extra = [_stacked(t, axis, steps) for t in carries] if stack_carries else []
        return tuple(carries + ys + extra)

    def reference(*arrays, body, n_carry, n_seq, axis, reverse=False, stack_carries=False,
                  length=None):
        from ..backends.reference import evaluate      # the backend imports the op registry
        carries, sequences, constants = _split(list(arrays), n_carry, n_seq)
        steps = sequences[0].shape[axis] if sequences else int(length)
        if steps == 0:
            raise ValueError("scan over an empty sequence (length 0)")
        outputs = list(body.outputs.values())
        ys: list[list] = [[None] * steps for _ in outputs[n_carry:]]
        stored: list[list] = [[None] * steps for _ in carries] if stack_carries else []
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            for column, carry in zip(stored, carries):
                column[t] = carry
            feeds = carries + [np.take(s, t, axis=axis) for s in sequences] + constants
            env = evaluate(body, {v.id: a for v, a in zip(body.inputs, feeds)})
            results = [env[v.id] for v in outputs]
            carries = results[:n_carry]
            for column, y in zip(ys, results[n_carry:]):
                column[t] = y
        stacked = [np.stack(column, axis=axis) for column in ys + stored]
        return tuple(carries + stacked)

    def vjp(b, grads, inputs, outputs, body, n_carry, n_seq, axis, reverse=False,
            stack_carries=False, length=None):
        return scan_vjp(b, grads, inputs, outputs, body=body, n_carry=n_carry, n_seq=n_seq,
                        axis=axis, reverse=reverse, stack_carries=stack_carries, length=length)

    def examples():
        from ..ir.types import DType
        f32 = DType.f32
        builder = GraphBuilder(Graph(name="step"))
        h = builder.input("h", TensorType(f32, (2, 3)))
        x = builder.input("x_t", TensorType(f32, (2, 3)))
        w = builder.input("w", TensorType(f32, (3, 3)))
        new = builder.op("tanh", builder.op("add", builder.op("matmul", h, w), x))
        builder.graph.outputs = {"h": new, "y": new}
        types = (TensorType(f32, (2, 3)), TensorType(f32, (2, 4, 3)), TensorType(f32, (3, 3)))
        return [(types, {"body": builder.graph, "n_carry": 1, "n_seq": 1, "axis": 1,
                         "reverse": False})]


def scan(b: GraphBuilder, body: Graph, carries, sequences, constants, *, axis: int,
         reverse: bool = False, length: int | None = None):
    """Emit a scan node; returns (final carries, stacked ys) as two lists."""
    results = b.op("scan", *carries, *sequences, *constants, body=body, n_carry=len(carries),
                   n_seq=len(sequences), axis=axis, reverse=reverse,
                   **({"length": length} if length is not None else {}))
    results = results if isinstance(results, tuple) else (results,)
    return list(results[:len(carries)]), list(results[len(carries):])


def merge_key(attrs: dict) -> tuple:
    """What makes two scans over the same inputs compute the same thing (for CSE): everything
    but `stack_carries`, which only adds outputs; defaults are filled in."""
    return (id(attrs["body"]), attrs["n_carry"], attrs["n_seq"], attrs["axis"],
            bool(attrs.get("reverse", False)), attrs.get("length"))


def scan_vjp(b: GraphBuilder, grads, inputs, outputs, *, body: Graph, n_carry: int, n_seq: int,
             axis: int, reverse: bool, stack_carries: bool, length):
    """The gradient of a scan node: a scan running the other way over the body's VJP."""
    from ..passes.autodiff import vjp, zeros_like
    from ..passes.rewrite import as_values, inline_graph

    carries, sequences, constants = _split(list(inputs), n_carry, n_seq)
    body_outputs = list(body.outputs.values())
    n_ys = len(body_outputs) - n_carry
    carry_grads = list(grads[:n_carry])
    y_grads = list(grads[n_carry:n_carry + n_ys])
    stored_grads = list(grads[n_carry + n_ys:]) if stack_carries else [None] * n_carry
    if all(g is None for g in grads):
        return [None] * len(inputs)

    # The carry entering every step, stored by the forward pass (see the module docstring).
    if stack_carries:
        stored = list(outputs[n_carry + n_ys:])
    else:
        twin = as_values(b.op("scan", *inputs, body=body, n_carry=n_carry, n_seq=n_seq, axis=axis,
                              reverse=reverse, stack_carries=True,
                              **({"length": length} if length is not None else {})))
        stored = list(twin[n_carry + n_ys:])

    # Only floating-point values have gradients; cotangents that are None are left out.
    f_carry = [i for i, v in enumerate(carries) if v.dtype.is_float]
    f_seq = [j for j, v in enumerate(sequences) if v.dtype.is_float]
    f_const = [m for m, v in enumerate(constants) if v.dtype.is_float]
    y_used = [j for j, g in enumerate(y_grads) if g is not None]
    s_used = [i for i in f_carry if stored_grads[i] is not None]

    gb = GraphBuilder(Graph(name=f"{body.name}.vjp"))
    gb.span, gb.scope = b.span, b.scope
    d_carry = [gb.input(f"d_carry{i}", carries[i].type) for i in f_carry]
    d_const = [gb.input(f"d_const{m}", constants[m].type) for m in f_const]
    carry_t = [gb.input(f"carry{i}", body.inputs[i].type) for i in range(n_carry)]
    seq_t = [gb.input(f"seq{j}", body.inputs[n_carry + j].type) for j in range(n_seq)]
    d_y_t = [gb.input(f"d_y{j}", body_outputs[n_carry + j].type) for j in y_used]
    d_stored_t = [gb.input(f"d_stored{i}", carries[i].type) for i in s_used]
    const_in = [gb.input(f"const{m}", v.type) for m, v in enumerate(constants)]

    # Recompute the step, then pull the cotangents back through it.
    step_outputs = inline_graph(gb, body, carry_t + seq_t + const_in)
    cotangents = [None] * len(step_outputs)
    for i, d in zip(f_carry, d_carry):
        cotangents[i] = d
    for j, d in zip(y_used, d_y_t):
        cotangents[n_carry + j] = d
    wrt = [carry_t[i] for i in f_carry] + [seq_t[j] for j in f_seq] + \
        [const_in[m] for m in f_const]
    pulled = vjp(gb, step_outputs, cotangents, wrt)
    g_carry = pulled[:len(f_carry)]
    g_seq = pulled[len(f_carry):len(f_carry) + len(f_seq)]
    g_const = pulled[len(f_carry) + len(f_seq):]

    new_outputs = {}
    for i, g in zip(f_carry, g_carry):
        if i in s_used:          # a stored carry's own cotangent adds to its step's carry
            extra = d_stored_t[s_used.index(i)]
            g = extra if g is None else gb.op("add", g, extra)
        new_outputs[f"d_carry{i}"] = g if g is not None else zeros_like(gb, carry_t[i])
    for m, acc, g in zip(f_const, d_const, g_const):
        new_outputs[f"d_const{m}"] = acc if g is None else gb.op("add", acc, g)
    for j, g in zip(f_seq, g_seq):
        new_outputs[f"d_seq{j}"] = g if g is not None else zeros_like(gb, seq_t[j])
    gb.graph.outputs = new_outputs

    init = [carry_grads[i] if carry_grads[i] is not None else zeros_like(b, outputs[i])
            for i in f_carry] + [zeros_like(b, constants[m]) for m in f_const]
    seqs = stored + sequences + [y_grads[j] for j in y_used] + [stored_grads[i] for i in s_used]
    results = as_values(b.op("scan", *init, *seqs, *constants, body=gb.graph,
                             n_carry=len(init), n_seq=len(seqs), axis=axis,
                             reverse=not reverse,
                             **({"length": length} if not seqs else {})))
    final_d_carry = results[:len(f_carry)]
    final_d_const = results[len(f_carry):len(init)]
    d_sequences = results[len(init):]

    gradients: list = [None] * len(inputs)
    for i, g in zip(f_carry, final_d_carry):
        gradients[i] = g
    for j, g in zip(f_seq, d_sequences):
        gradients[n_carry + j] = g
    for m, g in zip(f_const, final_d_const):
        gradients[n_carry + n_seq + m] = g
    return gradients
