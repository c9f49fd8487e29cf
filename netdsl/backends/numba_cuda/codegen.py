"""CUDA code generation: one Python module per compiled graph, holding `@cuda.jit` kernels and
a host driver that launches them.

The driver, `step(inputs..., params..., constants..., arenas..., offsets)`, is plain Python on
the host: it carves each buffer as a device view into one flat device arena per dtype at the
memory plan's offsets (the arenas, parameters and optimiser state stay on the device), then
runs the kernel groups in order, each a kernel launch (a loop nest rendered by render.py, one
kernel per distinct source) or an op's lowering (lowerings/: launchers of library kernels),
and returns the outputs and losses as device arrays.  The target-neutral half of writing a
driver -- naming values, symbolic dims read from the inputs' shapes, carving buffers -- is the
cpu target's FunctionWriter (numba_cpu/function.py), which this writer extends.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import Error
from ...passes.fusion import FusedGraph, KernelGroup
from ...passes.memory import MemoryPlan
from ..loopir import build_loop_nest, collapse, extents
from ..numba_cpu.function import FunctionWriter
from .context import HostContext
from .render import kernel_source


@dataclass
class CudaOptions:
    threads: int = 32              # block size of reduction kernels (a power of two)


@dataclass
class GeneratedModule:
    """The generated source and how to call its driver (the cpu target's GeneratedModule's
    fields that the compiled graph reads)."""

    source: str
    params: list[tuple[str, object]]
    outputs: list[str]
    kernels: dict[str, int] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)


class ModuleWriter:
    """What one generated CUDA module shares: kernels by source, launcher imports."""

    def __init__(self, options: CudaOptions):
        self.options = options
        self.ctx = HostContext()
        self.kernels: dict[str, str] = {}            # kernel source -> function name
        self.lines: list[str] = []
        self.counts = {"kernels": 0, "launches": 0, "ops": 0, "bodies": 0}
        self.bodies: dict[int, str] = {}             # id(scan body graph) -> host function
        self.definitions: dict[str, list[str]] = {}  # module function name -> its lines

    def body_function(self, graph) -> str:
        """A host function `f(*inputs, *outputs, *arenas) -> arenas` running `graph` (a scan
        body) on device arrays, written by the same writer as the driver."""
        from ...passes.fusion import fuse
        from ...passes.memory import plan_memory
        if id(graph) not in self.bodies:
            fused = fuse(graph)
            name = f"body_{len(self.bodies)}"
            self.bodies[id(graph)] = name
            lines = CudaFunctionWriter(fused, plan_memory(fused), self).body(name)
            self.definitions[name] = lines
            self.lines += [*lines, ""]
            self.counts["bodies"] += 1
        return self.bodies[id(graph)]

    def kernel(self, source: str) -> str:
        name = self.kernels.get(source)
        if name is None:
            name = self.kernels[source] = f"kernel_{len(self.kernels)}"
            self.lines += ["@cuda.jit(cache=True)",
                           source.replace("def kernel(", f"def {name}(", 1), ""]
            self.counts["kernels"] += 1
        return name


class CudaFunctionWriter(FunctionWriter):
    """The host driver: the cpu writer's naming and carving, CUDA launches for the groups."""

    def _kernels(self, carves: dict[str, str]) -> list[str]:
        views, groups = [], []
        for t, group in enumerate(self.fused.groups):
            lines = self.group(t, group)
            if group.kind == "view":
                views.extend(lines)
            else:
                comment = f"# k{t} {group.kind}: {' '.join(n.op.name for n in group.nodes)}"
                groups += [comment, *lines]
        return views + groups

    def _copy(self, target: str, source: str, value) -> list[str]:
        return [f"_copy({target}, {source})"]

    def empty(self, shape: str, dtype) -> str:
        return f"cuda.device_array({shape}, dtype=np.{dtype.numpy.name})"

    def largest(self, sizes: list[str]) -> str:
        """Python's `max`: this host driver runs as Python, which has no `_max2`."""
        return sizes[0] if len(sizes) == 1 else f"max({', '.join(sizes)})"

    def constant_lines(self, node, name: str) -> list[str]:
        from .lowerings import lowering_for
        return lowering_for(node.op)(self.module.ctx, node, [], [name])

    def nest(self, t: int, group: KernelGroup) -> list[str]:
        nest = collapse(build_loop_nest(group, self.const_nodes))
        sizes = [self.dim(d) for d in extents(nest)]
        threads = self.module.options.threads
        memory = self.memory          # a body's outputs made in place: keyed by the output
        source, arrays = kernel_source(nest, memory, threads=threads)
        name = self.module.kernel(source)
        self.module.counts["launches"] += 1
        args = ", ".join(sizes + [f"_flat({self.names[v.id]})" for v in arrays])
        if nest.reduction is None:
            total = " * ".join(sizes) or "1"
            return [f"{name}[_grid({total})]({args})"]
        serial = self.module.kernel(kernel_source(nest, memory, tree=False)[0])
        kept = " * ".join(sizes[k] for k, kind in enumerate(nest.kinds) if kind != "reduce")
        count = " * ".join(sizes[k] for k, kind in enumerate(nest.kinds) if kind == "reduce")
        return [f"if {count or '1'} >= _TREE_MIN:",
                f"    {name}[_reduce_grid({kept or '1'}, {threads})]({args})",
                "else:",
                f"    {serial}[_grid({kept or '1'})]({args})"]

    def op(self, node) -> list[str]:
        from .lowerings import lowering_for
        ins = [self.names[v.id] for v in node.inputs]
        outs = [self.names[v.id] for v in node.outputs]
        self.module.counts["ops"] += 1
        if node.op.name == "scan":
            from .scan import emit_scan
            return emit_scan(self, node, ins, outs)
        lower = lowering_for(node.op)
        if lower is None:
            raise Error(f"the cuda target cannot compile op '{node.op.name}' yet: it has no "
                        f"CUDA lowering", node.span, hint="--target cpu compiles it")
        return lower(self.module.ctx, node, ins, outs)


def generate_module(fused: FusedGraph, plan: MemoryPlan, options: CudaOptions | None = None,
                    title: str = "") -> GeneratedModule:
    """The Python source of the CUDA module for a fused, planned graph."""
    module = ModuleWriter(options or CudaOptions())
    driver, params, outputs = CudaFunctionWriter(fused, plan, module).driver()
    header = [f'"""netdsl generated CUDA module: {title}"""', *_HEADER,
              *module.ctx.import_lines(), ""]
    source = "\n".join(header + module.lines + driver) + "\n"
    return GeneratedModule(source, params, outputs, dict(module.counts))


_HEADER = ["import math", "import numpy as np", "import numba as _numba", "from numba import cuda",
           "from netdsl.backends.numba_cuda.support import view as _view, flat as _flat, "
           "grid as _grid, reduce_grid as _reduce_grid, copy as _copy, _sign, "
           "take_step as _take_step, put_step as _put_step",
           "from netdsl.backends.numba_cuda.device import tree_min as _tree_min",
           "_TREE_MIN = _tree_min()"]


__all__ = ["CudaOptions", "GeneratedModule", "generate_module"]
