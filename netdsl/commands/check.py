"""`netdsl check FILE`: parse, shape-check and print a summary of every model in the file.

The train sections are checked too, as training would check them but without training or
loading data: keys and values, the data files, metrics and `objective(...)` lines
(runtime/train_checks.py).  Every problem of every model and section is reported at once.
"""
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


@command("check", "parse and shape-check a .net file and its train sections, and print a "
                  "summary table", _setup)
def run(args: argparse.Namespace) -> int:
    from ..errors import Error
    from ..frontend.loader import load_program
    from ..frontend.train_section import read_train_partly
    from ..model import Model
    from ..backends.target import get_target
    from ..runtime.train_checks import in_file_order, train_problems
    target = get_target(args.target)
    program = load_program(args.file)
    names = [args.model] if args.model else (list(program.models) or [None])
    models, problems = [], []
    for name in names:
        try:
            model = Model.from_program(program, name)
        except Error as error:
            problems.extend(error.diagnostics)
            if name in program.trains:       # its section's own mistakes, with the model's
                problems.extend(read_train_partly(program.trains[name], program.consts)[1].items)
            continue
        models.append(model)
        try:                                 # e.g. f16, which the cpu target cannot hold
            target.check_support(model.graph)
            target.check_support(model.training_forward)
        except Error as error:
            problems.extend(error.diagnostics)
        train = program.trains.get(model.name)
        if train is not None:
            config, read = read_train_partly(train, program.consts)
            problems.extend(in_file_order(read.items + train_problems(model, config)))
    if problems:
        raise Error(_unique(problems))
    if not args.quiet:
        print("\n\n".join(model.summary() for model in models))
    return 0


def _unique(problems: list) -> list:
    """Each diagnostic once: a problem of the whole file (a train section for no model) is
    found again with every model."""
    seen, unique = set(), []
    for problem in problems:
        key = (problem.message, problem.span)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique
