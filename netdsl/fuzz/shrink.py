"""Shrink a failing program to a small one that fails the same way (greedy, to a fixpoint).

Each candidate edit is kept when the shrunk program still produces a finding of the same kind:
check only the failing mode; drop losses and outputs; replace a statement by one of its
operands of the same type; cut a statement's inputs off by making its value an `in` of the
model; set the symbolic dims to 1.  Unused statements, params and inputs are pruned after each
edit, so what remains is what the failure needs.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

from .oracle import Finding, Options, check
from .program import Program, Stmt


def shrink(program: Program, options: Options, finding: Finding,
           budget: int = 150) -> tuple[Program, Finding]:
    """The smallest program found within `budget` checks that still fails like `finding`."""
    if finding.mode:
        narrowed = dataclasses.replace(options, modes=(finding.mode,))
        again = check(program, narrowed)
        if finding.same_kind(again):
            options, finding = narrowed, again
    current = program.copy().prune()
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        for candidate in _edits(current):
            if tries >= budget:
                break
            tries += 1
            candidate = candidate.prune()
            if not candidate.stmts and not candidate.losses:
                continue
            result = check(candidate, options)
            if finding.same_kind(result):
                current, finding, improved = candidate, result, True
                break
    return current, finding


def _edits(program: Program) -> Iterator[Program]:
    """Candidate programs, each one edit smaller than `program` (biggest cuts first)."""
    for k in range(len(program.losses)):
        edited = program.copy()
        del edited.losses[k]
        yield edited
    for k, stmt in enumerate(program.stmts):
        for name in sorted(stmt.outputs):
            edited = program.copy()
            edited.stmts[k] = dataclasses.replace(stmt, outputs=stmt.outputs - {name})
            yield edited
    for k in reversed(range(len(program.stmts))):
        stmt = program.stmts[k]
        if len(stmt.targets) == 1 and stmt.reads:
            yield _as_input(program, k)
        for expr, reads in stmt.alternatives:
            edited = program.copy()
            edited.stmts[k] = dataclasses.replace(stmt, expr=expr, reads=reads, alternatives=(),
                                                  body=())
            yield edited
    for symbol, value in sorted(program.bindings.items()):
        if value > 1:
            edited = program.copy()
            edited.bindings[symbol] = 1
            yield edited


def _as_input(program: Program, k: int) -> Program:
    """Statement k's value becomes an input of the model (everything upstream is cut)."""
    edited = program.copy()
    stmt = edited.stmts.pop(k)
    name = stmt.targets[0]
    var = program.values[name]
    edited.inputs.append(dataclasses.replace(var, kind="input", lo=max(var.lo, -3.0),
                                             hi=min(var.hi, 3.0)))
    if name in stmt.outputs:                    # it was an output: keep one that reads it
        edited.stmts.append(Stmt((f"{name}_out",), f"{name} * 1.0", (name,),
                                 outputs=frozenset({f"{name}_out"}), tag="shrink"))
        edited.values[f"{name}_out"] = dataclasses.replace(var, name=f"{name}_out")
    return edited


__all__ = ["shrink"]
