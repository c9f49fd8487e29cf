"""`netdsl render FILE -o model.svg`: draw the architecture, the op graph or the fused kernels.

`-o -` prints the diagram (Mermaid unless --format says otherwise) to standard output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .base import command


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model (default: the last one)")
    parser.add_argument("-o", "--output", help="where to write (default: FILE with the format's "
                                                "extension); - prints Mermaid (or --format) to "
                                                "standard output")
    parser.add_argument("--level", default="layers", choices=["layers", "ops", "kernels"],
                        help="layers: one box per layer instance (default); ops: primitive "
                             "ops; kernels: the compiled graph, one cluster per fused kernel")
    parser.add_argument("--format", choices=["svg", "png", "pdf", "dot", "mermaid"],
                        help="default: from the output's extension, else svg")
    parser.add_argument("--grad", action="store_true",
                        help="with --level ops or kernels: include the training step's "
                             "gradient graph (the layers level has none to show)")
    parser.add_argument("--expand", action="store_true",
                        help="draw every copy of repeated blocks instead of one ×n cluster")
    parser.add_argument("--depth", type=int, help="collapse blocks nested deeper than N")
    parser.add_argument("--rankdir", default="TB", choices=["TB", "LR"],
                        help="top-to-bottom (default) or left-to-right")
    parser.add_argument("--dpi", type=float,
                        help="resolution of a png (default 200; other formats are drawn "
                             "in points)")


@command("render", "draw a model as a diagram (svg, png, pdf, dot or mermaid)", _setup)
def run(args: argparse.Namespace) -> int:
    from ..errors import Error
    from ..model import load
    from ..render import write
    from ..render.output import EXTENSIONS, output_format, output_path, render_bytes
    to_stdout = args.output == "-"
    if to_stdout:
        format = args.format or "mermaid"
    else:
        output = output_path(args.output, args.format) if args.output else \
            Path(args.file).with_suffix(EXTENSIONS[args.format or "svg"][0])
        format = output_format(output, args.format)    # a bad place fails before any work
    if args.dpi is not None and args.dpi <= 0:
        raise Error(f"--dpi must be a positive number, got {args.dpi:g}", hint="e.g. --dpi 300")
    if args.dpi is not None and format != "png":
        raise Error(f"--dpi sets a png's resolution, and this diagram is {format}",
                    hint="write a png (-o model.png), or leave --dpi out")
    model = load(args.file, args.model)
    grad = args.grad
    if grad and args.level == "layers":
        print("note: --grad has no effect with --level layers (layers have no gradient graph); "
              "use --level ops or kernels to see it", file=sys.stderr)
        grad = False
    if grad and not model.graph.losses:
        raise Error(f"--grad needs a loss, and model {model.name} has none")
    digraph = model.render(args.level, grad=grad, expand=args.expand, depth=args.depth,
                           rankdir=args.rankdir)
    if to_stdout:
        sys.stdout.flush()
        sys.stdout.buffer.write(render_bytes(digraph, format, dpi=args.dpi))
        sys.stdout.buffer.flush()
        return 0
    written = write(digraph, output, args.format, dpi=args.dpi)
    print(f"wrote {written}")
    return 0
