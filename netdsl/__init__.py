"""netdsl: a declarative language for neural networks, and its compiler.

    import netdsl
    model = netdsl.load("examples/mlp_digits.net")     # parse and check; raises netdsl.Error
    weights = model.init(seed=0)
    outputs = model.forward(weights, {"image": x})
    netdsl.save_weights("w.npz", weights)               # and netdsl.load_weights("w.npz")
"""
__version__ = "0.1.0"

__all__ = ["Error", "Model", "load", "load_all", "load_weights", "save_weights", "__version__"]


def load_weights(path):
    """The weights of a checkpoint (.npz or .safetensors) as a dict name -> array, ready for
    `model.forward(netdsl.load_weights(path), inputs)`.

    The checkpoint's meta entry and the optimisers' state saved beside the weights are left
    out (`dict(np.load(path))` keeps the meta, which forward refuses).  To check the names and
    shapes against a model as you load, use `model.load_weights(path)`."""
    from .runtime.checkpoint import load_checkpoint
    return load_checkpoint(path).weights


def save_weights(path, weights, meta=None) -> None:
    """Write `weights` (name -> array) to a checkpoint, .npz or .safetensors by the extension,
    with an optional JSON-able `meta` dict (e.g. {"model": model.name}), atomically."""
    from .runtime.checkpoint import save_checkpoint
    save_checkpoint(path, dict(weights), meta)


def __getattr__(name: str):
    # The public names are imported on first use (PEP 562), not with the package: `python -m
    # netdsl` then takes over Ctrl-C before the half second of heavy imports (NumPy, Lark, the
    # front end), where a KeyboardInterrupt would print a traceback.
    if name == "Error":
        from .errors import Error
        return Error
    if name in ("Model", "load", "load_all"):
        from . import model
        return getattr(model, name)
    raise AttributeError(f"module 'netdsl' has no attribute '{name}'")
