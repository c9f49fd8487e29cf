"""`netdsl compile FILE [--emit ir|graph|kernels|source]`: compile and show any stage.

The compiled unit is the whole training step (forward, loss, gradients and the train section's
optimiser update) when the model has a loss, else the inference forward; `--forward` chooses the
inference forward.  Whatever is emitted, the command ends with the compile report: time per
phase, whether the compile cache was hit (no LLVM), and the fusion report.
"""
from __future__ import annotations

import argparse

from .base import command

STAGES = ("ir", "graph", "kernels", "source")


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model (default: the last one)")
    parser.add_argument("--target", default="cpu", choices=["cpu", "reference"])
    parser.add_argument("--emit", choices=STAGES, action="append", default=[],
                        help="print a stage: ir (after lowering), graph (after the optimisation "
                             "passes), kernels (fusion groups), source (generated Numba code); "
                             "repeatable")
    parser.add_argument("--forward", action="store_true",
                        help="compile the inference forward instead of the training step")
    parser.add_argument("--stages", action="store_true",
                        help="with --emit graph, print the graph after every pass")


def build_graph(model, forward: bool):
    """The graph `netdsl compile` compiles: the training step, or the inference forward."""
    if forward or not model.graph.losses:
        return model.inference_graph
    from ..passes.training import build_training_graph
    config = model.train_config
    spec = config.optimizer_spec()
    return build_training_graph(model.training_forward, spec, weight_decay=spec.weight_decay,
                                clip_norm=config.clip_norm, clip_value=config.clip_value)


@command("compile", "compile a model (training step or forward) and show its stages", _setup)
def run(args: argparse.Namespace) -> int:
    import time

    from ..backends import compile_graph
    from ..ir.printer import print_graph
    from ..model import load
    from ..passes.pipeline import run_pipeline
    started = time.perf_counter()
    model = load(args.file, args.model)
    graph = build_graph(model, args.forward)
    front_end = time.perf_counter() - started
    if "ir" in args.emit:
        _section("ir: after lowering and differentiation", print_graph(graph))
    trace = (lambda name, stage: _section(f"graph after {name}", print_graph(stage))) \
        if args.stages and "graph" in args.emit else None
    started = time.perf_counter()
    optimized = run_pipeline(graph, trace=trace)
    passes = time.perf_counter() - started
    if "graph" in args.emit and not args.stages:
        _section("graph: after the optimisation passes", print_graph(optimized))
    compiled = compile_graph(optimized, target=args.target)
    if "kernels" in args.emit and getattr(compiled, "fused", None) is not None:
        _section("kernels: fusion groups", compiled.fused.format())
    if "source" in args.emit and getattr(compiled, "generated", None) is not None:
        _section("source: generated Numba module", compiled.generated.source)
    kind = "inference forward" if graph is model.inference_graph else "training step"
    print(f"compiled the {kind} of {model.name}: {len(graph.nodes)} ops after lowering, "
          f"{len(optimized.nodes)} after the passes")
    print(f"front end {front_end * 1000:.1f} ms, passes {passes * 1000:.1f} ms")
    print(compiled.report.format())
    return 0


def _section(title: str, text: str) -> None:
    print(f"── {title} " + "─" * max(0, 70 - len(title)))
    print(text.rstrip())
    print()
