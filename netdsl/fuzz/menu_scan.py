"""The `scan` menu entry: a loop over axis 1 whose body is itself generated from the menu.

    hs, last = scan x over 1 with h = zeros([B, H]) {
        <a few random statements over x_t, h, outer values and params>
        h = tanh(z @ w + h * 0.5)
        yield h
    }

The body may read outer values and params (captured as the scan's explicit inputs); its
params are declared at model level, as a user writing a recurrent block would.
"""
from __future__ import annotations

import re

from ..ir.types import DType, Sym, TensorType
from .generate import Generator
from .program import Stmt, Var

BODY_ENTRIES = ("unary", "binary", "divide", "reduce", "normalise", "matmul", "view:transpose",
                "view:slice", "select")


def scan_statement(gen: Generator) -> bool:
    from .menu import MENU
    if gen.parent is not None:
        return False
    x = gen.pick_float(lambda v: v.rank == 3 and v.bound < 100 and isinstance(v.shape[2], int)
                       and v.shape[0] == Sym.named("B"))
    if x is None:
        if gen.rng.random() < 0.5:
            return False
        x = gen.new_input(TensorType(DType.f32, (Sym.named("B"), Sym.named("T"),
                                                 int(gen.rng.choice([1, 2, 3])))))
    batch, steps, features = x.shape
    hidden = int(gen.rng.choice([1, 2, 3, 4]))
    carry = gen.fresh("h")
    init, init_reads = f"zeros([B, {hidden}])", []
    start = gen.pick_float(lambda v: v.shape == (batch, hidden) and v.bound <= 1.0)
    if start is not None and gen.rng.random() < 0.5:
        init, init_reads = start.name, [start]
    body = Generator(gen.rng, gen.program, gen.config, parent=gen)
    x_t = Var(f"{x.name}_t", TensorType(DType.f32, (batch, features)), x.lo, x.hi)
    h = Var(carry, TensorType(DType.f32, (batch, hidden)), -1.0, 1.0)
    body.pool = [x_t, h]
    entries = [e for e in MENU if e[0] in BODY_ENTRIES]
    for _ in range(int(gen.rng.integers(0, 4))):
        body.apply_menu(entries)
    z = body.pick(lambda v: v.rank == 2 and v.shape[0] == batch and
                  isinstance(v.shape[1], int) and v.bound < 100 and v.name != carry) or x_t
    w = gen.new_param((z.shape[1], hidden), 0.5)
    body.body.append(f"{carry} = tanh({z.name} @ {w.name} + {carry} * 0.5)")
    body.body.append(f"yield {carry}")
    hs, last = gen.fresh("t"), gen.fresh("t")
    tokens = {token for line in body.body for token in re.findall(r"[A-Za-z_]\w*", line)}
    outer_reads = {v.name for v in gen.pool if v.name in tokens}
    outer_reads |= {p.name for p, _ in gen.program.params if p.name in tokens}
    hs_var = Var(hs, TensorType(DType.f32, (batch, steps, hidden)), -1.0, 1.0)
    last_var = Var(last, TensorType(DType.f32, (batch, hidden)), -1.0, 1.0)
    for var in (hs_var, last_var):
        gen.program.values[var.name] = var
        gen.pool.append(var)
    gen.program.tags.append("scan")
    reads = tuple(dict.fromkeys([x.name] + [v.name for v in init_reads] + sorted(outer_reads)))
    gen.stmts.append(Stmt((hs, last), f"scan {x.name} over 1 with {carry} = {init}", reads,
                          body=tuple(body.body), tag="scan"))
    return True


__all__ = ["scan_statement"]
