"""What `fit` says while it compiles its steps, before the first epoch.

A cold compile is silent work of seconds (LLVM), once per model: the cache keeps it.  On a
terminal a spinner (progress.Spinner) names the step and the compiler stage running, with the
time so far; afterwards, on a terminal or in a log alike, one line per compiled step says its
ops, kernels and whether it came from the cache ("first run only; cached in DIR"):

    compiling Tiny for cpu: 1 training step...
      step: 41 ops in 12 kernels, compiled (9.8 s; first run only, cached in ~/.cache/netdsl)
      validation: 23 ops in 7 kernels, compiled (3.1 s; first run only, cached in ...)
      ready in 12.9 s
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .progress import Spinner

# What the spinner says while a stage runs; the other stages are graph passes.
_STAGE_TEXT = {
    "training": "building the gradients and the update",
    "fuse": "fusing kernels",
    "plan_memory": "planning memory",
    "codegen": "generating code",
    "cache": "looking in the cache",
    "load": "loading (a first run compiles with LLVM: seconds, once)",
}


def stage_text(stage: str) -> str:
    return _STAGE_TEXT.get(stage, f"graph pass {stage}")


class CompilePhases:
    """The `trace` of build_plan: from each stage that has finished, the one running now.

    The steps compile one after another, each through `stages` (compiler.stage_names), so
    the stage after the last one of a step is the first of the next."""

    def __init__(self, spinner, objectives: list, target: str):
        from ..compiler import stage_names
        self.spinner, self.stages = spinner, stage_names(target)
        self.labels = [objective or "step" for objective in objectives]
        self.step = 0
        self._show(0)

    def __call__(self, stage: str, result=None) -> None:
        if stage not in self.stages:
            return
        following = self.stages.index(stage) + 1
        if following == len(self.stages):
            self.step, following = self.step + 1, 0
        if self.step < len(self.labels):
            self._show(following)

    def _show(self, position: int) -> None:
        count = len(self.labels)
        which = f" ({self.step + 1}/{count})" if count > 1 else ""
        self.spinner.phase(f"{self.labels[self.step]}{which}: {stage_text(self.stages[position])}")

    def validation(self) -> None:
        """The validation graph compiles next (it reports no stages)."""
        self.spinner.phase("validation: compiling the inference graph")


@contextmanager
def compiling(model_name: str, objectives: list, target: str,
              enabled: bool = True) -> Iterator[CompilePhases]:
    """A spinner (on a terminal, when `enabled`) for the steps' compile; yields the trace
    to give build_plan."""
    spinner = Spinner(f"compiling {model_name}", enabled=enabled)
    phases = CompilePhases(spinner, objectives, target)     # the first frame names its phase
    with spinner:
        yield phases


def compile_line(label: str, compiled) -> str:
    """`  step: 41 ops in 12 kernels, loaded from the cache`: one compiled graph."""
    from ..backends.cache import cache_dir
    report = compiled.report
    kernels = sum(report.kernels.values()) if report.kernels else 0
    what = f"{len(compiled.graph.nodes)} ops"
    if kernels:
        what += f" in {kernels} kernels"
    if report.module_path:
        what += ", loaded from the cache" if report.cache_hit else \
            f", compiled ({report.total:.1f} s; first run only, cached in {cache_dir()})"
    return f"  {label}: {what}"


def compile_lines(plan, seconds: float, validation=None) -> list[str]:
    """What compiling the steps (and the validation graph, when given) did, a line each, and
    the time it all took."""
    lines = [compile_line(step.objective or "step", step.compiled) for step in plan.steps]
    if validation is not None:
        lines.append(compile_line("validation", validation))
    lines.append(f"  ready in {seconds:.1f} s")
    return lines
