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

The op holds only what needs no backend and no pass.  Its `reference` loops over the steps and
runs the body through the `run_body` it is given by the interpreter that calls it
(backends/reference.py); its gradient, a reverse scan over the body's VJP, is built by autodiff
and lives in passes/scan_grad.py, which installs it as this op's `vjp`.  `merge_key` is the rule
DCE and CSE use to merge a scan with its `stack_carries` twin.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, GraphBuilder
from ..ir.types import ShapeError, TensorType, normalize_axis
from .registry import op


def split_inputs(items, n_carry: int, n_seq: int):
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
        carries, sequences, constants = split_inputs(list(types), n_carry, n_seq)
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
                  length=None, run_body):
        carries, sequences, constants = split_inputs(list(arrays), n_carry, n_seq)
        steps = sequences[0].shape[axis] if sequences else int(length)
        if steps == 0:
            raise ValueError("scan over an empty sequence (length 0)")
        ys: list[list] = [[None] * steps for _ in list(body.outputs)[n_carry:]]
        stored: list[list] = [[None] * steps for _ in carries] if stack_carries else []
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            for column, carry in zip(stored, carries):
                column[t] = carry
            feeds = carries + [np.take(s, t, axis=axis) for s in sequences] + constants
            results = run_body(body, feeds)
            carries = results[:n_carry]
            for column, y in zip(ys, results[n_carry:]):
                column[t] = y
        stacked = [np.stack(column, axis=axis) for column in ys + stored]
        return tuple(carries + stacked)

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
