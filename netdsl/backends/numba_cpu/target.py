"""The "cpu" target's stages: fuse -> plan_memory -> codegen -> cache -> load.

fuse first wraps an inference graph's runs of ops that keep the batch's rows apart in
`row_blocks` nodes (passes/row_regions.py; `CodegenOptions.row_regions`), then groups the
graph's nodes into kernels (passes/fusion.py); plan_memory lays the
intermediate buffers out in arenas (passes/memory.py), codegen writes one Python module with
an `@njit` driver, cache stores it under its content hash (backends/cache.py, keyed by the
target's name too) beside the modules of its shared segments (each under its own content hash,
shared by every model that repeats the same block), and load imports those, then the driver's
module, and compiles the driver for the graph's argument types
(Numba is imported only here).  The result is a `CompiledGraph` (compiled.py).
"""
from __future__ import annotations

import os

from ...ir.graph import Graph
from ..target import CompileReport, StageClock, Target


class NumbaCpuTarget(Target):
    name = "cpu"
    stages = ("fuse", "plan_memory", "codegen", "cache", "load")
    description = "Numba, one njit driver per graph"
    # Numba has no float16 on the CPU (its data model raises NotImplementedError for it).
    unsupported_dtypes = ("f16",)
    unsupported_reason = "Numba has no {dtype} on the CPU"

    def compile(self, graph: Graph, *, cache_dir=None, options=None, trace=None,
                stop_after=None):
        """`options` (CodegenOptions) tunes code generation: which loop nests get a parallel
        kernel, sharing of repeated nests; cache_dir overrides $NETDSL_CACHE_DIR."""
        from ...passes.fusion import fuse
        from ...passes.memory import plan_memory
        from ...passes.row_regions import row_regions
        from .. import cache
        from . import blas_library, compile_helper, numba_cache, own_entry
        from .codegen import CodegenOptions, generate_module
        from .compiled import CompiledGraph

        if stop_after is None:
            blas_library.preload()   # the BLAS libraries load on a thread beside the compile
            own_entry.prepare()      # netdsl's own products compile beside it, where they run
        options = options or CodegenOptions()
        report = CompileReport(self.name)
        clock = StageClock(report, trace, stop_after)
        regions = row_regions(graph) if options.regions_for(graph) else graph
        fused = fuse(regions, windows=True)
        if clock.done("fuse", fused):
            return fused
        plan = plan_memory(fused)
        if clock.done("plan_memory", plan, phase="plan"):
            return plan
        self.check_support(graph)            # before codegen: fuse and plan work on f16 too
        generated = generate_module(fused, plan, options, title=graph.name)
        if clock.done("codegen", generated):
            return generated
        directory = cache.cache_dir(cache_dir)
        numba_cache.check_cache_dir()
        key = cache.cache_key(generated.source, self.name, numba_cache.toolchain())
        segments = {segment: cache.write_module(directory, segment, text)[0]
                    for segment, text in generated.segments.items()}
        path, existed = cache.write_module(directory, key, generated.source)
        if clock.done("cache", path):
            return path
        _start_thread_pool()
        with numba_cache.LLVMCounter() as counter:
            for segment, segment_path in segments.items():   # before the driver imports them
                cache.import_module(segment_path, segment, generated.segments[segment],
                                    numba_cache.guard)
            module = cache.import_module(path, key, generated.source,   # checked, from memory
                                         numba_cache.guard)
            clock.lap("load")
            driver = module.step
            hits_before = sum(driver.stats.cache_hits.values())
            signature = _signature(generated, graph, fused)
            if signature not in driver.signatures:
                # The module (named by its text) may hold the driver for other argument
                # types already: two graphs can read the same, as a copy of a 2-d input and
                # of a 3-d one do.  It compiles (or loads) for these types too.
                driver.disable_compile(False)
                helped = _helped(module, generated, driver, signature)
                with compile_helper.helping(module, helped, signature):
                    # A split driver's parts first, each by whichever of the two processes
                    # gets to it first; the driver's typing then finds them compiled.
                    compile_helper.take_parts(
                        module, [name for name in helped if name.startswith("part_")],
                        signature)
                    driver.compile(signature)
            driver.disable_compile()
            clock.lap("compile")
        report.llvm_compiles = counter.count
        report.cache_hit = counter.count == 0 and (existed or sum(
            driver.stats.cache_hits.values()) > hits_before)
        report.key, report.module_path = key, str(path)
        report.kernels = generated.kernels
        report.fusion = fused.report()
        report.memory = plan.report(report.fusion.bindings)
        constants = {k: _writeable(node.attrs["value"]) for k, node in enumerate(fused.constants)}
        own_entry.load()             # before anything runs the graph
        blas_library.ready()
        compiled = CompiledGraph(graph, driver, generated, plan, fused, report, constants)
        if trace is not None:
            trace("load", compiled)
        return compiled


def _helped(module, generated, driver, signature) -> list[str]:
    """What a helper compiles beside the driver (compile_helper.py): the driver's reversed
    twin (parts.warm_up), typed only, where a function it calls separately (a library
    kernel, a shared loop nest) was never compiled into Numba's cache, then the parts of a
    split driver, each part nobody has taken yet (compile_helper.take_parts); nothing where
    Numba's cache holds the driver.

    The twin comes first: its typing compiles the library kernels from the driver's last
    while this process compiles them from its first, whatever part each is in.  Parts alone
    were too coarse: LeNet-5's first part holds every forward kernel, 4.2 of the 6.8 s of
    its serial compile, and the helper, done with the later parts, waited for it."""
    from . import numba_cache
    if numba_cache.holds(driver, signature):
        return []
    parts = [f"part_{k}" for k in range(generated.kernels.get("parts", 0))]
    twin = ["warm_up"] if hasattr(module, "warm_up") and \
        numba_cache.separate_uncached(module) else []
    return parts + twin


def _start_thread_pool() -> None:
    """Start Numba's thread pool before loading a driver.

    A driver loaded from the cache may call parallel kernels (ours, or an op's such as
    conv2d's or log_softmax's) whose thread pool nothing has started in this process.  Their
    cached machine code links against the pool's symbols (allocate_sched), so start the pool
    before loading anything: get_num_threads() launches it once, and is public API.
    The threading layer is chosen when the pool starts: netdsl prefers TBB (a dependency on
    x86-64), then `workqueue`, never OpenMP by default.  Measured on a 2-core VM (Xeon), a
    parallel loop of two 50 us halves (100 us serially): workqueue 284 us (its sleeping workers
    took 150-170 us to start a region, so no parallel kernel paid), OpenMP spinning 51 us,
    OpenMP passive 128 us, TBB 58 us.  OpenMP's spinning threads made a LeNet step 15x
    slower on a loaded 2-core machine (558 ms against 38 ms), and GNU OpenMP is not fork-safe
    (the compile helper forks); TBB is thread- and fork-safe.  LeNet-5's step at batch 64, two
    threads, one core busy with another process: 4.5 ms with TBB against 14.3 with workqueue
    and OpenBLAS's threads.  NUMBA_THREADING_LAYER, when set, still decides."""
    import numba
    from numba.np.ufunc import parallel
    if "NUMBA_THREADING_LAYER" not in os.environ and \
            not getattr(parallel, "_is_initialized", False):
        numba.config.THREADING_LAYER = "default"        # the first of the priority that loads
        numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]
    numba.get_num_threads()


def _writeable(array):
    import numpy as np
    return np.array(array, order="C")


def _signature(generated, graph: Graph, fused) -> tuple:
    """The driver's Numba argument types (compiled eagerly, so compile time is measured here)."""
    import numpy as np
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
            result.append(array(np.dtype("int64"), 1))
    return tuple(result)
