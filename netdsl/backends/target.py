"""Targets: what a backend offers the compiler, and the registry that finds them by name.

A `Target` turns a graph that went through the pass pipeline into a compiled object with the
reference calling convention:

    compiled = get_target("cpu").compile(graph)   # the target's own stages, in order
    results = compiled.run(arrays)                # outputs and losses by name
    step = compiled.bind(arrays, inputs=[...])    # the fast path for training loops
    print(compiled.report.format())               # CompileReport: phases, cache, kernels

Every target lives in its own package under `backends/` and registers itself when that package
is imported (`register_target`).  `get_target` imports the built-in target packages on first
use; they must not import their compiler (Numba for "cpu") until `compile` is called, so that
`netdsl check` and the CLI's `--target` choices stay cheap.  `netdsl/compiler.py` is the one
place that runs the stage list: training graph, pass pipeline, then `Target.stages`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import Error
from ..ir.graph import Graph

# Packages imported to find the built-in targets (each registers one or more).
BUILTIN_TARGETS = ("netdsl.backends.numba_cpu", "netdsl.backends.numba_cuda",
                   "netdsl.backends.reference")

Trace = Callable[[str, Any], None]


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
        if self.module_path:
            outcome = "hit (no LLVM)" if self.cache_hit else \
                f"miss ({self.llvm_compiles} Numba compilations)"
            lines.append(f"cache: {outcome} {self.module_path}")
            lines.append("kernels: " + ", ".join(f"{v} {k}" for k, v in self.kernels.items()))
        if self.fusion is not None:
            lines.append(self.fusion.format())
        if self.memory:
            lines.append(self.memory)
        return "\n".join(lines)


class Target:
    """One compilation target.  Subclasses set `name`, `stages` and implement `compile`.

    `stages` names the target's own stages in the order `compile` runs them; `compile` calls
    `trace(stage, result)` after each and returns that stage's result early when it is
    `stop_after` (what `netdsl compile --emit` shows).  `unsupported_dtypes` are element types
    the target cannot hold in its arrays; `check_support` refuses a graph that uses one."""

    name: str = ""
    stages: tuple[str, ...] = ()
    description: str = ""
    unsupported_dtypes: tuple[str, ...] = ()
    unsupported_reason: str = ""

    def compile(self, graph: Graph, *, cache_dir=None, options=None, trace: Trace | None = None,
                stop_after: str | None = None):
        raise NotImplementedError

    def check_support(self, graph: Graph) -> None:
        """Raise an Error at the first value whose element type this target cannot compile."""
        if not self.unsupported_dtypes:
            return
        for value in graph.inputs:
            self._check_dtype(value.dtype, graph.input_spans.get(value.name))
        for info in graph.params:
            self._check_dtype(info.value.dtype, info.span)
        for node in graph.nodes:
            for value in node.outputs:
                self._check_dtype(value.dtype, node.span)
            body = node.attrs.get("body")
            if isinstance(body, Graph):
                self.check_support(body)

    def _check_dtype(self, dtype, span) -> None:
        if dtype.value in self.unsupported_dtypes:
            reason = f" ({self.unsupported_reason.format(dtype=dtype)})" \
                if self.unsupported_reason else ""
            raise Error(f"the {self.name} target does not support {dtype} tensors{reason}",
                        span, 'use f32, or run on target "reference"')

    def __repr__(self) -> str:
        return f"<Target {self.name}: {', '.join(self.stages) or 'no stages'}>"


_TARGETS: dict[str, Target] = {}
_discovered = False


def register_target(target: Target) -> Target:
    """Make `target` known by its name (a target package calls this when imported)."""
    if not target.name:
        raise ValueError("a target needs a name")
    _TARGETS[target.name] = target
    return target


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        for module in BUILTIN_TARGETS:
            importlib.import_module(module)


def target_names() -> list[str]:
    """Every registered target's name, sorted."""
    _discover()
    return sorted(_TARGETS)


def get_target(name: str) -> Target:
    """The target called `name`; an Error listing the known targets when there is none."""
    if isinstance(name, Target):
        return name
    _discover()
    if name not in _TARGETS:
        from ..errors import did_you_mean
        known = ", ".join(sorted(_TARGETS))
        raise Error(f"unknown target '{name}' (targets: {known})",
                    hint=did_you_mean(str(name), _TARGETS) or f"use one of {known}")
    return _TARGETS[name]


class StageClock:
    """Per-stage seconds into a CompileReport, and the trace/stop_after protocol of a target.

    `done(stage, result)` records the time since the previous stage, calls the trace, and
    says whether the compile should stop here."""

    def __init__(self, report: CompileReport, trace: Trace | None, stop_after: str | None):
        import time
        self._now = time.perf_counter
        self.report, self.trace, self.stop_after = report, trace, stop_after
        self.clock = self._now()

    def lap(self, phase: str) -> None:
        now = self._now()
        self.report.phases[phase] = self.report.phases.get(phase, 0.0) + now - self.clock
        self.clock = now

    def done(self, stage: str, result: Any, phase: str | None = None) -> bool:
        self.lap(phase or stage)
        if self.trace is not None:
            self.trace(stage, result)
            self.clock = self._now()          # printing a stage is not compile time
        return stage == self.stop_after


__all__ = ["BUILTIN_TARGETS", "CompileReport", "StageClock", "Target", "get_target",
           "register_target", "target_names"]
