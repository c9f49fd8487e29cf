"""The `netdsl` command: check, compile, train, run, sample, render, gradcheck.

Every user mistake (in the .net file, the data, or the flags) prints `file:line:col: error: ...`
with the source line and a caret, and exits with status 1 — never a Python traceback.  A bug in
netdsl itself prints one line, `internal error in <stage>: <type>: <message>; please report ...`,
and exits with status 2; `--debug` (before or after the verb) adds the traceback.

Ctrl-C (SIGINT) and SIGTERM never print a traceback either; see `Interrupts`.  Exit statuses:
0 done, 1 a user error, 2 an internal error, 130 stopped by SIGINT, 143 stopped by SIGTERM.
"""
from __future__ import annotations

# Only what Python has loaded anyway: `main` takes over Ctrl-C before any other import (argparse,
# traceback, the commands, NumPy...), so that a signal during them is no traceback either.
import os
import signal
import sys
import threading

from . import __version__

# Handled like Ctrl-C; the exit status is 128 + the signal's number (130, 143).
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _parser_class():
    import argparse

    class _Parser(argparse.ArgumentParser):
        """argparse that reports a bad flag in netdsl's error format, with exit status 1."""

        def error(self, message: str):  # noqa: D401 - argparse's name
            self.print_usage(sys.stderr)
            sys.stderr.write(f"error: {message}\nhint: run `{self.prog} --help` for the "
                             f"options\n")
            sys.exit(1)

    return _Parser


def build_parser():
    """The argparse parser of the `netdsl` command and its verbs."""
    import argparse

    from .commands import COMMANDS
    _Parser = _parser_class()
    # Raw: the epilog's lines are kept as written, so the reference's path is never broken.
    parser = _Parser(prog="netdsl", description="A declarative language for neural networks "
                     "and its compiler.", formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="exit status: 0 done, 1 a mistake in the input or the flags, 2 an "
                            "internal error,\n130 interrupted (Ctrl-C), 143 terminated (SIGTERM); "
                            "an interrupted `train`\nfirst saves the weights so far to --out\n\n"
                            f"language reference: {language_reference()}")
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


def language_reference() -> str:
    """The path of docs/language.md: inside the package in a wheel (pyproject.toml force-includes
    it as netdsl/docs/language.md), else in the source checkout the package runs from."""
    from pathlib import Path
    package = Path(__file__).resolve().parent
    for path in (package / "docs" / "language.md", package.parent / "docs" / "language.md"):
        if path.is_file():
            return str(path)
    return "docs/language.md in the netdsl source"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `netdsl` console script."""
    # First of all, before the heavy imports: a Ctrl-C from here on ends the process cleanly.
    interrupts = Interrupts()
    interrupts.install()
    if argv is None:                # the process itself (console script, python -m netdsl)
        import atexit

        from .compiler import freeze_after_cache_hits
        atexit.register(interrupts.ignore)      # registered first, so it runs last
        freeze_after_cache_hits()               # this process runs one command (see there)
    try:
        status = _main(argv, interrupts)
        # A signal the command did not act on (it came while saving): still report it.
        return interrupts.status if status == 0 and interrupts.signal is not None else status
    finally:
        if argv is not None:        # called from Python (a test, a script): its handlers back
            interrupts.restore()
        else:
            interrupts.training = False         # from now on a signal ends the process at once


def _main(argv: list[str] | None, interrupts: "Interrupts") -> int:
    import traceback

    from .commands import COMMANDS
    from .errors import Error
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 1
    args.interrupts = interrupts
    _, _, run = COMMANDS[args.verb]
    try:
        return int(run(args) or 0)
    except Error as error:
        sys.stdout.flush()
        print(error.format(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:                   # raised by a test, or with our handler not set
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
    ("frontend/parse_cache", "parse"), ("frontend/loader", "parse"), ("frontend/train_section", "train section"),
    ("runtime/train_config", "train section"), ("frontend/", "lower"), ("layers/", "lower"),
    ("passes/autodiff", "differentiate"), ("passes/training", "differentiate"),
    ("passes/optimizers", "differentiate"),
    ("passes/", "optimise"), ("backends/numba_cpu/compiled", "run"), ("backends/reference", "run"),
    ("backends/", "compile"), ("render/", "render"), ("summary", "summary"),
    ("runtime/train", "train"), ("runtime/data", "data"), ("runtime/datasets", "data"),
    ("runtime/checkpoint", "checkpoint"), ("runtime/gradcheck", "gradcheck"),
    ("runtime/metrics", "metrics"), ("runtime/plot", "plot"), ("runtime/sampling", "sample"),
)


def stage_of(error: BaseException, verb: str) -> str:
    """The compiler stage the error was raised in, from its traceback; else the verb."""
    import traceback
    from pathlib import Path
    package = Path(__file__).resolve().parent
    frames = list(traceback.walk_tb(error.__traceback__))
    for frame, _ in reversed(frames):
        try:
            relative = Path(frame.f_code.co_filename).resolve().relative_to(package).as_posix()
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


class Interrupts:
    """SIGINT and SIGTERM for one run of the command: stop cleanly, lose nothing.

    Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread happens to
    be.  Inside a Numba-compiled training step (which calls back into Python) the exception is
    lost: SystemError or a segmentation fault; inside an import or library code it becomes a
    traceback, or the interpreter later kills itself with SIGINT.  So netdsl installs its own:

    * until training starts (imports, parsing, data loading, compiling), and in every other
      command, a signal ends the process at once with status 128 + N and the line
      `interrupted`; nothing has been written (a file being written is removed);
    * once the epoch loop has asked `should_stop` (training has started), a signal only sets
      a flag; the loop stops between two steps and `netdsl train` saves what it has, marked
      interrupted, then exits with 128 + N;
    * a second signal while training or saving ends the process at once, without saving;
    * once the command is done and Python shuts down, signals are ignored (`ignore`).

    A signal that was ignored when netdsl started (`nohup`, a background job) stays ignored.
    """

    def __init__(self) -> None:
        self.signal: int | None = None          # the first signal received
        self.training = False                   # True once the epoch loop has asked
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (only from the main thread, as Python requires)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for number in SIGNALS:
            previous = signal.getsignal(number)
            if previous is signal.SIG_IGN:
                continue
            self._previous[number] = previous
            signal.signal(number, self._handle)

    def restore(self) -> None:
        """Put back the handlers `install` replaced."""
        for number, previous in self._previous.items():
            signal.signal(number, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def ignore(self) -> None:
        """Ignore the signals for the rest of the process: its last atexit function.

        After atexit Python gives SIGINT back to the system, and tearing down its modules
        (Numba's above all) takes a second or more, in which Ctrl-C killed the process by
        SIGINT; by then the command is done and its files are written, so the status it
        returned stands.
        """
        for number in self._previous:
            signal.signal(number, signal.SIG_IGN)

    def should_stop(self) -> bool:
        """Asked by the epoch loop before each step: True once a signal has come."""
        self.training = True
        return self.signal is not None

    @property
    def status(self) -> int:
        """The exit status for the signal received: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signal or signal.SIGINT)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal or signal.SIGINT).name

    def _handle(self, number: int, frame) -> None:
        # Runs in the main thread between two bytecodes, possibly inside a callback from
        # compiled code or in the middle of a print: no exceptions, no buffered I/O.
        if self.training and self.signal is None:
            self.signal = number
            _say(f"\nnetdsl: stopping ({signal.Signals(number).name} again to quit at once, "
                 "without saving)\n")
            return
        if self.signal is not None:
            _exit_now(128 + number, "interrupted again: stopped without saving")
        self.signal = number
        _exit_now(128 + number, "interrupted")


def _say(text: str) -> None:
    try:
        os.write(2, text.encode())
    except OSError:
        pass


def _exit_now(status: int, message: str) -> None:
    """End the process at once: remove half-written files and a compile's helpers, keep what
    was printed."""
    files = sys.modules.get(f"{__package__}.runtime.files")
    if files is not None:
        files.discard_pending()
    helpers = sys.modules.get(f"{__package__}.backends.numba_cpu.compile_helper")
    if helpers is not None:                     # a compile in progress: its helpers, its locks
        helpers.abandon()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:                       # a flush already in progress, a closed pipe
            pass
    _say(("\n" if _mid_line() else "") + message + "\n")
    os._exit(status)


def _mid_line() -> bool:
    """Whether a progress bar (drawn on a terminal) may hold the current line of stderr."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
