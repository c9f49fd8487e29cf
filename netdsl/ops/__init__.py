"""Primitive ops: one module per op family, each op's rules in one class (see registry.py)."""
from .registry import OpDef, all_ops, get_op, op

__all__ = ["OpDef", "all_ops", "get_op", "op"]
