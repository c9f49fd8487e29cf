"""`netdsl render FILE -o model.svg`: draw the architecture, the op graph or the fused kernels."""
from __future__ import annotations

import argparse
from pathlib import Path

from .base import command


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model (default: the last one)")
    parser.add_argument("-o", "--output", help="where to write (default: FILE with the format's "
                                                "extension)")
    parser.add_argument("--level", default="layers", choices=["layers", "ops", "kernels"],
                        help="layers: one box per layer instance (default); ops: primitive "
                             "ops; kernels: the compiled graph, one cluster per fused kernel")
    parser.add_argument("--format", choices=["svg", "png", "pdf", "dot", "mermaid"],
                        help="default: from the output's extension, else svg")
    parser.add_argument("--grad", action="store_true",
                        help="with --level ops or kernels: include the training step's "
                             "gradient graph")
    parser.add_argument("--expand", action="store_true",
                        help="draw every copy of repeated blocks instead of one ×n cluster")
    parser.add_argument("--depth", type=int, help="collapse blocks nested deeper than N")
    parser.add_argument("--rankdir", default="TB", choices=["TB", "LR"],
                        help="top-to-bottom (default) or left-to-right")


@command("render", "draw a model as a diagram (svg, png, pdf, dot or mermaid)", _setup)
def run(args: argparse.Namespace) -> int:
    from ..errors import Error
    from ..model import load
    from ..render import write
    from ..render.output import EXTENSIONS, output_path
    if args.output:
        output = output_path(args.output, args.format)    # a bad place fails before any work
    else:
        output = Path(args.file).with_suffix(EXTENSIONS[args.format or "svg"][0])
    model = load(args.file, args.model)
    if args.grad and not model.graph.losses:
        raise Error(f"--grad needs a loss, and model {model.name} has none")
    digraph = model.render(args.level, grad=args.grad, expand=args.expand, depth=args.depth,
                           rankdir=args.rankdir)
    written = write(digraph, output, args.format)
    print(f"wrote {written}")
    return 0
