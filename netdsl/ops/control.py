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
and lives in passes/scan_grad.py, which installs it as this op's `vjp`.

Rules for CSE and DCE.  `merge_key`: scans over the same inputs that differ only in
`stack_carries` (the gradient's twin of the forward loop) are one loop; `widen` sets the flag on
the one that serves both, so the forward pass runs once and keeps its carries.  `prune`: a scan
keeps only the stacked ys somebody reads and the carries that are read (finally or stacked) or
that feed a kept body output, found by a fixed point over the body; sequences and constants the
kept outputs do not use are dropped (one sequence stays, to give the loop its length).  DCE
prunes the scans CSE would merge with the union of their needs, and they share the pruned body,
so they still merge.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, GraphBuilder
from ..ir.types import ShapeError, TensorType, normalize_axis
from .registry import Pruning, op


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

    def merge_key(attrs):
        """Everything but `stack_carries`, which only adds outputs; defaults filled in."""
        return (id(attrs["body"]), attrs["n_carry"], attrs["n_seq"], attrs["axis"],
                bool(attrs.get("reverse", False)), attrs.get("length"))

    def widen(attrs):
        return dict(attrs, stack_carries=True)

    def prune(node, needed, memo):
        n_carry = node.attrs["n_carry"]
        n_ys = len(node.attrs["body"].outputs) - n_carry
        carries = {i for i in range(n_carry) if i in needed or n_carry + n_ys + i in needed}
        ys = {j for j in range(n_ys) if n_carry + j in needed}
        return _pruned(node, carries, ys, memo)

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


def _pruned(node, carries: set[int], ys: set[int], memo: dict) -> Pruning | None:
    """The scan keeping `ys` and at least `carries` (see the module docstring), or None when
    it keeps everything."""
    body: Graph = node.attrs["body"]
    n_carry, n_seq = node.attrs["n_carry"], node.attrs["n_seq"]
    outputs = list(body.outputs.values())
    needed = set(carries)
    while True:                          # a kept output may read another carry: fixed point
        roots = [outputs[i] for i in sorted(needed)] + [outputs[n_carry + j] for j in ys]
        used = _used_values(body, roots)
        more = {i for i in range(n_carry) if body.inputs[i].id in used} - needed
        if not more:
            break
        needed |= more
    n_const = len(body.inputs) - n_carry - n_seq
    sequences = [j for j in range(n_seq) if body.inputs[n_carry + j].id in used]
    if n_seq and not sequences:
        sequences = [0]                  # the loop's length comes from a sequence
    constants = [m for m in range(n_const) if body.inputs[n_carry + n_seq + m].id in used]
    kept_carries, kept_ys = sorted(needed), sorted(ys)
    inputs = kept_carries + [n_carry + j for j in sequences] + \
        [n_carry + n_seq + m for m in constants]
    if len(inputs) == len(node.inputs) and len(kept_ys) == len(outputs) - n_carry:
        return None
    key = (id(body), tuple(kept_carries), tuple(sequences), tuple(constants), tuple(kept_ys))
    if key not in memo:                  # shared by the scans CSE would merge
        names = list(body.outputs)
        kept = [names[i] for i in kept_carries] + [names[n_carry + j] for j in kept_ys]
        memo[key] = Graph(name=body.name, inputs=[body.inputs[i] for i in inputs],
                          nodes=list(body.nodes),
                          outputs={name: body.outputs[name] for name in kept})
    attrs = dict(node.attrs, body=memo[key], n_carry=len(kept_carries), n_seq=len(sequences))
    n_ys = len(outputs) - n_carry
    output_map = {i: k for k, i in enumerate(kept_carries)}
    output_map.update({n_carry + j: len(kept_carries) + k for k, j in enumerate(kept_ys)})
    if node.attrs.get("stack_carries"):
        base = len(kept_carries) + len(kept_ys)
        output_map.update({n_carry + n_ys + i: base + k for k, i in enumerate(kept_carries)})
    return Pruning(inputs, attrs, output_map)


def _used_values(body: Graph, roots) -> set[int]:
    used = {v.id for v in roots}
    for node in reversed(body.nodes):
        if any(v.id in used for v in node.outputs):
            used.update(v.id for v in node.inputs)
    return used
