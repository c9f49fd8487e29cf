"""netdsl: a declarative language for neural networks, and its compiler.

    import netdsl
    model = netdsl.load("examples/mlp_digits.net")     # parse and check; raises netdsl.Error
    weights = model.init(seed=0)
    outputs = model.forward(weights, {"image": x})
"""
__version__ = "0.1.0"

from .errors import Error  # noqa: E402
from .model import Model, load, load_all  # noqa: E402

__all__ = ["Error", "Model", "load", "load_all", "__version__"]
