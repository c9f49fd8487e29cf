"""The verbs of the `netdsl` command, one module each; importing this registers them."""
from . import check, compile, gradcheck, render, run, sample, train  # noqa: F401
from .base import COMMANDS

__all__ = ["COMMANDS"]
