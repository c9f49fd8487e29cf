"""The `netdsl` command: check, compile, train, run, render, gradcheck.

Every user mistake (in the .net file, the data, or the flags) prints `file:line:col: error: ...`
with the source line and a caret, and exits with status 1 — never a Python traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import __version__
from .commands import COMMANDS
from .errors import Error


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in netdsl's error format, with exit status 1."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\nhint: run `{self.prog} --help` for the options\n")
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="netdsl", description="A declarative language for neural networks "
                     "and its compiler.")
    parser.add_argument("--version", action="version", version=f"netdsl {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name, (help_text, setup, _) in COMMANDS.items():
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        setup(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `netdsl` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 1
    _, _, run = COMMANDS[args.verb]
    try:
        return int(run(args) or 0)
    except Error as error:
        sys.stdout.flush()
        print(error.format(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
