"""Which `scan` loops treat the rows of their batch independently, and how much work a row is.

A recurrent layer's loop carries a [B, H] state and reads a [B, T, F] sequence; each step's
body (gates, products with the weights, activations) computes row b of its outputs from row b
of its inputs and the loop's constants alone.  Such a loop can run as several loops over
blocks of rows, one per thread, each over every step, with no exchange between them: the
CPU target does that (backends/numba_cpu/scan_rows.py), where a loop over steps leaves no
other parallelism (a step of the LSTM benchmark is a [32, 128] @ [128, 512] product and 4k
gate values, far too small to split across threads, 64 times per training step).

`rows_independent(node)` proves it, or says no, by following every value of the body from its
inputs.  A value is ROW (its axis 0 is the batch: row b depends on row b of the row inputs
only) or FREE (it depends on the loop's constants only, and is the same for every block).
The carries and the sequences' slices are ROW, with axis 0 the batch dim `d` (the first
carry's), which must be symbolic and appear nowhere else in the body: a block's body takes it
from its inputs' shapes, as its rows (a static batch is compiled into the body's loops); the
constants are FREE.  An op with only FREE inputs gives FREE (random ops
excepted: a block would draw other numbers).  An op with a ROW input gives ROW by its rule:

* elementwise ops and `cast`: every ROW input of the output's rank, every FREE input of lower
  rank (broadcast over the trailing axes) or with axis 0 of extent 1;
* `matmul`: a ROW `a` (not transposed if 2-D) with a FREE 2-D `b`, or ROW `a` and `b` of one
  rank >= 3 (the batch axes lead);
* `conv2d` of a ROW image batch (NCHW) by FREE filters, `max_pool2d` and `avg_pool2d` of ROW
  images;
* `slice` (and its gradient), `concat`, `split`, `log_softmax`, `expand_dims`, `squeeze`,
  `transpose`, the reductions: only where axis 0 is left as it is (every output's axis 0 `d`); `reshape` and `broadcast_to` where axis 0 stays `d`;
* anything else (take, whose index errors cannot leave a thread; the gradients of pooling
  and convolutions, random ops, nested scans, cumulative sums over axis 0, ...): not proven,
  the loop stays serial.
Every output of the body must be ROW.  The sequences' time axis must not be axis 0 (a
time-major sequence keeps rows apart too, but no loop in netdsl lowers to one today).

`row_work(node, size_hint)` is a step's work per row (multiply-adds of its products and
convolutions plus the elements its other ops write, the body's other symbolic dims at
`size_hint`): the target splits a loop only where rows x steps x that reaches its parallel
threshold.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node, Value
from ..ir.types import Sym, evaluate_dim, normalize_axis

ROW, FREE = "row", "free"
_REDUCTIONS = {"sum", "mean", "max", "min", "logsumexp"}


def rows_independent(node: Node) -> bool:
    """Whether scan `node` computes each row of its batch from that row alone (see above)."""
    attrs = node.attrs
    body: Graph = attrs["body"]
    n_carry, n_seq, axis = attrs["n_carry"], attrs["n_seq"], attrs["axis"]
    if axis < 1 or n_carry + n_seq == 0:
        return False
    row_inputs = body.inputs[:n_carry + n_seq]
    if any(v.rank == 0 for v in row_inputs):
        return False
    batch = row_inputs[0].shape[0]
    if not isinstance(batch, Sym) or any(v.shape[0] != batch for v in row_inputs):
        return False
    kinds: dict[int, str] = {v.id: ROW for v in row_inputs}
    kinds.update({v.id: FREE for v in body.inputs[n_carry + n_seq:]})
    for inner in body.nodes:
        kind = row_kind(inner, [kinds[v.id] for v in inner.inputs], batch)
        if kind is None:
            return False
        kinds.update({out.id: kind for out in inner.outputs})
    values = list(body.inputs) + [v for inner in body.nodes for v in inner.outputs]
    return all(kinds.get(v.id) == ROW and v.rank >= 1 and v.shape[0] == batch
               for v in body.outputs.values()) and \
        all(batch_only_leads(v, kinds[v.id], batch) for v in values)


def batch_only_leads(value: Value, kind: str, batch: Sym) -> bool:
    """The batch's symbols appear in `value`'s shape only as the leading dim of a ROW value:
    a block's body reads the batch from its inputs' shapes (its rows), so a dim that is the
    batch anywhere else (a constant's [H, B], a [B, B] product) would be the block's too."""
    names = set(batch.symbols)
    for axis, d in enumerate(value.shape):
        if isinstance(d, Sym) and names & set(d.symbols) and \
                not (axis == 0 and kind == ROW and d == batch):
            return False
    return True


def row_kind(node: Node, kinds: list[str], batch) -> str | None:
    """ROW, FREE, or None where `node` would mix rows (or it is not known not to)."""
    op = node.op
    if op.has("random") or op.name == "scan" and ROW in kinds:
        return None
    if ROW not in kinds:
        return FREE
    out = node.outputs[0]
    if any(v.rank == 0 or v.shape[0] != batch for v in node.outputs):
        return None
    ins = node.inputs
    rows = [v for v, kind in zip(ins, kinds) if kind == ROW]
    if op.is_elementwise or op.name == "cast":
        if any(v.rank != out.rank for v in rows):
            return None
        free = [v for v, kind in zip(ins, kinds) if kind == FREE]
        return ROW if all(v.rank < out.rank or v.shape[0] == 1 for v in free) else None
    attrs = node.attrs
    if op.name == "matmul":
        a, b = ins
        ka, kb = kinds
        if ka != ROW:
            return None
        if kb == FREE:
            return ROW if b.rank == 2 and (a.rank >= 3 or not attrs.get("transpose_a")) \
                else None
        return ROW if a.rank == b.rank >= 3 else None
    if op.name in ("slice", "slice_grad"):
        first = [tuple(attrs.get(key, ()))[:1] for key in ("starts", "stops", "steps")]
        untouched = all(not part or part[0] is None for part in first)
        return ROW if untouched and 0 not in tuple(attrs.get("squeeze", ())) else None
    if op.name in ("concat", "split", "log_softmax", "argmax") or op.name in _REDUCTIONS:
        return ROW if 0 not in _axes(node, ins[0].rank) else None
    if op.name in ("expand_dims", "squeeze"):
        rank = out.rank if op.name == "expand_dims" else ins[0].rank
        return ROW if 0 not in _axes(node, rank) else None
    if op.name == "transpose":
        perm = attrs.get("perm")
        return ROW if perm is not None and tuple(perm)[0] == 0 else None
    if op.name == "conv2d":                 # NCHW: image n of the output from image n alone
        return ROW if kinds == [ROW, FREE] else None
    if op.name in ("max_pool2d", "avg_pool2d"):
        return ROW
    if op.name in ("reshape", "broadcast_to"):
        source = ins[0]
        return ROW if kinds[0] == ROW and source.rank >= 1 and source.shape[0] == batch \
            and all(kind == FREE for kind in kinds[1:]) else None
    return None


def _axes(node: Node, rank: int) -> set[int]:
    """The axes an op works along, non-negative (each op's default where its attribute is
    absent: every axis for a reduction, the last for log_softmax and argmax, 0 for concat and
    split)."""
    attrs, name = node.attrs, node.op.name
    if name in _REDUCTIONS or name in ("expand_dims", "squeeze"):
        axes = attrs.get("axes")
        if axes is None:
            return set(range(rank))
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
    else:
        axes = (attrs.get("axis", 0 if name in ("concat", "split") else -1),)
    return {normalize_axis(int(axis), rank) for axis in axes}


def row_work(node: Node, size_hint: int = 128) -> int:
    """A step's work per row of scan `node`'s body: multiply-adds of its products and
    convolutions plus the elements its ops write, per row of the batch (other symbolic dims
    at `size_hint`)."""
    return body_row_work(node.attrs["body"], size_hint)


def body_row_work(body: Graph, size_hint: int = 128) -> int:
    """`row_work` of a body graph whose values' axis 0 is the batch (a `row_blocks` body)."""
    total = 0
    for inner in body.nodes:
        for out in inner.outputs:
            total += _per_row(out, size_hint)
        if inner.op.name == "matmul":
            a, _ = inner.inputs
            inner_dim = a.shape[-2] if inner.attrs.get("transpose_a") and a.rank >= 2 \
                else a.shape[-1]
            total += _per_row(inner.outputs[0], size_hint) * _at_hint(inner_dim, size_hint)
        elif inner.op.name == "conv2d":     # each output element: C/groups * kh * kw
            total += _per_row(inner.outputs[0], size_hint) * _per_row(inner.inputs[1],
                                                                    size_hint)
    return max(total, 1)


def _per_row(value: Value, size_hint: int) -> int:
    count = 1
    for d in value.shape[1:]:
        count *= _at_hint(d, size_hint)
    return count


def _at_hint(d, size_hint: int) -> int:
    if isinstance(d, int):
        return d
    return evaluate_dim(d, {name: size_hint for name in d.symbols}) if isinstance(d, Sym) \
        else size_hint


__all__ = ["FREE", "ROW", "batch_only_leads", "body_row_work", "row_kind", "row_work", "rows_independent"]
