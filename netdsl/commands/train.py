"""`netdsl train FILE`: train a model as its train section says (flags override any key).

`--out` and `--plot` are checked before anything else, so a bad place fails at once, not after
the training run.  Ctrl-C (or SIGTERM) while training stops between two steps, saves the weights
so far to `--out` with `"interrupted": {"epoch", "step", "signal"}` in the checkpoint's meta,
draws the plot of the finished epochs, and exits with status 130 (143 for SIGTERM); see
cli.Interrupts.

Every checkpoint `--out` gets carries the run's resume state (runtime/resume.py):
`--resume CKPT` continues that run exactly (epoch, step, schedules, optimisers, shuffling),
while `--init CKPT` only starts from its weights, with fresh optimisers, at epoch 1.
`--checkpoint-every N` writes `--out` every N epochs; `--save-best PATH` writes the weights of
the best epoch by the monitored column.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .base import add_target_argument, command

# flag -> train-section key; each overrides the key of the same name.
OVERRIDES = {"epochs": int, "batch": int, "lr": float, "optimizer": str, "data": str,
             "validation": str, "test": str, "seed": int, "split": float, "metrics": str,
             "schedule": str, "weight_decay": float, "clip_norm": float, "clip_value": float,
             "shuffle": str, "early_stopping": str}
# Flags whose value is written as in the train section: `--optimizer "Adam(lr=1e-2)"`,
# `--schedule "step(every=5)"`, `--early-stopping "patience=3, monitor=val_loss"`,
# `--test 'mnist(part="test")'` (or `--test 0.1`, `--test test.npz`), `--data "lookup(n=500)"`.
CALL_FLAGS = ("optimizer", "schedule", "early_stopping", "test", "data", "validation")


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model to train (default: the last one)")
    for key, kind in OVERRIDES.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, metavar=key.upper(),
                            help=f"override the train section's `{key}`")
    parser.add_argument("--out", "-o", help="write the trained weights to this checkpoint "
                        "(.npz or .safetensors)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="CKPT", help="start from the weights of this "
                       "checkpoint, with fresh optimisers, at epoch 1")
    start.add_argument("--resume", metavar="CKPT", help="continue the run that saved this "
                       "checkpoint exactly: its epoch and step, optimisers, schedules and "
                       "shuffling (same model, batch and data)")
    parser.add_argument("--checkpoint-every", type=int, metavar="N", help="also write --out "
                        "(with the resume state) after every N epochs")
    parser.add_argument("--save-best", metavar="PATH", help="write the weights of the best "
                        "epoch to PATH: by early_stopping's monitor if set, else val_loss if "
                        "there is validation data, else loss")
    add_target_argument(parser, help="where the training step runs (default: cpu, compiled "
                                     "by Numba)")
    parser.add_argument("--log", metavar="PATH", help="write the history after every epoch to "
                        "this .csv or .jsonl (every column, seconds, examples per second)")
    parser.add_argument("--tensorboard", metavar="DIR", help="write every history column as "
                        "TensorBoard scalars per epoch to event files in DIR (needs the "
                        "tensorboard extra)")
    parser.add_argument("--plot", help="draw loss and metric curves per epoch to this image")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the final line")


@command("train", "train a model on its data and optionally save a checkpoint", _setup)
def run(args: argparse.Namespace) -> int:
    from ..runtime.train_config import with_overrides
    from ..model import load
    from ..runtime.checkpoint import check_checkpoint_output, load_checkpoint
    from ..runtime.train import fit
    from ..errors import Error
    from ..runtime.resume import ResumeState
    if args.checkpoint_every is not None and (args.checkpoint_every < 1 or not args.out):
        raise Error("--checkpoint-every needs a number of epochs from 1 and --out",
                    hint="e.g. --out run.npz --checkpoint-every 5")
    if args.out:
        check_checkpoint_output(args.out)
    if args.save_best:
        check_checkpoint_output(args.save_best)
    if args.plot:
        from ..runtime.plot import check_plot_output
        check_plot_output(args.plot)
    log = None
    if args.log:
        from ..runtime.run_log import RunLog
        log = RunLog(args.log)
    board = None
    if args.tensorboard:
        from ..runtime.tensorboard_log import TensorBoardLog
        board = TensorBoardLog(args.tensorboard)
    model = load(args.file, args.model)
    overrides = {key: getattr(args, key) for key in OVERRIDES}
    for key in CALL_FLAGS:
        if overrides[key] is not None and ("(" in overrides[key] or key == "early_stopping"):
            from ..frontend.train_section import read_flag_value
            overrides[key] = read_flag_value(key, overrides[key], model.program.consts)
    config = with_overrides(model.train_config, overrides)
    resume = None
    if args.resume:
        resume = ResumeState.from_checkpoint(args.resume, model)
        weights = resume.weights
    elif args.init:
        checkpoint = load_checkpoint(args.init)
        weights = dict(checkpoint.weights)
        model.check_weights(weights, source=args.init, meta=checkpoint.meta)
    else:
        weights = model.init(seed=config.seed)
    interrupts = getattr(args, "interrupts", None)
    source = str(Path(args.file))
    best = _BestKeeper(args.save_best, model.name, source, config, resume)

    history: list[dict] = list(resume.history) if resume is not None else []

    def epoch_end(row: dict, state) -> None:
        if log is not None:
            history.append(row)
            log.write(history)
        if board is not None:
            board.write(row)
        best.update(row, state)
        every = args.checkpoint_every
        if every and row["epoch"] % every == 0:
            _save(args.out, state(), {"model": model.name, "source": source,
                                      "epochs": row["epoch"]}, best)

    try:
        result = fit(model, weights, config, target=args.target, verbose=not args.quiet,
                     should_stop=interrupts.should_stop if interrupts is not None else None,
                     resume=resume, epoch_end=epoch_end if args.save_best or
                     args.checkpoint_every or log is not None or board is not None else None)
    finally:
        if board is not None:
            board.close()
    meta = {"model": model.name, "source": source, "epochs": len(result.history)}
    if result.interrupted is not None:
        return _save_interrupted(args, result, meta, interrupts, best)
    last = result.history[-1] if result.history else {}
    from ..runtime.progress import is_diagnostic
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                        if not is_diagnostic(k) and not k.startswith("lr")
                        and isinstance(v, float))
    if result.test is not None:             # the test set's scores (`test` key), after them
        summary += "".join(f", test_{k} {v:.4g}" for k, v in result.test.items()
                           if isinstance(v, float))
    epochs = len(result.history)
    print(f"trained {model.name} for {epochs} epoch{'s' if epochs != 1 else ''}: {summary}")
    if args.out:
        _save(args.out, result.resume, meta, best, weights=result.weights)
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


def _save(path: str, state, meta: dict, best: "_BestKeeper", weights=None) -> None:
    """Write a checkpoint that `--resume` continues: the weights (`weights` if given: early
    stopping's best), every optimiser's state and the resume state in the meta."""
    from ..runtime.checkpoint import save_checkpoint
    state.save_best = best.record
    save_checkpoint(path, state.weights if weights is None else weights,
                    {**meta, "resume": state.meta()}, optimizer=state.optimizer)


class _BestKeeper:
    """`--save-best`: after each epoch, the weights of the best one so far to its path."""

    def __init__(self, path: str | None, model: str, source: str, config, resume):
        self.path, self.model, self.source, self.config = path, model, source, config
        # A resumed run keeps the best of the epochs before it.
        self.record = resume.save_best if resume is not None and path else None

    def update(self, row: dict, state) -> None:
        from ..runtime.checkpoint import save_checkpoint
        from ..runtime.resume import monitored
        if not self.path:
            return
        column, score = monitored(self.config, row)
        if self.record is not None:
            # The record under its column (which may be `loss` itself: written last).
            _, previous = monitored(self.config, {"loss": 0.0, column: self.record["value"]})
            if not score < previous:
                return
        self.record = {"value": float(row.get(column, row["loss"])), "epoch": row["epoch"]}
        save_checkpoint(self.path, state().weights,
                        {"model": self.model, "source": self.source, "best": True,
                         "monitor": column, **self.record})


def _save_interrupted(args: argparse.Namespace, result, meta: dict, interrupts,
                      best: _BestKeeper) -> int:
    """Save what an interrupted run has: the weights so far, the plot of the finished epochs."""
    epoch, step = result.interrupted
    saved = []
    if args.out:
        meta["interrupted"] = {"epoch": epoch, "step": step, "signal": interrupts.name}
        _save(args.out, result.resume, meta, best)
        saved.append(args.out)
    if args.plot and result.history:
        from ..runtime.plot import plot_history
        plot_history(result.history, args.plot)
        saved.append(args.plot)
    what = f"saved {' and '.join(saved)}" if saved else "nothing saved (no --out)"
    print(f"interrupted ({interrupts.name}) at epoch {epoch} step {step}; {what}",
          file=sys.stderr)
    return interrupts.status
