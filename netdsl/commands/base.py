"""The registry of `netdsl` verbs: each command module registers its setup and run functions."""
from __future__ import annotations

import argparse
from typing import Callable

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, setup: Callable[[argparse.ArgumentParser], None]):
    """Register a verb: `setup` adds its flags, the decorated function runs it."""

    def register(run: Callable) -> Callable:
        COMMANDS[name] = (help, setup, run)
        return run

    return register


def add_target_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """`--target NAME`, its choices the registered targets (backends/target.py), default cpu."""
    from ..backends.target import target_names
    parser.add_argument("--target", default="cpu", choices=target_names(),
                        help=help or "the target to compile for (default cpu)")
