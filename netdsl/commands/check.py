"""`netdsl check FILE`: parse, shape-check and print a summary of every model in the file."""
from __future__ import annotations

import argparse

from .base import command


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file to check")
    parser.add_argument("--model", help="check only this model (default: every model)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="print nothing when the file is correct")


@command("check", "parse and shape-check a .net file and print a summary table", _setup)
def run(args: argparse.Namespace) -> int:
    from ..model import load, load_all
    models = [load(args.file, args.model)] if args.model else load_all(args.file)
    if not args.quiet:
        print("\n\n".join(model.summary() for model in models))
    return 0
