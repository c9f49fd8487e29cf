"""The data a fit trains on: loaded (a built-in name, a path or arrays), bound to the
model's inputs and checked (index ranges over the whole data set once, floats finite), then
split into training, validation and test examples.  `fit` (runtime/train.py) and `netdsl
gradcheck` start here.
"""
from __future__ import annotations

from typing import Any

from ..errors import Error
from ..ir.graph import Graph
from . import data as data_module
from .input_checks import index_ranges
from .steps import HYPER_INPUTS
from .train_config import TrainConfig


def input_specs(graph: Graph) -> list[tuple]:
    """(name, dtype, shape, span) of every data input of a graph, for data.bind_inputs."""
    specs = []
    for value in graph.inputs:
        if value.name in HYPER_INPUTS:
            continue
        shape = tuple(d if isinstance(d, int) else str(d) for d in value.shape)
        specs.append((value.name, str(value.dtype), shape, graph.input_spans.get(value.name)))
    return specs


def prepare_data(model, config: TrainConfig, data: Any) -> tuple[dict, dict | None]:
    """(training, validation or None): the data loaded, bound to the inputs and split."""
    train, validation, _ = prepare_splits(model, config, data)
    return train, validation


def prepare_splits(model, config: TrainConfig,
                   data: Any) -> tuple[dict, dict | None, dict | None]:
    """Load the data (built-in name, path or arrays), bind it to the inputs, and split it into
    (training, validation or None, test or None); a test fraction is held out first."""
    source = data if data is not None else config.data
    span = config.spans.get("data")
    if source is None:
        raise Error(f"no training data for model {model.name}",
                    hint="set `data = ...` in the train section or pass --data")
    specs = input_specs(model.training_forward)
    # Ids and labels are checked against their ranges here, once for the whole data set,
    # rather than before every step (see runtime/input_checks.py).
    checks = {"ranges": index_ranges(model.training_forward),
              "allow_nonfinite": config.allow_nonfinite}

    def bound(spec: Any, key: str) -> dict:
        where = span if key == "data" else config.spans.get(key)
        return data_module.bind_inputs(data_module.load_data(spec, model.base_dir, where),
                                       specs, data_span=where, **checks)

    train, test = bound(source, "data"), None
    if isinstance(config.test, float):
        train, test = data_module.hold_out(train, config.test, seed=config.seed,
                                           span=config.spans.get("test"))
    elif config.test is not None:
        test = bound(config.test, "test")
    if config.validation is not None:
        return train, bound(config.validation, "validation"), test
    if config.split >= 1.0:
        return train, None, test
    train, validation = data_module.split(train, config.split, seed=config.seed,
                                          span=config.spans.get("split"))
    return train, validation, test


__all__ = ["input_specs", "prepare_data", "prepare_splits"]
