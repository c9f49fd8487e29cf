"""`netdsl train FILE`: train a model as its train section says (flags override any key)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .base import command

# flag -> train-section key; each overrides the key of the same name.
OVERRIDES = {"epochs": int, "batch": int, "lr": float, "optimizer": str, "data": str,
             "seed": int, "split": float, "metrics": str, "schedule": str,
             "weight_decay": float, "clip_norm": float, "clip_value": float}


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model to train (default: the last one)")
    for key, kind in OVERRIDES.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, metavar=key.upper(),
                            help=f"override the train section's `{key}`")
    parser.add_argument("--out", "-o", help="write the trained weights to this .npz checkpoint")
    parser.add_argument("--init", help="start from the weights of this checkpoint")
    parser.add_argument("--target", default="cpu", choices=["cpu", "reference"],
                        help="where the training step runs (default: cpu, compiled by Numba)")
    parser.add_argument("--plot", help="draw loss and metric curves per epoch to this image")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the final line")


@command("train", "train a model on its data and optionally save a checkpoint", _setup)
def run(args: argparse.Namespace) -> int:
    from ..frontend.train_config import with_overrides
    from ..model import load
    from ..runtime.checkpoint import load_checkpoint, save_checkpoint
    from ..runtime.train import fit
    model = load(args.file, args.model)
    overrides = {key: getattr(args, key) for key in OVERRIDES}
    config = with_overrides(model.train_config, overrides)
    if args.init:
        weights = dict(load_checkpoint(args.init).weights)
        model.check_weights(weights, source=args.init)
    else:
        weights = model.init(seed=config.seed)
    if args.plot:
        from ..runtime.plot import require_matplotlib
        require_matplotlib()
    result = fit(model, weights, config, target=args.target, verbose=not args.quiet)
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                        if k not in ("epoch", "seconds", "lr") and isinstance(v, float))
    print(f"trained {model.name} for {len(result.history)} epochs: {summary}")
    if args.out:
        save_checkpoint(args.out, result.weights,
                        {"model": model.name, "source": str(Path(args.file)),
                         "epochs": len(result.history)})
        print(f"wrote {args.out}")
    if args.plot:
        from ..runtime.plot import plot_history
        plot_history(result.history, args.plot)
        print(f"wrote {args.plot}")
    return 0
