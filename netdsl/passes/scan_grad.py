"""The gradient of `scan` (backpropagation through time): a scan running the other way.

Its body is the VJP of the forward body: it recomputes the step from the stored entering carry,
then pulls the carry and y cotangents back through it.  Its carries are the carry cotangents
and the accumulated gradients of the constants; its sequences are the stored carries, the
forward sequences and the y cotangents; its ys are the gradients of the sequences.

A constant's per-step gradient that is a product contracting a batch axis (`Aᵀ @ B`, the
gradient of a weight used as `h @ W`) or a sum over batch axes (a bias) is not accumulated in
a carry: its factors leave the loop as ys (or are already sequences of it: the stored carries)
and one product over all T * N rows, or one sum, after the loop makes the gradient, as PyTorch
does.  Each step then does one small product less, and no [P, Q] accumulator is read and
written per step.  The stored
carries come from a twin of the forward node with `stack_carries=True`; CSE merges the twin into
the forward node (ops/control.py's `merge_key`), so the forward pass runs once and keeps its
carries.

Why here and not in ops/control.py: building it differentiates the body, which is the autodiff
pass's work, and ops import no pass.  `gradient_rule("scan")` installs it as the op's `vjp`
when this module is imported; netdsl/passes/__init__.py imports it, so any use of autodiff sees
it.
"""
from __future__ import annotations

from ..ir.graph import Graph, GraphBuilder
from ..ir.types import normalize_axis
from ..ops.control import split_inputs
from ..ops.registry import gradient_rule
from .autodiff import vjp, zeros_like
from .rewrite import as_values, inline_graph


@gradient_rule("scan")
def scan_vjp(b: GraphBuilder, grads, inputs, outputs, *, body: Graph, n_carry: int, n_seq: int,
             axis: int, reverse: bool = False, stack_carries: bool = False, length=None):
    """The gradient of a scan node: a scan running the other way over the body's VJP."""

    carries, sequences, constants = split_inputs(list(inputs), n_carry, n_seq)
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
    seqs = stored + sequences + [y_grads[j] for j in y_used] + [stored_grads[i] for i in s_used]
    seq_inputs = carry_t + seq_t + d_y_t + d_stored_t            # their slices, in that order
    hoisted, remainder = {}, {}
    for m, g in zip(f_const, g_const):
        hoisted[m], remainder[m] = _hoist_terms(gb, g, axis, d_const)
    carried = [m for m in f_const if remainder[m] is not None]
    for m, acc in zip(f_const, d_const):
        if m in carried:
            new_outputs[f"d_const{m}"] = gb.op("add", acc, remainder[m])
        else:                        # nothing left to accumulate: no carry for it
            gb.graph.inputs.remove(acc)
    for j, g in zip(f_seq, g_seq):
        new_outputs[f"d_seq{j}"] = g if g is not None else zeros_like(gb, seq_t[j])
    # Factors of hoisted terms that are not sequences of the loop already become extra ys.
    n_seq_ys = len(new_outputs) - len(f_carry) - len(carried)
    factors = {}                     # body value id -> position among the loop's ys, or input
    for k, value in enumerate(list(new_outputs.values())[len(f_carry) + len(carried):]):
        factors.setdefault(value.id, ("y", k))
    for k, value in enumerate(seq_inputs):
        factors[value.id] = ("seq", k)
    for terms in hoisted.values():
        for _, operands, _ in terms:
            for value in operands:
                if value.id not in factors:
                    factors[value.id] = ("y", len(new_outputs) - len(f_carry) - len(carried))
                    new_outputs[f"factor{len(factors)}"] = value
    gb.graph.outputs = new_outputs

    init = [carry_grads[i] if carry_grads[i] is not None else zeros_like(b, outputs[i])
            for i in f_carry] + [zeros_like(b, constants[m]) for m in carried]
    results = as_values(b.op("scan", *init, *seqs, *constants, body=gb.graph,
                             n_carry=len(init), n_seq=len(seqs), axis=axis,
                             reverse=not reverse,
                             **({"length": length} if not seqs else {})))
    final_d_carry = results[:len(f_carry)]
    final_d_const = dict(zip(carried, results[len(f_carry):len(init)]))
    d_sequences = results[len(init):len(init) + n_seq_ys]

    def stacked(value):
        where, k = factors[value.id]
        return seqs[k] if where == "seq" else results[len(init) + k]

    gradients: list = [None] * len(inputs)
    for i, g in zip(f_carry, final_d_carry):
        gradients[i] = g
    for j, g in zip(f_seq, d_sequences):
        gradients[n_carry + j] = g
    for m in f_const:
        total = final_d_const.get(m)
        for term in hoisted[m]:
            g = _contract_over_time(b, term, [stacked(v) for v in term[1]], axis)
            total = g if total is None else b.op("add", total, g)
        gradients[n_carry + n_seq + m] = total
    return gradients


def _hoist_terms(gb: GraphBuilder, g, axis: int, accumulators) -> tuple[list, object]:
    """Split a constant's per-step gradient `g` (a body value, or None) into the terms that can
    be summed over time after the loop and the rest: ([(kind, operands, attrs)...], the rest
    as one value or None).  Kinds: "matmul" (a 2-D Aᵀ @ B, contracting the rows of two step
    values), "sum" (a sum over axes, without keepdims).  A term reading an accumulator of the
    loop stays in it."""
    if g is None:
        return [], None
    blocked = {v.id for v in accumulators}
    hoisted, rest = [], []
    pending = [g]
    while pending:
        term = pending.pop()
        node = term.producer
        name = node.op.name if node is not None else None
        if name == "add" and all(v.type == term.type for v in node.inputs):
            pending.extend(reversed(node.inputs))
        elif _row_product(node) and axis <= 1 and not _reads(term, blocked):
            hoisted.append(("matmul", node.inputs, {}))
        elif name == "transpose" and tuple(node.attrs.get("perm", ())) == (1, 0) and \
                _row_product(node.inputs[0].producer) and axis <= 1 and \
                not _reads(term, blocked):       # (Aᵀ B)ᵀ = Bᵀ A
            hoisted.append(("matmul", node.inputs[0].producer.inputs[::-1], {}))
        elif name == "sum" and not node.attrs.get("keepdims") and \
                node.attrs.get("axes") is not None and not _reads(term, blocked):
            rank = node.inputs[0].rank
            axes = tuple(normalize_axis(a, rank) for a in node.attrs["axes"])
            hoisted.append(("sum", node.inputs, {"axes": axes}))
        else:
            rest.append(term)
    remainder = rest[0] if rest else None
    for term in rest[1:]:
        remainder = gb.op("add", remainder, term)
    return hoisted, remainder


def _row_product(node) -> bool:
    """`node` is Aᵀ @ B of two matrices (a sum over their rows) with static column counts."""
    return node is not None and node.op.name == "matmul" and \
        bool(node.attrs.get("transpose_a")) and not node.attrs.get("transpose_b") and \
        all(v.rank == 2 and isinstance(v.shape[1], int) for v in node.inputs)


def _reads(value, blocked: set[int]) -> bool:
    """Whether `value` depends on any of the values in `blocked` (ids)."""
    seen, stack = set(), [value]
    while stack:
        v = stack.pop()
        if v.id in blocked:
            return True
        if v.id in seen or v.producer is None:
            continue
        seen.add(v.id)
        stack.extend(v.producer.inputs)
    return False


def _contract_over_time(b: GraphBuilder, term, stacked: list, axis: int):
    """A hoisted term summed over every step, from its operands stacked along `axis`."""
    kind, _, attrs = term
    if kind == "sum":
        axes = tuple(a + (a >= axis) for a in attrs["axes"]) + (axis,)
        return b.op("sum", stacked[0], axes=tuple(sorted(axes)), keepdims=False)
    # Aᵀ @ B over [N, P] and [N, Q] steps: stacked [T, N, .] or [N, T, .], the rows of every
    # step in the same order in both, so one product over T * N rows sums them all.
    rows = [b.op("reshape", v, shape=(-1, v.shape[-1])) for v in stacked]
    return b.op("matmul", rows[0], rows[1], transpose_a=True, transpose_b=False)
