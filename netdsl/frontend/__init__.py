"""The front end: `.net` text → AST (`parse`, `parse_file`); the node classes are in `ast`."""
from . import ast
from .parser import parse, parse_file

__all__ = ["ast", "parse", "parse_file"]
