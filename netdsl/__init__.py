"""netdsl: a declarative language for neural networks, and its compiler.

    import netdsl
    model = netdsl.load("examples/mlp_digits.net")     # parse and check; raises netdsl.Error
    weights = model.init(seed=0)
    outputs = model.forward(weights, {"image": x})
"""
__version__ = "0.1.0"

__all__ = ["Error", "Model", "load", "load_all", "__version__"]


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
