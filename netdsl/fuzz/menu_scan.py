"""The `scan` menu entry: a loop over one axis whose body is itself generated from the menu.

    ys.., h_last, c_last = scan x, y over 1 with h = zeros([B, H]), c = zeros([B, H]) {
        <a few random statements over x_t, y_t, h, c, outer values and params>
        c = sigmoid(z @ w1) * c + tanh(z @ w2) * 0.5          (with a second carry)
        h = tanh(z @ w + h * 0.5)
        yield h, ...
    }

One or two scanned inputs, over axis 0, 1 or 2 of a rank-3 value; one or two carried states;
one or two yields.  The body may read outer values and params (captured as the scan's
explicit inputs); its params are declared at model level, as a user writing a recurrent block
would.
"""
from __future__ import annotations

import re

from ..ir.types import DType, Sym, TensorType
from .generate import Generator
from .program import Stmt, Var

BODY_ENTRIES = ("unary", "binary", "divide", "reduce", "normalise", "matmul", "view:transpose",
                "view:slice", "select", "view:two_views")


def _sequence(gen: Generator):
    """A rank-3 value to scan over and the axis, or a new input [B, T, D]."""
    def scannable(v: Var) -> bool:
        return v.rank == 3 and v.bound < 100 and isinstance(v.shape[2], int)
    x = gen.pick_float(scannable)
    if x is None:
        if gen.rng.random() < 0.5:
            return None, 0
        x = gen.new_input(TensorType(DType.f32, (Sym.named("B"), Sym.named("T"),
                                                 int(gen.rng.choice([1, 2, 3])))))
    axis = 1 if gen.rng.random() < 0.7 else int(gen.rng.choice([0, 2]))
    if axis == 2 and not isinstance(x.shape[1], int):
        axis = 1
    return x, axis


def scan_statement(gen: Generator) -> bool:
    from .menu import MENU
    if gen.parent is not None:
        return False
    x, axis = _sequence(gen)
    if x is None:
        return False
    steps = x.shape[axis]
    rows, features = [d for k, d in enumerate(x.shape) if k != axis]
    if not isinstance(features, int):
        return False
    sequences = [x]
    second = gen.pick_float(lambda v: v is not x and v.rank == 3 and v.shape[axis] == steps and
                            v.bound < 100)
    if second is not None and gen.rng.random() < 0.3:
        sequences.append(second)
    hidden = int(gen.rng.choice([1, 2, 3, 4]))
    carry_type = TensorType(DType.f32, (rows, hidden))
    names = [gen.fresh("h")] + ([gen.fresh("c")] if gen.rng.random() < 0.3 else [])
    inits, init_reads = [], []
    for name in names:
        start = gen.pick_float(lambda v: v.type == carry_type and v.bound <= 1.0)
        if start is not None and gen.rng.random() < 0.4:
            inits.append(f"{name} = {start.name}")
            init_reads.append(start)
        else:
            inits.append(f"{name} = zeros([{', '.join(str(d) for d in carry_type.shape)}])")

    body = Generator(gen.rng, gen.program, gen.config, parent=gen)
    body.pool = [Var(f"{s.name}_t", TensorType(DType.f32, tuple(
        d for k, d in enumerate(s.shape) if k != axis)), s.lo, s.hi) for s in sequences]
    body.pool += [Var(name, carry_type, -4.0, 4.0) for name in names]
    entries = [e for e in MENU if e[0] in BODY_ENTRIES]
    for _ in range(int(gen.rng.integers(0, 4))):
        body.apply_menu(entries)
    z = body.pick(lambda v: v.rank == 2 and v.shape[0] == rows and isinstance(v.shape[1], int)
                  and v.bound < 100 and v.name not in names) or body.pool[0]
    h = names[0]
    if len(names) > 1:
        c = names[1]
        gate, cell = gen.new_param((z.shape[1], hidden), 0.5), gen.new_param((z.shape[1], hidden),
                                                                             0.5)
        body.body.append(f"{c} = sigmoid({z.name} @ {gate.name}) * {c} + "
                         f"tanh({z.name} @ {cell.name}) * 0.5")
        body.body.append(f"{h} = tanh({c}) * 0.5 + {h} * 0.5")
    else:
        w = gen.new_param((z.shape[1], hidden), 0.5)
        body.body.append(f"{h} = tanh({z.name} @ {w.name} + {h} * 0.5)")
    yields = [h]
    extra = body.pick(lambda v: v.rank >= max(axis, 1) and v.name not in names and v.bound < 100 and
                      v.name not in {s.name + "_t" for s in sequences})
    if extra is not None and gen.rng.random() < 0.3:
        yields.append(extra.name)
    body.body.append(f"yield {', '.join(yields)}")

    yield_types = [carry_type] + ([extra.type] if len(yields) > 1 else [])
    results = []
    for type_ in yield_types:                              # stacked along the scan axis
        shape = list(type_.shape)
        shape.insert(min(axis, len(shape)), steps)
        results.append(Var(gen.fresh("t"), TensorType(DType.f32, tuple(shape)), -4.0, 4.0))
    results += [Var(gen.fresh("t"), carry_type, -4.0, 4.0) for _ in names]
    for var in results:
        gen.program.values[var.name] = var
        gen.pool.append(var)
    gen.program.tags.append("scan")
    tokens = {token for line in body.body for token in re.findall(r"[A-Za-z_]\w*", line)}
    outer = {v.name for v in gen.pool if v.name in tokens}
    outer |= {p.name for p, _ in gen.program.params if p.name in tokens}
    reads = tuple(dict.fromkeys([s.name for s in sequences] + [v.name for v in init_reads] +
                                sorted(outer)))
    header = (f"scan {', '.join(s.name for s in sequences)} over {axis} with "
              f"{', '.join(inits)}")
    gen.stmts.append(Stmt(tuple(v.name for v in results), header, reads,
                          body=tuple(body.body), tag="scan"))
    return True


__all__ = ["scan_statement"]
