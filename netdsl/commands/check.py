"""`netdsl check FILE`: parse, shape-check and print a summary of every model in the file.

The train sections are checked too, as training would check them but without training or
loading data: keys and values, the data files, metrics and `objective(...)` lines
(runtime/train_checks.py).  Every problem of every model and section is reported at once.

The summary (summary.py) gives each step's FLOPs and memory at `--batch N` (default: the train
section's batch), dims other than the batch as expressions unless bound with `--dim T=12`,
`repeat` copies folded unless `--expand`; `--json` prints it as data.  Box-drawing characters
become ASCII when stdout cannot encode them (`LC_ALL=C`).
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
    parser.add_argument("--batch", type=int, metavar="N",
                        help="FLOPs and memory of a step at this batch size (default: the "
                             "train section's batch)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=N",
                        help="bind a symbolic dim, e.g. --dim T=12 (repeatable); unbound dims "
                             "are shown as expressions")
    parser.add_argument("--expand", action="store_true",
                        help="one row per repeat copy instead of one row per repeat")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--plan-limit", type=int, metavar="NODES",
                        help="plan the memory of a step only up to this many graph nodes "
                             "(default 5000; 0: any size, which can take minutes)")


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
    dims = parse_dims(args.dim)
    if args.batch is not None and args.batch < 1:
        raise Error(f"--batch must be at least 1, got {args.batch}")
    if args.plan_limit is not None and args.plan_limit < 0:
        raise Error(f"--plan-limit must be 0 (no limit) or more, got {args.plan_limit}")
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
        _print_summaries(models, args, dims)
    return 0


def parse_dims(flags: list[str]) -> dict[str, int]:
    """`--dim T=12` flags as {"T": 12}."""
    from ..errors import Error
    dims: dict[str, int] = {}
    for flag in flags:
        name, equals, value = flag.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name.isidentifier() or not value.lstrip("-").isdigit():
            raise Error(f"--dim {flag}: expected NAME=N, e.g. --dim T=12")
        if int(value) < 1:
            raise Error(f"--dim {flag}: a dim is at least 1")
        if name in dims and dims[name] != int(value):
            raise Error(f"--dim {flag}: {name} is already bound to {dims[name]}")
        dims[name] = int(value)
    return dims


def _print_summaries(models: list, args: argparse.Namespace, dims: dict[str, int]) -> None:
    import json
    import sys

    from ..errors import Error
    from ..summary import as_json, summary_data
    from ..summary_text import UNICODE_SAMPLE, format_summary
    known = {name for model in models for name in _dim_names(model)}
    for name in dims:
        if name not in known:
            raise Error(f"--dim {name}={dims[name]}: no model here has a dim {name}",
                        hint=f"dims: {', '.join(sorted(known))}" if known else None)
    from ..summary_memory import batch_symbol
    for model in models:                # --dim B=N sets the batch size too: one of them
        symbol = batch_symbol(model.graph)
        if args.batch is not None and symbol in dims and dims[symbol] != args.batch:
            raise Error(f"--dim {symbol}={dims[symbol]} and --batch {args.batch} disagree: "
                        f"{symbol} is the batch dim of model {model.name}",
                        hint="give one of them")
    summaries = [summary_data(model, args.batch, {k: v for k, v in dims.items()
                                                  if k in _dim_names(model)}, args.expand,
                              plan_limit=args.plan_limit)
                 for model in models]
    if args.json:
        print(json.dumps({"models": as_json(summaries)}, indent=2))
        return
    try:
        UNICODE_SAMPLE.encode(sys.stdout.encoding or "ascii")
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    print("\n\n".join(format_summary(data, ascii_only=ascii_only) for data in summaries))


def _dim_names(model) -> set[str]:
    """The symbols in the model's input, output and parameter types."""
    from ..ir.types import Sym, opaque_symbols
    graph = model.training_forward if model.graph.losses else model.graph
    values = [*graph.inputs, *(p.value for p in graph.params), *graph.outputs.values()]
    return {symbol for value in values for dim in value.type.shape if isinstance(dim, Sym)
            for name in dim.symbols for symbol in opaque_symbols(name)}


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
