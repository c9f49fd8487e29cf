"""`repeat(n, Layer(...))`: n fresh copies of a layer applied in sequence, without sharing."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Error
from ..layers.base import Argument
from .expressions import evaluate
from .values import INVALID, Invalid, LayerConfig, LayerRef, Repeat

if TYPE_CHECKING:
    from .lower import Lowerer, Scope

def apply_repeat(lowerer: "Lowerer", scope: "Scope", repeat: Repeat, inputs: list[Argument],
                 span) -> Any:
    """Apply each copy to the previous one's output; copies are named `name_1..n` when the
    repeat is named (`as encoder`), else by kind like any layer.  A bound repeat applied twice
    reuses its copies (weight sharing, as for any bound layer)."""
    from .calls import apply, configure
    copies: list[LayerConfig] | None = getattr(repeat, "copies", None)
    if copies is None:
        copies = []
        base = repeat.explicit_name or repeat.binding_name
        lowerer.repeat_groups = getattr(lowerer, "repeat_groups", 0) + 1
        group = base or f"repeat_{lowerer.repeat_groups}"
        for index in range(repeat.count):
            config = evaluate(lowerer, scope, repeat.template)
            if isinstance(config, LayerRef):
                config = configure(lowerer, config, [], [], repeat.template.span)
            if isinstance(config, Invalid):
                return INVALID
            if not isinstance(config, LayerConfig):
                raise Error("repeat: the second argument must be a layer", repeat.span)
            if base is not None:
                config.explicit_name = f"{base}_{index + 1}"
            config.repeat_info = (group, index, repeat.count)
            copies.append(config)
        repeat.copies = copies
    values = inputs
    result: Any = None
    for index, config in enumerate(copies):
        before = lowerer.operations
        result = apply(lowerer, scope, config, values, span)
        if isinstance(result, Invalid):
            return INVALID
        if index == 0 and len(copies) > 1:
            # Each copy makes about as many operations as the first: refuse now a repeat that
            # would pass the limit, rather than after lowering copies for a long time.
            lowerer.check_operations((lowerer.operations - before) * (len(copies) - 1), span)
        values = [Argument(item, span) for item in result] if isinstance(result, tuple) \
            else [Argument(result, span)]
    return result
