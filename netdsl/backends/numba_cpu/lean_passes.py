"""Two of Numba's passes, skipped where they can find nothing to do in a function.

Numba runs every pass of its pipeline on every function it compiles.  Two of them spend most
of their time rebuilding the IR's bookkeeping around a search that, in the code netdsl
compiles, finds nothing:

- `InlineClosureLikes` inlines closures, `functools.reduce` calls, stencils and list
  comprehensions turned into arrays.  It first inserts `del` statements for every variable
  (a CFG, liveness and lifetime analysis), searches, and strips them again.
- `NopythonRewrites` applies the rewrites registered to run after type inference (array
  expressions fused into one loop, string-literal indexing, arrays of constants), with two
  such analyses around them.

Across the training steps of every example and benchmark model (409 functions, library
kernels and generated code), neither pass changed one function: netdsl's kernels have no
closures and write their loops out.  Each lean pass here first looks for what its pass could
act on and runs the pass unchanged where it finds any; else it leaves the IR as it is, which
is what the pass would have left (the analyses it ran before lowering are run again by
`IRLegalization`).  In LeNet-5's cold training-step compile (one process, AMD EPYC Zen 3,
two runs) the two passes took 0.41-0.52 s, the lean ones 0.13-0.18 s: ~0.3 s of ~9-10 s.

The search is exact for what each pass acts on:
- closures and comprehensions are `make_function` expressions, and an array built from a
  list needs a `build_list`; `reduce` and stencils are globals of that value;
- each after-inference rewrite says itself whether it matches a block (`Rewrite.match`, which
  reads types, not the `del` statements), except the array of constants, which is sought
  wherever the function builds a list.
"""
from __future__ import annotations

import functools

from numba.core import ir, postproc, typed_passes, untyped_passes
from numba.core.compiler_machinery import register_pass
from numba.core.ir_utils import fixup_var_define_in_scope
from numba.core.rewrites import rewrite_registry


def _expressions(func_ir, operations: frozenset):
    """Whether an assignment in `func_ir` has an ir.Expr whose op is in `operations`."""
    return any(isinstance(statement, ir.Assign) and isinstance(statement.value, ir.Expr)
               and statement.value.op in operations
               for block in func_ir.blocks.values() for statement in block.body)


def _inlinable_globals(func_ir) -> bool:
    """Whether `func_ir` reads functools.reduce or a stencil (InlineClosureCallPass inlines
    calls of both)."""
    from numba.stencils.stencil import StencilFunc
    for block in func_ir.blocks.values():
        for statement in block.body:
            if isinstance(statement, ir.Assign) and isinstance(statement.value,
                                                               (ir.Global, ir.FreeVar)):
                value = statement.value.value
                if value is functools.reduce or isinstance(value, StencilFunc):
                    return True
    return False


_CLOSURE_LIKE = frozenset({"make_function", "build_list"})


@register_pass(mutates_CFG=True, analysis_only=False)
class LeanInlineClosureLikes(untyped_passes.InlineClosureLikes):
    """InlineClosureLikes where the function has a closure, a list or an inlinable global;
    elsewhere only its closing bookkeeping (a fresh analysis, every variable in scope)."""
    _name = "netdsl_inline_closure_likes"

    def run_pass(self, state):
        if (state.flags.auto_parallel.enabled or _expressions(state.func_ir, _CLOSURE_LIKE)
                or _inlinable_globals(state.func_ir)):
            return super().run_pass(state)
        postproc.PostProcessor(state.func_ir).run()
        fixup_var_define_in_scope(state.func_ir.blocks)
        return True


@register_pass(mutates_CFG=True, analysis_only=False)
class LeanNopythonRewrites(typed_passes.NopythonRewrites):
    """NopythonRewrites where one of the after-inference rewrites matches a block."""
    _name = "netdsl_nopython_rewrites"

    def run_pass(self, state):
        if state.flags.auto_parallel.enabled or _may_rewrite(state):
            return super().run_pass(state)
        return False


def _may_rewrite(state) -> bool:
    if _expressions(state.func_ir, frozenset({"build_list"})):
        return True                       # an array of constants is sought around a list
    for rewrite_class in rewrite_registry.rewrites["after-inference"]:
        rewrite = rewrite_class(state)
        for block in state.func_ir.blocks.values():
            if rewrite.match(state.func_ir, block, state.typemap, state.calltypes):
                return True
    return False


LEAN = {untyped_passes.InlineClosureLikes: LeanInlineClosureLikes,
        typed_passes.NopythonRewrites: LeanNopythonRewrites}


def lean_pipeline(pipeline):
    """`pipeline` (a Numba PassManager) with the passes above in place of Numba's."""
    pipeline.passes[:] = [(LEAN.get(pass_class, pass_class), description)
                          for pass_class, description in pipeline.passes]
    pipeline.finalize()
    return pipeline


__all__ = ["lean_pipeline"]
