"""`netdsl train FILE`: train a model as its train section says (flags override any key).

`--out` and `--plot` are checked before anything else, so a bad place fails at once, not after
the training run.  Ctrl-C (or SIGTERM) while training stops between two steps, saves the weights
so far to `--out` with `"interrupted": {"epoch", "step", "signal"}` in the checkpoint's meta,
draws the plot of the finished epochs, and exits with status 130 (143 for SIGTERM); see
cli.Interrupts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .base import add_target_argument, command

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
    parser.add_argument("--out", "-o", help="write the trained weights to this checkpoint "
                        "(.npz or .safetensors)")
    parser.add_argument("--init", help="start from the weights of this checkpoint")
    add_target_argument(parser, help="where the training step runs (default: cpu, compiled "
                                     "by Numba)")
    parser.add_argument("--plot", help="draw loss and metric curves per epoch to this image")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the final line")


@command("train", "train a model on its data and optionally save a checkpoint", _setup)
def run(args: argparse.Namespace) -> int:
    from ..runtime.train_config import with_overrides
    from ..model import load
    from ..runtime.checkpoint import check_checkpoint_output, load_checkpoint, save_checkpoint
    from ..runtime.train import fit
    if args.out:
        check_checkpoint_output(args.out)
    if args.plot:
        from ..runtime.plot import check_plot_output
        check_plot_output(args.plot)
    model = load(args.file, args.model)
    overrides = {key: getattr(args, key) for key in OVERRIDES}
    config = with_overrides(model.train_config, overrides)
    if args.init:
        weights = dict(load_checkpoint(args.init).weights)
        model.check_weights(weights, source=args.init)
    else:
        weights = model.init(seed=config.seed)
    interrupts = getattr(args, "interrupts", None)
    result = fit(model, weights, config, target=args.target, verbose=not args.quiet,
                 should_stop=interrupts.should_stop if interrupts is not None else None)
    meta = {"model": model.name, "source": str(Path(args.file)), "epochs": len(result.history)}
    if result.interrupted is not None:
        return _save_interrupted(args, result, meta, interrupts)
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                        if k not in ("epoch", "seconds") and not k.startswith("lr")
                        and isinstance(v, float))
    print(f"trained {model.name} for {len(result.history)} epochs: {summary}")
    if args.out:
        save_checkpoint(args.out, result.weights, meta, optimizer=result.optimizer_state)
        print(f"wrote {args.out}")
    if args.plot:
        from ..runtime.plot import plot_history
        plot_history(result.history, args.plot)
        print(f"wrote {args.plot}")
    if interrupts is not None and interrupts.signal is not None:
        # The signal came after the last step: training is complete and was saved as such.
        print(f"interrupted ({interrupts.name}) after the last step", file=sys.stderr)
        return interrupts.status
    return 0


def _save_interrupted(args: argparse.Namespace, result, meta: dict, interrupts) -> int:
    """Save what an interrupted run has: the weights so far, the plot of the finished epochs."""
    from ..runtime.checkpoint import save_checkpoint
    epoch, step = result.interrupted
    saved = []
    if args.out:
        meta["interrupted"] = {"epoch": epoch, "step": step, "signal": interrupts.name}
        save_checkpoint(args.out, result.weights, meta, optimizer=result.optimizer_state)
        saved.append(args.out)
    if args.plot and result.history:
        from ..runtime.plot import plot_history
        plot_history(result.history, args.plot)
        saved.append(args.plot)
    what = f"saved {' and '.join(saved)}" if saved else "nothing saved (no --out)"
    print(f"interrupted ({interrupts.name}) at epoch {epoch} step {step}; {what}",
          file=sys.stderr)
    return interrupts.status
