"""Numba CPU code generation: one Python module per compiled graph.

The module holds one `@njit(cache=True)` driver, `step(inputs..., params..., constants...,
arenas..., offsets)`, that runs every kernel group of the schedule in order over preallocated
memory and returns the outputs and losses: a training step is one Python call.  Buffers are
views (`numba_support.view`) into one flat arena per dtype at the offsets of the memory plan
(`offsets` is computed in Python once per binding of the symbolic dims); symbolic dims are read
from the inputs' shapes at the top of the driver.

Kernel groups are inlined into the driver (one function is one LLVM module; a separate njit
function costs a fixed ~0.2-0.4 s of compile on top of its body), except
  * loop nests that occur several times with the same source (Adam's update of every 2-D
    weight, a ReLU epilogue per layer): one shared `@njit` function, compiled once,
  * loop nests large enough to pay for threads (`parallel_min` elements with every symbolic
    dim at `size_hint`, default 2^20): a `parallel=True` function whose outermost loop is a
    `prange` (about 0.3-1 s more compile each, and threads only pay on idle cores), and
  * runs of groups repeated back to back (the blocks of a `repeat`, their gradients and
    updates): one shared `@njit` function per run, called once per repeat (segments.py), so
    a deep model's driver does not grow, and compile, with its depth.
Loop nests are rendered by render.py from the target-neutral loop IR (backends/loopir.py).
Matmul, conv and the other non-elementwise ops emit their own lines (their CPU lowering,
lowerings/), which call BLAS (`np.dot`) or library kernels inside the driver.  `scan` bodies
become njit functions of the same module (scan.py).  function.py writes the driver and the
body functions; this module holds what they share.

fastmath: {'nsz', 'arcp', 'contract', 'afn', 'reassoc'} -- reassociation and contraction let
LLVM vectorise reductions and form FMAs; NOT 'nnan'/'ninf': user code can produce inf and nan
(log of 0, overflow) and must see them, and `isnan` checks must keep working.
error_model='numpy' on every generated function: Numba's default ('python') raises
ZeroDivisionError for a float division by zero, where NumPy (and the reference) gives inf or
nan; `mean(1.0 / (x - x))` must be inf, which the train loop then reports.
"""
from __future__ import annotations

import builtins
import os
from dataclasses import dataclass, field

from ...ir.graph import Graph
from ...passes.fusion import FusedGraph
from ...passes.memory import MemoryPlan
from ..loopir import build_loop_nest, collapse
from .emit import EmitContext
from .function import FunctionWriter, has_nest, memory_key
from .render import kernel_source

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
# Module-level names of every generated module (its imports) and Python's builtins.
_MODULE_NAMES = frozenset({"np", "math", "njit", "prange", "_view", "_FASTMATH"}) | \
    frozenset(dir(builtins))


def _parallel_min() -> int:
    return int(os.environ.get("NETDSL_PARALLEL_MIN", 1 << 20))


@dataclass
class CodegenOptions:
    # Elements (at size_hint) for a prange kernel; 0: never.  High by default: on 2 shared
    # cores a parallel Adam update of 200k weights made the MLP step 3x slower (7.7 ms against
    # 2.4 ms, threads waiting for busy cores); $NETDSL_PARALLEL_MIN overrides it.
    parallel_min: int = field(default_factory=_parallel_min)
    size_hint: int = 128             # assumed value of symbolic dims when judging sizes
    share_repeated: bool = True      # nests that repeat become one shared njit function
    fastmath: frozenset = FASTMATH


@dataclass
class GeneratedModule:
    """The generated source and how to call its driver."""

    source: str
    params: list[tuple[str, object]]     # driver parameters: (kind, key) in order
    outputs: list[str]                   # names of the returned values (outputs, then losses)
    kernels: dict[str, int] = field(default_factory=dict)   # inlined, shared, parallel, ...
    imports: list[tuple[str, str]] = field(default_factory=list)   # (module, function)


class ModuleWriter:
    """What the functions of one generated module share: imports, kernels, body functions."""

    def __init__(self, options: CodegenOptions):
        self.options = options
        self.ctx = EmitContext(parallel=False, parallel_min=options.parallel_min,
                               size_hint=options.size_hint)
        self.functions: dict[str, str] = {}          # canonical kernel source -> function name
        self.lines: list[str] = []                   # module-level functions, in order
        self.counts = {"inlined": 0, "shared": 0, "parallel": 0, "calls": 0, "ops": 0,
                       "bodies": 0, "segments": 0, "segment_calls": 0}
        self.repeated: dict[str, int] = {}
        self.ctx.subgraph_compiler = self.body_function
        self.bodies: dict[int, str] = {}
        self.segments: dict[str, str] = {}           # canonical run of groups -> function

    def global_names(self) -> set[str]:
        """Names a driver line may read from the module (not from the driver's locals)."""
        return (set(self.functions.values()) | set(self.bodies.values()) |
                set(self.segments.values()) | set(self.ctx.imports) | _MODULE_NAMES)

    def segment_function(self, text: str, n_params: int) -> str:
        """The shared function of a canonical run of kernel groups (segments.py)."""
        name = self.segments.get(text)
        if name is None:
            name = self.segments[text] = f"block_{len(self.segments)}"
            params = ", ".join(f"a{k}" for k in range(n_params))
            self.lines += ["@njit(cache=True, fastmath=_FASTMATH, error_model='numpy')",
                           f"def {name}({params}):",
                           *("    " + line for line in text.splitlines()), "    return 0", ""]
            self.counts["segments"] += 1
        self.counts["segment_calls"] += 1
        return name

    def body_function(self, graph: Graph) -> str:
        """An njit function `f(*inputs, *outputs)` computing `graph` (a scan body)."""
        from ...passes.fusion import fuse
        from ...passes.memory import plan_memory
        if id(graph) not in self.bodies:
            fused = fuse(graph)
            writer = FunctionWriter(fused, plan_memory(fused), self)
            name = f"body_{len(self.bodies)}"
            self.bodies[id(graph)] = name
            lines = writer.body(name)
            self.lines += ["@njit(cache=True, fastmath=_FASTMATH, error_model='numpy')", *lines, ""]
            self.counts["bodies"] += 1
        return self.bodies[id(graph)]

    def count_sources(self, fused: FusedGraph, plan: MemoryPlan) -> None:
        """How often each loop-nest source occurs (nests seen twice become shared functions)."""
        constants = {n.id: n for n in fused.constants}
        for group in fused.groups:
            if has_nest(group):
                nest = collapse(build_loop_nest(group, constants))
                source, _ = kernel_source(nest, lambda v: memory_key(plan, v))
                self.repeated[source] = self.repeated.get(source, 0) + 1


def generate_module(fused: FusedGraph, plan: MemoryPlan, options: CodegenOptions | None = None,
                    title: str = "") -> GeneratedModule:
    """The Python source of the module for a fused, planned graph."""
    module = ModuleWriter(options or CodegenOptions())
    module.count_sources(fused, plan)
    driver, params, outputs = FunctionWriter(fused, plan, module).driver()
    fastmath = "{" + ", ".join(repr(f) for f in sorted(module.options.fastmath)) + "}"
    header = [f'"""netdsl generated module: {title}"""', "import math", "import numpy as np",
              "from numba import njit, prange",
              "from netdsl.backends.numba_cpu.support import view as _view",
              *module.ctx.import_lines(), "", f"_FASTMATH = {fastmath}", ""]
    decorator = "@njit(cache=True, fastmath=_FASTMATH, error_model='numpy')"
    source = "\n".join(header + module.lines + module.ctx.helper_lines() +
                       [decorator] + driver) + "\n"
    return GeneratedModule(source, params, outputs, dict(module.counts),
                           sorted(module.ctx.imports.values()))


__all__ = ["CodegenOptions", "FASTMATH", "GeneratedModule", "generate_module"]
