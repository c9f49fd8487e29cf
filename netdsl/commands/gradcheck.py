"""`netdsl gradcheck FILE`: symbolic gradients against finite differences, per parameter."""
from __future__ import annotations

import argparse

import numpy as np

from .base import command


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model (default: the last one)")
    parser.add_argument("--batch", type=int, default=4, help="examples to check on (default 4)")
    parser.add_argument("--samples", type=int, default=12,
                        help="coordinates perturbed per parameter (default 12)")
    parser.add_argument("--epsilon", type=float, default=1e-6)
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest relative error that passes (default 1e-5, in float64)")
    parser.add_argument("--atol", type=float, default=1e-8,
                        help="absolute errors below this always pass, so that a true gradient "
                             "of 0 is not failed on rounding noise (default 1e-8; raised to the "
                             "rounding error of a difference quotient of the loss)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true",
                        help="use random inputs instead of the train section's data")
    from ..backends.target import target_names
    parser.add_argument("--target", default="reference", choices=target_names(),
                        help="where the symbolic gradients are computed, in float64 (default "
                             "reference; cpu or cuda check their generated code too)")


@command("gradcheck", "check symbolic gradients against finite differences", _setup)
def run(args: argparse.Namespace) -> int:
    from ..errors import Error
    from ..model import load
    from ..runtime.gradcheck import gradcheck, synthetic_inputs
    for flag, value, low in (("batch", args.batch, 1), ("samples", args.samples, 1),
                             ("seed", args.seed, 0)):
        if value < low:
            raise Error(f"--{flag} must be at least {low}, got {value}")
    for flag, value in (("epsilon", args.epsilon), ("tolerance", args.tolerance)):
        if not (value > 0 and np.isfinite(value)):
            raise Error(f"--{flag} must be a positive number, got {value:g}")
    if not (args.atol >= 0 and np.isfinite(args.atol)):
        raise Error(f"--atol must be a number >= 0, got {args.atol:g}")
    model = load(args.file, args.model)
    if not model.graph.losses:
        raise Error(f"model {model.name} has no loss to differentiate",
                    hint="add `loss expression` to the model")
    rng = np.random.default_rng(args.seed)
    inputs = None
    if not args.synthetic and model.train_config.data is not None:
        from ..runtime.fit_data import prepare_data
        train, _ = prepare_data(model, model.train_config, None)
        inputs = {name: array[:args.batch] for name, array in train.items()}
    if inputs is None:
        inputs = synthetic_inputs(model.training_forward, args.batch, rng)
    checks = gradcheck(model, model.init(args.seed), inputs, epsilon=args.epsilon,
                       samples=args.samples, seed=args.seed, rtol=args.tolerance,
                       atol=args.atol, target=args.target)
    width = max((len(c.name) for c in checks), default=10)
    print(f"{'parameter'.ljust(width)}  {'shape':<16} {'checked':>7}  {'max abs err':>11}  "
          f"{'max rel err':>11}")
    for check in checks:
        print(f"{check.name.ljust(width)}  {str(list(check.shape)):<16} {check.checked:>7}  "
              f"{check.max_abs_error:>11.2e}  {check.max_rel_error:>11.2e}  {check.verdict}")
    failed = sum(1 for check in checks if not check.ok())
    skipped = sum(check.skipped for check in checks)
    print(f"{len(checks) - failed} of {len(checks)} parameters within {args.tolerance:g} "
          f"(float64, central differences, epsilon {args.epsilon:g}, absolute floor "
          f"{args.atol:g})" + (f"; {skipped} non-differentiable point"
                               f"{'s' if skipped != 1 else ''} skipped" if skipped else ""))
    return 1 if failed else 0
