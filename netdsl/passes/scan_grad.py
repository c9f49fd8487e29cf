"""The gradient of `scan` (backpropagation through time): a scan running the other way.

Its body is the VJP of the forward body: it recomputes the step from the stored entering carry,
then pulls the carry and y cotangents back through it.  Its carries are the carry cotangents
and the accumulated gradients of the constants; its sequences are the stored carries, the
forward sequences and the y cotangents; its ys are the gradients of the sequences.  The stored
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
