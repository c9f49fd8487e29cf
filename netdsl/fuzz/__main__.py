"""`python -m netdsl.fuzz`: run a differential-testing campaign (see campaign.py).

    python -m netdsl.fuzz --minutes 30 --seed 7            # a long run on demand
    python -m netdsl.fuzz --programs 50 --seed 0 --jobs 2  # a fixed set
    python -m netdsl.fuzz --show 123                       # print program 123 and check it
    python -m netdsl.fuzz --minutes 5 --focus scan         # loops in most programs

Exit status 0 when every program agreed, 1 when there were findings.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netdsl.fuzz",
                                     description="Differential testing of the netdsl compiler: "
                                                 "random programs, a compiled target (cpu or "
                                                 "cuda) against the reference.")
    parser.add_argument("--seed", type=int, default=0, help="first program seed (default 0)")
    parser.add_argument("--minutes", type=float, help="time budget")
    parser.add_argument("--programs", type=int, help="number of programs")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--statements", type=int, default=12,
                        help="menu applications per program (default 12)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"),
                        help="where shrunk failing programs go (default ./fuzz-findings)")
    parser.add_argument("--rotate", action="store_true",
                        help="check one mode per program (grad, forward, train in turn): "
                             "three times the programs for the time")
    parser.add_argument("--no-shrink", action="store_true", help="report, do not shrink")
    parser.add_argument("--target", default="cpu", choices=("cpu", "cuda"),
                        help="the compiled target to check (default cpu; cuda needs a GPU or "
                             "NUMBA_ENABLE_CUDASIM=1)")
    parser.add_argument("--focus", choices=("scan",),
                        help="weight the generator towards one family of programs (scan: "
                             "loops in most programs); a seed's program depends on it")
    parser.add_argument("--show", type=int, metavar="SEED",
                        help="print the program of SEED, check it and print the finding")
    args = parser.parse_args(argv)
    if args.show is not None:
        return _show(args.show, args.statements, args.target, args.focus)
    from .campaign import run_campaign
    summary = run_campaign(args.seed, minutes=args.minutes, programs=args.programs,
                           jobs=args.jobs, statements=args.statements, out=args.out,
                           shrink=not args.no_shrink, rotate=args.rotate,
                           report=lambda line: print(line, flush=True), target=args.target,
                           focus=args.focus)
    print(summary.format())
    return 1 if summary.failures else 0


def _show(seed: int, statements: int, target: str = "cpu", focus: str | None = None) -> int:
    from .campaign import FOCUSES
    from .generate import Config, generate
    from .oracle import check, options_for
    program = generate(seed, Config(statements=statements, weights=FOCUSES.get(focus)))
    options = options_for(seed, target=target, tags=program.tags)
    print(program.text(f"seed {seed}; bindings {program.bindings}; {options}"))
    finding = check(program, options)
    print("agrees" if finding is None else f"{finding.kind}: {finding.detail}")
    return 0 if finding is None else 1


if __name__ == "__main__":
    sys.exit(main())
