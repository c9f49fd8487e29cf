"""`netdsl check FILE`: parse, shape-check and print a summary of every model in the file."""
from __future__ import annotations

import argparse

from .base import add_target_argument, command


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file to check")
    parser.add_argument("--model", help="check only this model (default: every model)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="print nothing when the file is correct")
    add_target_argument(parser, help="also check that this target can compile the model "
                                     "(default cpu)")


@command("check", "parse and shape-check a .net file and print a summary table", _setup)
def run(args: argparse.Namespace) -> int:
    from ..model import load, load_all
    from ..backends.target import get_target
    target = get_target(args.target)
    models = [load(args.file, args.model)] if args.model else load_all(args.file)
    for model in models:                     # e.g. f16, which the cpu target cannot hold
        target.check_support(model.graph)
        target.check_support(model.training_forward)
    if not args.quiet:
        print("\n\n".join(model.summary() for model in models))
    return 0
