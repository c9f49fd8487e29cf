"""netdsl.passes: graph-to-graph transformations (autodiff, training graph, simplification, fusion).

Importing the package installs the gradient rules that passes supply for control-flow ops
(scan_grad.py), so that autodiff finds them on the ops.
"""
from . import scan_grad  # noqa: F401 -- registers scan's vjp
