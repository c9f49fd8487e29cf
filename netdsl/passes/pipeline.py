"""The graph-level pass pipeline: one ordered, named list, run in order, each stage printable.

    lower -> check -> [training graph: passes/training.py] -> PIPELINE -> target's stages

(`netdsl/compiler.py` `compile_step` runs that list; this module holds the middle of it.)

`PIPELINE` holds the graph-to-graph passes every backend runs.  Each entry is `(name, pass)`
with `pass: Graph -> Graph`; names are unique, so `netdsl compile --emit <name>` (and
`run_pipeline(stop_after=name)`) can show the graph after any stage.  The stages:

    verify    check the IR invariants of the incoming graph (ir/verify.py)
    dce       drop nodes nothing needs, before spending time on them
    cse       merge duplicate computations (also merges a scan with its gradient's twin)
    fold      evaluate small computations on constants
    simplify  algebraic identities (x * 1, neg(neg x), transpose of transpose, ...)
    scan_hoist  a scan body's products of a sequence slice with a constant become one product
              before the loop, or read the forward loop's own (passes/scan_hoist.py); a
              gradient loop reads the forward loop's step values (passes/scan_residuals.py);
              a constant a body multiplies by transposed is transposed before the loop
              (passes/scan_transpose.py)
    cleanup   CSE and DCE again (the rewrites expose new duplicates and dead nodes), then verify
    recompute a late reader of a large value one elementwise op away from values kept anyway
              computes its own copy (batch norm's x_hat in its backward pass), so that the
              value need not be stored and kept (passes/recompute.py); after CSE, which would
              merge the copies back

Targets continue from the result with their own stages (`Target.stages`; the cpu target's
are fuse, plan_memory, codegen, cache, load).  They are not in this list because their results
are kernel groups, buffer plans and modules, not graphs.
"""
from __future__ import annotations

from typing import Callable

from ..ir.graph import Graph
from ..ir.verify import verify
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .fold import fold_constants
from .recompute import recompute_late_reads
from .scan_hoist import hoist_and_reuse
from .simplify import simplify_algebra

Pass = Callable[[Graph], Graph]


def verify_pass(graph: Graph) -> Graph:
    """Check the IR invariants (raises InternalError); the graph passes through unchanged."""
    return verify(graph)


def cleanup(graph: Graph) -> Graph:
    """CSE then DCE after the rewriting passes, then verify what the pipeline produced."""
    return verify(eliminate_dead_code(eliminate_common_subexpressions(graph)))


PIPELINE: list[tuple[str, Pass]] = [
    ("verify", verify_pass),
    ("dce", eliminate_dead_code),
    ("cse", eliminate_common_subexpressions),
    ("fold", fold_constants),
    ("simplify", simplify_algebra),
    ("scan_hoist", hoist_and_reuse),
    ("cleanup", cleanup),
    ("recompute", recompute_late_reads),
]

def stage_names() -> list[str]:
    """Every stage name `--emit` accepts at graph level, in order."""
    return [name for name, _ in PIPELINE]


def run_pipeline(graph: Graph, stop_after: str | None = None,
                 trace: Callable[[str, Graph], None] | None = None) -> Graph:
    """Run the passes in order; `trace(name, graph)` sees the graph after each stage, and
    `stop_after` ends the pipeline after the stage of that name."""
    names = stage_names()
    if stop_after is not None and stop_after not in names:
        from ..errors import Error, did_you_mean
        hint = did_you_mean(stop_after, names)
        raise Error(f"unknown compiler stage '{stop_after}' (stages: {', '.join(names)})",
                    hint=hint)
    for name, graph_pass in PIPELINE:
        graph = graph_pass(graph)
        if trace is not None:
            trace(name, graph)
        if name == stop_after:
            break
    return graph
