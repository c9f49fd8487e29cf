"""`netdsl run FILE --weights W --input X [--output Y] [--partial]`: inference, every `out` by
name."""
from __future__ import annotations

import argparse

import numpy as np

from .base import add_target_argument, command


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .net file")
    parser.add_argument("--model", help="which model (default: the last one)")
    parser.add_argument("--weights", "-w", required=True, help="a checkpoint (.npz)")
    parser.add_argument("--input", "-i", required=True,
                        help="inputs by name: an .npz whose keys are the model's `in` names")
    parser.add_argument("--output", "-o", help="write every `out` by name to this .npz")
    add_partial_argument(parser)
    add_target_argument(parser)


def add_partial_argument(parser: argparse.ArgumentParser) -> None:
    """`--partial`: the checkpoint may hold more than the model (a VAE's, for its decoder)."""
    parser.add_argument("--partial", action="store_true",
                        help="load only the arrays the model has from a larger checkpoint "
                             "(the names it skips are listed); a missing one is still an error")


def load_model_weights(model, path: str, partial: bool) -> dict[str, np.ndarray]:
    """The model's weights from a checkpoint; with `partial`, list what was skipped (stderr:
    stdout holds the results)."""
    import sys

    from ..runtime.checkpoint import describe_partial_load
    loaded = model.load_weights(path, partial=partial)
    if partial:
        print(describe_partial_load(loaded, model.name), file=sys.stderr)
    return loaded.weights


@command("run", "run a trained model (inference) on inputs and write its outputs", _setup)
def run(args: argparse.Namespace) -> int:
    from ..model import load
    from ..runtime.checkpoint import write_npz
    from ..runtime.data import load_data
    from ..runtime.files import check_output, write_atomically
    if args.output:     # a bad place fails before any work, not after the forward pass
        check_output(args.output, "outputs", (".npz",))
    model = load(args.file, args.model)
    weights = load_model_weights(model, args.weights, args.partial)
    inputs = load_data(args.input, ".")
    outputs = model.forward(weights, inputs, target=args.target)
    if args.output:
        write_atomically(args.output, lambda handle: write_npz(handle, outputs), "outputs",
                         (".npz",))
        print(f"wrote {', '.join(outputs)} to {args.output}")
    else:
        for name, array in outputs.items():
            print(f"{name}: {array.dtype}{list(array.shape)}")
            print(np.array2string(array, threshold=20, precision=4))
    return 0
