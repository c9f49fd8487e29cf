"""The "cuda" target's stages: fuse -> plan_memory -> codegen -> cache -> load.

The same pipeline as the cpu target up to the memory plan; codegen writes a module of
`@cuda.jit` kernels and a host driver (codegen.py), cache stores it under its content hash
(keyed by the target and the toolchain, simulator or GPU), and load imports it.  numba.cuda is
imported only when compiling, after device.cuda() has checked that there is a device (or the
simulator); the kernels compile to PTX on their first launch and numba-cuda caches them beside
the module (`cache=True`).
"""
from __future__ import annotations

from ...ir.graph import Graph
from ..target import CompileReport, StageClock, Target


class NumbaCudaTarget(Target):
    name = "cuda"
    stages = ("fuse", "plan_memory", "codegen", "cache", "load")
    description = "numba-cuda kernels launched by a generated host driver"
    unsupported_dtypes = ("f16",)
    unsupported_reason = "the cuda target computes in f32 and f64"

    def compile(self, graph: Graph, *, cache_dir=None, options=None, trace=None,
                stop_after=None):
        from ...passes.fusion import fuse
        from ...passes.memory import plan_memory
        from .. import cache
        from .codegen import CudaOptions, generate_module
        from .compiled import CudaCompiledGraph
        from .device import cuda, reduce_threads, toolchain

        report = CompileReport(self.name)
        clock = StageClock(report, trace, stop_after)
        fused = fuse(graph)
        if clock.done("fuse", fused):
            return fused
        plan = plan_memory(fused)
        if clock.done("plan_memory", plan, phase="plan"):
            return plan
        self.check_support(graph)
        numba_cuda = cuda()                  # an Error when there is no device or simulator
        generated = generate_module(fused, plan, options or CudaOptions(reduce_threads()),
                                    title=graph.name)
        if clock.done("codegen", generated):
            return generated
        directory = cache.cache_dir(cache_dir)
        key = cache.cache_key(generated.source, self.name, toolchain())
        path, existed = cache.write_module(directory, key, generated.source)
        if clock.done("cache", path):
            return path
        module = cache.import_module(path, key, generated.source, None)
        clock.lap("load")
        report.cache_hit = existed
        report.key, report.module_path = key, str(path)
        report.kernels = generated.kernels
        report.fusion = fused.report()
        report.memory = plan.report(report.fusion.bindings)
        constants = {k: node.attrs["value"] for k, node in enumerate(fused.constants)}
        compiled = CudaCompiledGraph(graph, numba_cuda, module, generated, plan, fused, report,
                                     {k: _contiguous(v) for k, v in constants.items()})
        if trace is not None:
            trace("load", compiled)
        return compiled


def _contiguous(array):
    import numpy as np
    return np.array(array, order="C")


__all__ = ["NumbaCudaTarget"]
