"""The `netdsl` command: check, compile, train, run, render, gradcheck.

Every user mistake (in the .net file, the data, or the flags) prints `file:line:col: error: ...`
with the source line and a caret, and exits with status 1 — never a Python traceback.  A bug in
netdsl itself prints one line, `internal error in <stage>: <type>: <message>; please report ...`,
and exits with status 2; `--debug` (before or after the verb) adds the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
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
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the Python traceback")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name, (help_text, setup, _) in COMMANDS.items():
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        setup(sub)
        # SUPPRESS: without the flag after the verb, the global one's value stands.
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="on an internal error, print the Python traceback")
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
    except BrokenPipeError:
        # The reader of our stdout went away (`netdsl check m.net | head`): not an error of
        # ours; point stdout at devnull so the interpreter's final flush stays quiet.
        _silence_stdout()
        return 1
    except Exception as error:                  # a bug in netdsl: one line, not a traceback
        sys.stdout.flush()
        if args.debug:
            traceback.print_exc()
        print(internal_error_line(error, args.verb), file=sys.stderr)
        return 2


def internal_error_line(error: BaseException, verb: str) -> str:
    """`internal error in <stage>: <type>: <message>; please report (...)`, on one line."""
    message = " ".join(str(error).split())
    if len(message) > 200:
        message = message[:197] + "..."
    what = type(error).__name__ + (f": {message}" if message else "")
    return (f"internal error in {stage_of(error, verb)}: {what}; please report "
            f"(rerun with --debug for the traceback)")


# Where in netdsl (a path under the package) -> the stage it belongs to.  The innermost frame of
# the traceback that matches names the stage; ir/ and ops/ serve every stage, so they never do.
_STAGES = (
    ("frontend/parser", "parse"), ("frontend/syntax_errors", "parse"),
    ("frontend/loader", "parse"), ("frontend/train_config", "train section"),
    ("frontend/", "lower"), ("layers/", "lower"),
    ("passes/autodiff", "differentiate"), ("passes/training", "differentiate"),
    ("passes/", "optimise"), ("backends/compiled", "run"), ("backends/reference", "run"),
    ("backends/", "compile"), ("render/", "render"), ("summary", "summary"),
    ("runtime/train", "train"), ("runtime/data", "data"), ("runtime/datasets", "data"),
    ("runtime/checkpoint", "checkpoint"), ("runtime/gradcheck", "gradcheck"),
    ("runtime/metrics", "metrics"), ("runtime/plot", "plot"),
)
_PACKAGE = Path(__file__).resolve().parent


def stage_of(error: BaseException, verb: str) -> str:
    """The compiler stage the error was raised in, from its traceback; else the verb."""
    frames = list(traceback.walk_tb(error.__traceback__))
    for frame, _ in reversed(frames):
        try:
            relative = Path(frame.f_code.co_filename).resolve().relative_to(_PACKAGE).as_posix()
        except ValueError:                      # outside netdsl (NumPy, Numba, a test)
            continue
        for prefix, stage in _STAGES:
            if relative.startswith(prefix):
                return stage
    return verb


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):               # stdout is not a real file (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
