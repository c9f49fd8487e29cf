"""`netdsl run FILE --weights W --input X [--output Y]`: inference, every `out` by name."""
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
    add_target_argument(parser)


@command("run", "run a trained model (inference) on inputs and write its outputs", _setup)
def run(args: argparse.Namespace) -> int:
    from ..model import load
    from ..runtime.checkpoint import load_checkpoint, write_npz
    from ..runtime.data import load_data
    from ..runtime.files import check_output, write_atomically
    if args.output:     # a bad place fails before any work, not after the forward pass
        check_output(args.output, "outputs", (".npz",))
    model = load(args.file, args.model)
    weights = dict(load_checkpoint(args.weights).weights)
    model.check_weights(weights, source=args.weights)
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
