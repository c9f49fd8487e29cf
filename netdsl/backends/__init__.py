"""Backends: `compile_graph(graph, target)` turns a (training or inference) graph into a step.

    compiled = compile_graph(graph)              # fuse -> plan -> codegen -> cache -> compile
    results = compiled.run(arrays)               # reference.run semantics
    step = compiled.bind(arrays)                 # fast path: step(*inputs) -> outputs tuple
    print(compiled.report.format())              # phases, cache hit, fusion and memory report

targets: "cpu" (Numba, one njit driver per graph) and "reference" (the NumPy interpreter,
wrapped to the same interface).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..ir.graph import Graph


@dataclass
class CompileReport:
    """What compiling did: per-phase seconds, cache outcome, kernels, fusion and memory."""

    target: str
    phases: dict[str, float] = field(default_factory=dict)   # fuse, plan, codegen, cache, ...
    cache_hit: bool = False               # the compiled code came from the cache: no LLVM
    llvm_compiles: int = 0                # Numba compilations during this compile (0 on a hit)
    key: str = ""
    module_path: str = ""
    kernels: dict[str, int] = field(default_factory=dict)    # inlined/shared/parallel/ops
    fusion: object = None                 # passes.fusion.FusionReport
    memory: str = ""

    @property
    def total(self) -> float:
        return sum(self.phases.values())

    def format(self) -> str:
        phases = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in
                           self.phases.items())
        lines = [f"compile ({self.target}): {self.total * 1000:.1f} ms [{phases}]"]
        if self.target == "cpu":
            outcome = "hit (no LLVM)" if self.cache_hit else \
                f"miss ({self.llvm_compiles} Numba compilations)"
            lines.append(f"cache: {outcome} {self.module_path}")
            lines.append("kernels: " + ", ".join(f"{v} {k}" for k, v in self.kernels.items()))
        if self.fusion is not None:
            lines.append(self.fusion.format())
        if self.memory:
            lines.append(self.memory)
        return "\n".join(lines)


def compile_graph(graph: Graph, target: str = "cpu", cache_dir=None, *, options=None):
    """Compile `graph` for `target` ("cpu" or "reference"); see CompiledGraph for running it.

    cache_dir overrides $NETDSL_CACHE_DIR; `options` (numba_cpu.CodegenOptions) tunes code
    generation: which loop nests get a parallel kernel, sharing of repeated nests."""
    if target == "reference":
        return _ReferenceCompiled(graph)
    if target != "cpu":
        raise ValueError(f"unknown target {target!r} (expected 'cpu' or 'reference')")
    check_target_support(graph, target)
    from . import cache
    from .numba_cpu.compiled import CompiledGraph
    from .numba_cpu import CodegenOptions, generate_module
    from ..passes.fusion import fuse
    from ..passes.memory import plan_memory

    report = CompileReport(target)
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        report.phases[name] = report.phases.get(name, 0.0) + now - clock
        clock = now

    fused = fuse(graph)
    phase("fuse")
    plan = plan_memory(fused)
    phase("plan")
    generated = generate_module(fused, plan, options or CodegenOptions(), title=graph.name)
    phase("codegen")
    key = cache.cache_key(generated.source, target)
    path, existed = cache.write_module(cache.cache_dir(cache_dir), key, generated.source)
    phase("cache")
    # A driver loaded from the cache may call parallel kernels (ours, or an op's such as
    # conv2d's or log_softmax's) whose thread pool nothing has started in this process.  Their
    # cached machine code links against the pool's symbols (allocate_sched), so start the pool
    # before loading anything: get_num_threads() launches it once, and is public API.
    # The threading layer is chosen when the pool starts: netdsl prefers `workqueue`, because
    # OpenMP's spinning threads made a LeNet step 15x slower on a loaded 2-core machine (558 ms
    # against 38 ms, measured here).  NUMBA_THREADING_LAYER, when set, still decides.
    import os

    import numba
    if "NUMBA_THREADING_LAYER" not in os.environ and not _pool_started():
        numba.config.THREADING_LAYER = "workqueue"
    numba.get_num_threads()
    with cache.LLVMCounter() as counter:
        module = cache.import_module(path, key, generated.source)   # checked, run from memory
        phase("load")
        driver = module.step
        hits_before = sum(driver.stats.cache_hits.values())
        if not driver.signatures:
            driver.compile(_signature(generated, graph, fused))
        driver.disable_compile()
        phase("compile")
    report.llvm_compiles = counter.count
    report.cache_hit = counter.count == 0 and (existed or sum(
        driver.stats.cache_hits.values()) > hits_before)
    report.key, report.module_path = key, str(path)
    report.kernels = generated.kernels
    report.fusion = fused.report()
    report.memory = plan.report(report.fusion.bindings)
    constants = {k: _writeable(node.attrs["value"]) for k, node in enumerate(fused.constants)}
    return CompiledGraph(graph, driver, generated, plan, fused, report, constants)


# Element types each compiled target can hold in its arrays.  Numba has no float16 on the CPU
# (its data model raises NotImplementedError for it), so f16 runs on the reference only.
UNSUPPORTED_DTYPES = {"cpu": ("f16",)}


def check_target_support(graph: Graph, target: str) -> None:
    """Raise an Error at the first value whose element type `target` cannot compile."""
    from ..errors import Error
    unsupported = UNSUPPORTED_DTYPES.get(target, ())
    if not unsupported:
        return
    for value in graph.inputs:
        if value.dtype.value in unsupported:
            raise Error(_unsupported_message(value.dtype, target),
                        graph.input_spans.get(value.name), _UNSUPPORTED_HINT)
    for info in graph.params:
        if info.value.dtype.value in unsupported:
            raise Error(_unsupported_message(info.value.dtype, target), info.span,
                        _UNSUPPORTED_HINT)
    for node in graph.nodes:
        for value in node.outputs:
            if value.dtype.value in unsupported:
                raise Error(_unsupported_message(value.dtype, target), node.span,
                            _UNSUPPORTED_HINT)
        body = node.attrs.get("body")
        if isinstance(body, Graph):
            check_target_support(body, target)


_UNSUPPORTED_HINT = 'use f32, or run on target "reference"'


def _unsupported_message(dtype, target: str) -> str:
    return (f"the {target} target does not support {dtype} tensors "
            f"(Numba has no {dtype} on the CPU)")


def _pool_started() -> bool:
    from numba.np.ufunc import parallel
    return bool(getattr(parallel, "_is_initialized", False))


def _writeable(array):
    import numpy as np
    return np.array(array, order="C")


def _signature(generated, graph: Graph, fused) -> tuple:
    """The driver's Numba argument types (compiled eagerly, so compile time is measured here)."""
    from numba import from_dtype, types

    def array(dtype, rank: int):
        return types.Array(from_dtype(dtype), rank, "C")

    by_name = {v.name: v for v in graph.inputs}
    by_name.update({p.name: p.value for p in graph.params})
    result = []
    for kind, key in generated.params:
        if kind in ("input", "param"):
            value = by_name[key]
            result.append(array(value.dtype.numpy, value.rank))
        elif kind == "const":
            constant = fused.constants[key].attrs["value"]
            result.append(array(constant.dtype, constant.ndim))
        elif kind == "arena":
            result.append(array(key.numpy, 1))
        else:
            result.append(array(__import__("numpy").dtype("int64"), 1))
    return tuple(result)


class _ReferenceCompiled:
    """The reference interpreter behind the CompiledGraph interface (run, bind, report)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.report = CompileReport("reference")
        self.output_names = list(graph.outputs) + [loss.name for loss in graph.losses]
        self.source = ""

    def run(self, arrays):
        from .numba_cpu.compiled import index_error
        from .reference import run
        try:
            return run(self.graph, arrays)
        except IndexError as error:       # the same Error as the compiled kernels' bounds check
            raise index_error(self.graph, arrays, error) from None

    __call__ = run

    def bind(self, arrays, inputs=None):
        names = list(inputs) if inputs is not None else [v.name for v in self.graph.inputs]

        def step(*values):
            feeds = dict(arrays)
            feeds.update(zip(names, values))
            results = self.run(feeds)
            return tuple(results[name] for name in self.output_names)

        step.input_names, step.output_names = names, self.output_names
        return step


__all__ = ["CompileReport", "check_target_support", "compile_graph"]
