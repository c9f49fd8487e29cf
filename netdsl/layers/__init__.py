"""The built-in library: functions, losses and layers in Python; blocks in stdlib/*.net."""
from . import attention, core, functions, losses, normalization, random  # noqa: F401 - registers them
from .base import FUNCTIONS, LAYERS

__all__ = ["FUNCTIONS", "LAYERS"]
