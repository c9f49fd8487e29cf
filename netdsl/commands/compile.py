"""`netdsl compile FILE [--emit ir|graph|kernels|source]`: compile and show any stage.

The compiled unit is the whole training step (forward, loss, gradients and the train section's
optimiser update) when the model has a loss, else the inference forward; `--forward` chooses the
inference forward.  Whatever is emitted, the command ends with the compile report: time per
phase, whether the compile cache was hit (no LLVM), and the fusion report.
"""
from __future__ import annotations

import argparse

from .base import add_target_argument, command

STAGES = ("ir", "graph", "kernels", "source")


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model (default: the last one)")
    add_target_argument(parser)
    parser.add_argument("--emit", choices=STAGES, action="append", default=[],
                        help="print a stage: ir (after lowering), graph (after the optimisation "
                             "passes), kernels (fusion groups), source (generated Numba code); "
                             "repeatable")
    parser.add_argument("--forward", action="store_true",
                        help="compile the inference forward instead of the training step")
    parser.add_argument("--stages", action="store_true",
                        help="with --emit graph, print the graph after every pass")


def step_spec(model, forward: bool):
    """What `netdsl compile` compiles: (graph, training) for compile_step -- the training step
    the train section describes, or the inference forward."""
    if forward or not model.graph.losses:
        return model.inference_graph, None
    from ..compiler import Training
    return model.training_forward, Training.from_config(model.train_config)


@command("compile", "compile a model (training step or forward) and show its stages", _setup)
def run(args: argparse.Namespace) -> int:
    import time

    from ..compiler import StageRecorder, compile_step
    from ..ir.printer import print_graph
    from ..model import load
    from ..passes.pipeline import stage_names
    started = time.perf_counter()
    model = load(args.file, args.model)
    graph, training = step_spec(model, args.forward)
    lowered = graph
    timings = {"front end": time.perf_counter() - started}
    passes = set(stage_names())

    def show(stage: str, result) -> None:
        """Print the stages asked for as they are made; time the graph passes."""
        if stage == "training":
            timings["passes started"] = time.perf_counter()
        if stage == "training" and "ir" in args.emit:
            _section("ir: after lowering and differentiation", print_graph(result))
        elif stage in passes and args.stages and "graph" in args.emit:
            _section(f"graph after {stage}", print_graph(result))
        if stage == stage_names()[-1]:
            timings["passes"] = time.perf_counter() - timings["passes started"]
            if "graph" in args.emit and not args.stages:
                _section("graph: after the optimisation passes", print_graph(result))
        elif stage == "fuse" and "kernels" in args.emit:
            _section("kernels: fusion groups", result.format())
        elif stage == "codegen" and "source" in args.emit:
            _section(f"source: the generated module ({args.target} target)", result.source)

    if training is None and "ir" in args.emit:
        _section("ir: after lowering and differentiation", print_graph(lowered))
    timings["passes started"] = time.perf_counter()
    recorder = StageRecorder("training", stage_names()[-1], then=show)
    compiled = compile_step(graph, target=args.target, training=training, trace=recorder)
    built = recorder.results.get("training", lowered)
    optimized = recorder[stage_names()[-1]]
    kind = "inference forward" if training is None else "training step"
    print(f"compiled the {kind} of {model.name}: {len(built.nodes)} ops after lowering, "
          f"{len(optimized.nodes)} after the passes")
    print(f"front end {timings['front end'] * 1000:.1f} ms, "
          f"passes {timings['passes'] * 1000:.1f} ms")
    print(compiled.report.format())
    return 0


def _section(title: str, text: str) -> None:
    print(f"── {title} " + "─" * max(0, 70 - len(title)))
    print(text.rstrip())
    print()
