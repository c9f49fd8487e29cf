"""What `fit` says while it compiles its steps, before the first epoch.

A cold compile is silent work of seconds (LLVM), once per model: the cache keeps it.  On a
terminal a spinner (progress.Spinner) names the step and the compiler stage running, with the
time so far; on a terminal or in a log alike, each compiled graph gets a line as soon as it is
done, with its ops, kernels and whether it came from the cache ("first run only; cached in
DIR"):

    compiling Tiny for cpu: 1 training step...
      step: 41 ops in 12 kernels, compiled (9.8 s; first run only, cached in ~/.cache/netdsl)
      validation: 23 ops in 7 kernels, compiled (3.1 s; first run only, cached in ...)
      ready in 12.9 s
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

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
    """Follows the compile of the steps (build_plan's `trace` and `on_step`) and then of the
    validation graph: the spinner names the stage running, and each compiled graph's line is
    printed as soon as it is done, so a log shows progress during a cold compile too.

    `trace(stage, result)` reports the stage that has just finished; the one running now is
    the next in `stages` (compiler.stage_names).  `on_step(step)` ends a step's compile."""

    def __init__(self, spinner, objectives: list, target: str, printer=None):
        from ..compiler import stage_names
        self.spinner, self.printer, self.stages = spinner, printer, stage_names(target)
        self.labels = [objective or "step" for objective in objectives]
        self.step = 0
        self._show(0)

    def __call__(self, stage: str, result=None) -> None:
        if stage in self.stages and self.stages.index(stage) + 1 < len(self.stages):
            self._show(self.stages.index(stage) + 1)

    def on_step(self, step) -> None:
        """A training step is compiled: its line, then the next step's first stage."""
        self.say(compile_line(self.labels[self.step], step.compiled, step.reused))
        self.step += 1
        if self.step < len(self.labels):
            self._show(0)

    def validation(self, make: Callable[[], Any]) -> Any:
        """Compile the validation graph (`make()`, which reports no stages) and say so."""
        self.spinner.phase("validation: compiling the inference graph")
        evaluator = make()
        self.say(compile_line("validation", evaluator.compiled, evaluator.reused))
        return evaluator

    def say(self, line: str) -> None:
        if self.printer is not None:
            self.spinner.above(lambda: self.printer(line))

    def _show(self, position: int) -> None:
        count = len(self.labels)
        which = f" ({self.step + 1}/{count})" if count > 1 else ""
        self.spinner.phase(f"{self.labels[self.step]}{which}: {stage_text(self.stages[position])}")


@contextmanager
def compiling(model_name: str, objectives: list, target: str,
              printer: Callable[[str], None] | None = None) -> Iterator[CompilePhases]:
    """Say what compiling the steps does: a first line, a spinner on a terminal, a line per
    compiled graph and the total time, all through `printer` (None: silent)."""
    if printer is not None:
        count = len(objectives)
        printer(f"compiling {model_name} for {target}: {count} training "
                f"step{'s' if count > 1 else ''}...")
    started = time.perf_counter()
    spinner = Spinner(f"compiling {model_name}", enabled=printer is not None)
    phases = CompilePhases(spinner, objectives, target, printer)  # the first frame says its phase
    with spinner:
        yield phases
    if printer is not None:
        printer(f"  ready in {time.perf_counter() - started:.1f} s")


def compile_line(label: str, compiled, reused: bool = False) -> str:
    """`  step: 41 ops in 12 kernels, loaded from the cache`: one compiled graph (`reused`:
    compiled by an earlier fit of the same model in this process)."""
    from ..backends.cache import cache_dir
    report = compiled.report
    kernels = sum(report.kernels.values()) if report.kernels else 0
    what = f"{len(compiled.graph.nodes)} ops"
    if kernels:
        what += f" in {kernels} kernels"
    if reused:
        what += ", compiled earlier in this process"
    elif report.module_path:
        what += ", loaded from the cache" if report.cache_hit else \
            f", compiled ({report.total:.1f} s; first run only, cached in {cache_dir()})"
    return f"  {label}: {what}"
