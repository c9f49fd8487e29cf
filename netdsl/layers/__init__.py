"""The built-in library: functions, losses and layers in Python; blocks in stdlib/*.net."""
from . import attention, core, functions, losses, normalization  # noqa: F401 - importing registers them
from .base import FUNCTIONS, LAYERS

__all__ = ["FUNCTIONS", "LAYERS"]
