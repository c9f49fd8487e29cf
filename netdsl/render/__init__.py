"""netdsl.render: architecture diagrams at three levels (layers, ops, kernels) via Graphviz.

    digraph = render_layers(arch, expand=False, depth=None, rankdir="TB")   # layer instances
    digraph = render_ops(graph, grad_graph=None, rankdir="TB")             # primitive ops (+ grads)
    digraph = render_kernels(graph, fused, rankdir="TB")                   # fused kernels
    write(digraph, "model.svg")          # svg | png | pdf via `dot`; dot source always works
    write(digraph, "model.png", dpi=300) # a png's resolution (default 200)
    write_mermaid(arch, "model.mmd")     # Mermaid flowchart for Markdown docs (mermaid.py)

Each builder makes a neutral `Diagram` (output.py) that both the Graphviz and the Mermaid
emitters read, so every level has both forms; all colours and shapes live in style.py.  A `scan`
is drawn as a loop cluster holding its body (loops.py; loop_records.py at the layers level).
"""
from typing import Any

from ..errors import Error, did_you_mean
from .layers import build_layers, render_layers
from .ops import build_kernels, build_ops, is_gradient_node, kernel_groups, render_kernels, render_ops
from .mermaid import diagram_to_mermaid, to_mermaid, write_mermaid
from .output import (FORMATS, INSTALL_HINT, Box, Diagram, Group, Link, dot_available, to_digraph,
                     write)

__all__ = [
    "render_layers", "render_ops", "render_kernels", "build_layers", "build_ops",
    "build_kernels", "write", "to_mermaid", "write_mermaid", "diagram_to_mermaid", "to_digraph",
    "dot_available", "is_gradient_node", "kernel_groups", "Diagram", "Box", "Group", "Link",
    "FORMATS", "INSTALL_HINT", "LEVELS", "render_model",
]

LEVELS = ("layers", "ops", "kernels")


def render_model(model: Any, level: str = "layers", *, grad: bool = False, expand: bool = False,
                 depth: int | None = None, rankdir: str = "TB"):
    """A netdsl.Model drawn at one level, as a graphviz.Digraph (what Model.render returns).

    layers: the Architecture records (expand/depth apply); loops drawn with the graph's help.  ops: the lowered graph, repeated
    blocks drawn once unless expand; with grad=True the training-mode forward graph and its
    gradient (`loss_and_grad_graph`).
    kernels: that graph after the pass pipeline, one cluster per fused kernel (repeated
    blocks drawn once unless expand).
    """
    if level not in LEVELS:
        raise Error(f"unknown render level '{level}'",
                    hint=did_you_mean(level, LEVELS) or "use layers, ops or kernels")
    if level == "layers":
        return render_layers(model.architecture, expand=expand, depth=depth, rankdir=rankdir,
                             graph=model.graph)
    graph, grad_graph = model.graph, None
    if grad:
        from ..passes.training import loss_and_grad_graph
        graph = model.training_forward
        grad_graph = loss_and_grad_graph(graph)
    if level == "ops":
        return render_ops(graph, grad_graph=grad_graph, arch=model.architecture, expand=expand,
                          rankdir=rankdir)
    from ..compiler import GRADIENTS, StageRecorder, compile_step
    from ..passes.pipeline import stage_names
    recorder = StageRecorder(stage_names()[-1])
    fused = compile_step(graph, "cpu", GRADIENTS if grad else None, trace=recorder,
                         stop_after="fuse")
    return render_kernels(recorder[stage_names()[-1]], fused, arch=model.architecture,
                          expand=expand, rankdir=rankdir)
