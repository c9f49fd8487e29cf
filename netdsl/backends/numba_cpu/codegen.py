"""Numba CPU code generation: one Python module per compiled graph.

The module holds one `@njit(cache=True)` driver, `step(inputs..., params, constants...,
arenas..., offsets)`, that runs every kernel group of the schedule in order over preallocated
memory and returns the outputs and losses that its arenas do not hold (the caller views the
others in the arenas: GeneratedModule.output_places): a training step is one Python call.
Returning an array to Python boxes it, ~0.3 us a call each, and the boxing code took ~6 ms
each to compile (a deep_residual step returns 43: a function making and returning 43 such
views compiled in 0.56 s, making them and returning nothing in 0.31 s; an XOR step spent 2.2
of its 5.9 us on it).  Buffers are
views (`numba_support.view`) into one flat arena per dtype at the offsets of the memory plan
(`offsets` is computed in Python once per binding of the symbolic dims); symbolic dims are read
from the inputs' shapes at the top of the driver.  Parameters (weights, optimiser state) are
one table of addresses, `params`, viewed where they are used, once there are
`param_table_min` of them (param_table.py; below that, or where a parameter's shape is
symbolic, one array argument each).

Kernel groups are inlined into the driver (one function is one LLVM module: a separate njit
function is typed, lowered, optimised and compiled to machine code on its own, ~0.05-0.15 s
for a small kernel, and a plain call makes Numba link its IR into every caller's module,
where LLVM optimises and compiles it again), except
  * loop nests that occur several times with the same source (Adam's update of every 2-D
    weight, a ReLU epilogue per layer): one shared `@njit` function, typed once and called
    separately, so that a compile helper can compile it beside the driver; each in a module
    of its own named by its content hash, like a segment (below), so that another model with
    the same nest (Adam's update, an epilogue) loads it from Numba's cache,
  * loop nests large enough to pay for threads (`parallel_min` elements with every symbolic
    dim at `size_hint`, default 2^20): a function whose outermost loop's indices are shared
    out to Numba's threads, a part function per thread (parallel_nests.py; as a `prange` it
    cost 0.3-1 s more compile each; threads only pay on idle cores), and
  * runs of groups repeated back to back (the blocks of a `repeat`, their gradients and
    updates): one shared `@njit` function per run, called once per repeat (segments.py), so
    a deep model's driver does not grow, and compile, with its depth.  Each such segment is a
    module of its own (`GeneratedModule.segments`: the segment as `segment`, with the kernel
    and body functions it calls, renamed in order of use, and the imports it reads), named by
    its content hash: the driver imports it (`from netdsl_generated_<key> import segment as
    block_0`) and the target loads it first, so another model (a 6-block net after a 12-block
    one) that repeats the same block loads it from Numba's cache instead of compiling it.
Library kernels (lowerings/), shared and parallel loop nests, segments and scan bodies are
called separately (separate.py): the caller declares the callee's compiled function under a stable
symbol instead of taking in its code, so each is compiled once, in its own module (LeNet's
cold compile 20.5 -> 16.1 s, deep_residual's step 44.6 -> 37.0 s).
A long driver (over parts.SPLIT_ABOVE statements) is cut into parts of about 40 statements,
each a function called separately that carves its own buffers (parts.py): LLVM's SROA pass
takes time superlinear in a function's size.
The functions only generated code calls (shared kernels, segments, scan bodies) are compiled
without Numba's entry points for Python and C callers (`no_cpython_wrapper`,
`no_cfunc_wrapper`), and the driver without the C one: a wrapper unboxes or boxes every array
argument, about as much IR as a small kernel, and nothing called them (7-8% of a cold compile
of the MLP step).  What a compile costs, measured (benchmarks/compile_times.py): the first
compile in a process pays Numba's initialisation (~0.35-0.45 s); the driver's own compile grows
faster than linearly with the arrays it handles: Numba's Python entry point unboxes each array
argument (200 of them alone: ~3.7 s of LLVM; 50: ~0.35 s), hence the parameters' table, and
each buffer view is a live array (deep_residual's driver still carves 235 views and is most
of that model's compile).
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

import ast
import builtins
import os
import re
from dataclasses import dataclass, field

from ...ir.graph import Graph
from ...passes.fusion import FusedGraph
from ...passes.memory import MemoryPlan
from ..loopir import build_loop_nest, collapse
from .emit import EmitContext, called_separately
from .function import INTERNAL, FunctionWriter, has_nest, memory_key
from .line_rewrites import plain_integers
from .render import HELPER_IMPORTS, kernel_source

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
# Module-level names of every generated module (its imports) and Python's builtins.
_MODULE_NAMES = frozenset({"np", "math", "njit", "prange", "_view", "_unowned_view", "_param_view",
                           "_FASTMATH", "_fast_exp", "_fast_tanh", "_fast_erf", "_max2", "_min2",
                           "_empty", "_separately", "_in_parallel", "_threads"}) | \
    frozenset(dir(builtins))


def _parallel_min() -> int:
    text = os.environ.get("NETDSL_PARALLEL_MIN", "").strip()
    if not text:
        return 1 << 20
    if not text.isdigit():
        from ...errors import Error
        raise Error(f"NETDSL_PARALLEL_MIN must be a whole number of elements, got {text!r}",
                    hint="0 turns parallel kernels off; unset it for the default (1048576)")
    return int(text)


ROW_REGION_MODES = ("inference", "always", "never")


def _row_regions() -> str:
    text = os.environ.get("NETDSL_ROW_REGIONS", "").strip().lower() or "inference"
    if text not in ROW_REGION_MODES:
        from ...errors import Error
        raise Error(f"NETDSL_ROW_REGIONS must be inference, always or never, got {text!r}",
                    hint="unset it for the default (inference graphs only)")
    return text


@dataclass
class CodegenOptions:
    # Elements (at size_hint) for a prange kernel; 0: never.  High by default: on 2 shared
    # cores a parallel Adam update of 200k weights made the MLP step 3x slower (7.7 ms against
    # 2.4 ms, threads waiting for busy cores); $NETDSL_PARALLEL_MIN overrides it.
    parallel_min: int = field(default_factory=_parallel_min)
    size_hint: int = 128             # assumed value of symbolic dims when judging sizes
    share_repeated: bool = True      # nests that repeat become one shared njit function
    # Which graphs run their runs of ops that keep the batch's rows apart as blocks of rows
    # in parallel (passes/row_regions.py, row_blocks.py; only where parallel_min > 0):
    # "inference" (graphs without losses or state updates), "always" or "never";
    # $NETDSL_ROW_REGIONS overrides it.  The MLP forward at two threads: 317 -> 274 us.  A
    # training step ran slower so (MLP, two threads: 1.09 -> 1.24 ms), its forward region
    # as fast as the inference one alone (283 us): each thread reads every weight, and in a
    # step the backward and the update push them out of the cores' caches in between, so
    # both cores fetch all of them again (perf: MKL's kernels 356 -> 395 us a step).
    row_regions: str = field(default_factory=_row_regions)

    def regions_for(self, graph: Graph) -> bool:
        """Whether `graph` gets row regions (see `row_regions`)."""
        return self.parallel_min > 0 and (self.row_regions == "always" or (
            self.row_regions == "inference" and not graph.losses and not graph.state_updates))
    # Parameters from which the driver takes them as one table of addresses (param_table.py);
    # 0: always.  Below it one argument each compiles as fast (XOR, 12 parameters, one driver:
    # the same cold compile, 8 alternated pairs).  A driver in parts passes every argument to
    # each part: the MLP's (18 parameters, three parts since stop 49) compiled cold in 2.86
    # against 3.26 s with arguments (medians of 8 alternated pairs; 0.5 s less CPU); LeNet-5,
    # 30: 5.3-5.7 s against 5.7-6.2; deep_residual, 236: its driver's LLVM time ~3x less.
    param_table_min: int = 16
    fastmath: frozenset = FASTMATH
    # The driver runs with subnormal floats flushed to zero (denormals.py says why).
    flush_denormals: bool = True


@dataclass
class GeneratedModule:
    """The generated source and how to call its driver."""

    source: str
    params: list[tuple[str, object]]     # driver parameters: (kind, key) in order
    outputs: list[str]                   # names of the returned values (outputs, then losses)
    kernels: dict[str, int] = field(default_factory=dict)   # inlined, shared, parallel, ...
    imports: list[tuple[str, str]] = field(default_factory=list)   # (module, function)
    # the shared segments' modules, cache key -> source; the target loads them before `source`
    segments: dict[str, str] = field(default_factory=dict)
    # per output, (arena dtype, slot, shape) where the driver leaves it in its arena without
    # returning it (the caller views it there: compiled.output_views), else None; empty: all
    # returned
    output_places: list = field(default_factory=list)


class ModuleWriter:
    """What the functions of one generated module share: imports, kernels, body functions."""

    outputs_in_arena = True          # the driver returns only what its arenas do not hold
    # Buffers carved from the arena arguments without an owner (support.unowned_view); those
    # the driver returns keep one (FunctionWriter._owned).
    carve_view = "_unowned_view"
    # A driver's 0-d buffers as arena elements, its integers bare to separately compiled
    # calls (line_rewrites.py: scalar_places, plain_integers): less for Numba to type and lower.
    compact_driver = True

    def __init__(self, options: CodegenOptions):
        self.options = options
        self.ctx = EmitContext(parallel=False, parallel_min=options.parallel_min,
                               size_hint=options.size_hint)
        self.functions: dict[str, str] = {}          # canonical kernel source -> function name
        self.lines: list[str] = []                   # module-level functions, in order
        self.counts = {"inlined": 0, "shared": 0, "parallel": 0, "calls": 0, "ops": 0,
                       "bodies": 0, "segments": 0, "segment_calls": 0, "parts": 0}
        self.repeated: dict[str, int] = {}
        self.ctx.subgraph_compiler = self.body_function
        self.bodies: dict[tuple[int, bool], str] = {}      # (id of a body, serial) -> name
        self.segments: dict[str, str] = {}           # canonical run of groups -> function
        self.definitions: dict[str, list[str]] = {}  # module function name -> its lines
        self.segment_modules: dict[str, str] = {}    # cache key -> source of a segment module
        self.segment_imports: list[str] = []
        self.standalone: set[str] = set()            # names imported from segment modules
        # Whether loop bodies that run serially over their rows get row regions too (the
        # driver's graph does: generate_module sets it).
        self.row_regions = False

    def add_function(self, name: str, lines: list[str], separate: bool = True) -> None:
        """A module-level function (decorator and definition lines), which only generated code
        calls: separately (separate.py) unless `separate` is False, so that its code is
        compiled once, in its own module."""
        lines = [_SEPARATELY, *lines] if separate else lines
        self.definitions[name] = lines
        self.lines += [*lines, ""]

    def add_parallel(self, name: str, function: str) -> None:
        """`name(count, *arguments)`: the module's separately called `function` run as
        `function(i, *arguments)` for i in range(count) on Numba's threads (parallel_calls.py;
        a prange around the call cost ~0.35 s of a cold compile in Numba's parfor passes)."""
        self.definitions[name] = [f"{name} = _in_parallel({function}.dispatcher)"]
        self.lines += [*self.definitions[name], ""]
        self.counts["parallel"] += 1

    def add_part(self, name: str, lines: list[str]) -> str:
        """A part of a long driver (parts.py), called separately; returns its name."""
        self.add_function(name, [_INTERNAL_DECORATOR, *lines])
        self.counts["parts"] += 1
        return name

    def global_names(self) -> set[str]:
        """Names a driver line may read from the module (not from the driver's locals)."""
        return (set(self.functions.values()) | set(self.bodies.values()) |
                set(self.segments.values()) | self.standalone | set(self.definitions) |
                set(self.ctx.imports) | _MODULE_NAMES)

    def separate_names(self) -> set[str]:
        """Names of the functions generated code calls separately (separate.py): library
        kernels, and this module's functions and segments compiled on their own."""
        return {local for local, (module, attribute) in self.ctx.imports.items()
                if called_separately(module, attribute)} | self.standalone | \
            {name for name, lines in self.definitions.items()
             if lines[0] == _SEPARATELY or lines[0].startswith(f"{name} = _in_parallel(")}

    def segment_function(self, text: str, n_params: int) -> str:
        """The shared function of a canonical run of kernel groups (segments.py)."""
        name = self.segments.get(text)
        if name is None:
            name = self.segments[text] = f"block_{len(self.segments)}"
            params = ", ".join(f"a{k}" for k in range(n_params))
            body = plain_integers(text.splitlines(), self.separate_names()) \
                if self.compact_driver else text.splitlines()
            lines = [_INTERNAL_DECORATOR, f"def {name}({params}):",
                     *("    " + line for line in body), "    return 0"]
            self.add_standalone(name, lines, "a repeated run of kernel groups")
            self.counts["segments"] += 1
        self.counts["segment_calls"] += 1
        return name

    def add_standalone(self, name: str, lines: list[str], what: str) -> None:
        """A function only generated code calls (decorator and definition lines), in a module
        of its own named by its content hash where it can be (see the module docstring), so
        that other models with the same function load it from Numba's cache; else in this
        module.  Called separately either way."""
        source = self._segment_module(lines, what)
        if source is None:                          # reads something only this module has
            self.add_function(name, lines)
            return
        from .. import cache
        from .numba_cache import toolchain
        key = cache.cache_key(source, "cpu", toolchain())
        self.segment_modules[key] = source
        self.segment_imports.append(f"from netdsl_generated_{key} import segment as {name}")
        self.standalone.add(name)

    def body_function(self, graph: Graph, serial: bool = False) -> str:
        """An njit function `f(*inputs, *outputs)` computing `graph` (a scan body); `serial`:
        without parallel kernels of its own (it runs inside a parallel region: scan_rows.py)."""
        from ...passes.fusion import fuse
        from ...passes.memory import plan_memory
        key = (id(graph), serial)
        if key not in self.bodies:
            if self.row_regions and not serial:     # a loop over steps of row-parallel work
                from ...passes.row_regions import row_regions
                graph = row_regions(graph)
            fused = fuse(graph, windows=True)
            name = f"body_{len(self.bodies)}"
            self.bodies[key] = name
            saved = self.options.parallel_min, self.ctx.parallel_min
            if serial:                  # no prange kernel, no parallel library kernel
                self.options.parallel_min = self.ctx.parallel_min = 0
            try:
                lines = FunctionWriter(fused, plan_memory(fused), self).body(name)
            finally:
                self.options.parallel_min, self.ctx.parallel_min = saved
            self.add_function(name, [_INTERNAL_DECORATOR, *lines])
            self.counts["bodies"] += 1
        return self.bodies[key]

    def _segment_module(self, lines: list[str], what: str) -> str | None:
        """The source of a module holding a segment's function (`lines`, renamed `segment`)
        and the functions it calls, each renamed `f_<k>` in order of first use, so that the
        text (and its cache key) does not depend on the rest of the model; None when the
        segment reads a module-level name other than those functions and the imports."""
        known = _MODULE_NAMES | set(self.ctx.imports)
        order: list[str] = []
        imports: set[str] = set()
        pending = [lines]
        while pending:
            tree = ast.parse("\n".join(pending.pop(0)))
            stored = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and
                      not isinstance(node.ctx, ast.Load)} | \
                {arg.arg for node in ast.walk(tree) if isinstance(node, ast.arguments)
                 for arg in node.args}
            for node in ast.walk(tree):
                if not isinstance(node, ast.Name) or node.id in stored:
                    continue
                if node.id in self.definitions:
                    if node.id not in order:
                        order.append(node.id)
                        pending.append(self.definitions[node.id])
                elif node.id in self.ctx.imports:
                    imports.add(node.id)
                elif node.id not in known:
                    return None
        if self.ctx.helpers:
            return None
        renamed = {name: f"f_{k}" for k, name in enumerate(order)}
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, renamed)) + r")\b") \
            if renamed else None

        def rename(text: str) -> str:
            return pattern.sub(lambda m: renamed[m.group(1)], text) if pattern else text

        # Callees before their callers: `f_0 = _in_parallel(f_1.dispatcher)` needs f_1.
        body = [rename(line) for name in reversed(order)
                for line in [*self.definitions[name], ""]]
        segment = [_SEPARATELY, lines[0], re.sub(r"^def \w+\(", "def segment(", rename(lines[1])),
                   *(rename(line) for line in lines[2:])]
        import_lines = self.ctx.import_lines(only=imports)
        return "\n".join([f'"""netdsl generated segment ({what})"""',
                          *_HEADER, *import_lines, "", self.fastmath_line(), "",
                          *body, *segment]) + "\n"

    def fastmath_line(self) -> str:
        return "_FASTMATH = {" + ", ".join(repr(f) for f in sorted(self.options.fastmath)) + "}"

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
    module.row_regions = module.options.regions_for(fused.graph)
    module.count_sources(fused, plan)
    writer = FunctionWriter(fused, plan, module)
    driver, params, outputs = writer.driver()
    header = [f'"""netdsl generated module: {title}"""', *_HEADER,
              *module.ctx.import_lines(), *module.segment_imports, "", module.fastmath_line(), ""]
    source = "\n".join(header + module.lines + module.ctx.helper_lines() +
                       [_DECORATOR] + driver) + "\n"
    return GeneratedModule(source, params, outputs, dict(module.counts),
                           sorted(module.ctx.imports.values()), dict(module.segment_modules),
                           writer.output_places)


_HEADER = ["import math", "import numpy as np", "from numba import prange",
           "from netdsl.backends.numba_cpu.jit import njit",
           "from netdsl.backends.numba_cpu.support import view as _view",
           "from netdsl.backends.numba_cpu.support import unowned_view as _unowned_view",
           "from netdsl.backends.numba_cpu.param_table import param_view as _param_view",
           "from netdsl.backends.numba_cpu.separate import separately as _separately",
           "from netdsl.backends.numba_cpu.parallel_calls import in_parallel as _in_parallel",
           "from numba.np.ufunc.parallel import _iget_num_threads as _threads",
           *HELPER_IMPORTS]
# The driver, called from Python: its C entry point (for C callers) is never used.
_DECORATOR = "@njit(cache=True, fastmath=_FASTMATH, error_model='numpy', no_cfunc_wrapper=True)"
_INTERNAL_DECORATOR = f"@njit(cache=True, fastmath=_FASTMATH, error_model='numpy', {INTERNAL})"
# What generated code calls is compiled on its own and called through a symbol (separate.py).
_SEPARATELY = "@_separately"


__all__ = ["CodegenOptions", "FASTMATH", "GeneratedModule", "generate_module"]
