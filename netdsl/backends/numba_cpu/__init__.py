"""The Numba CPU target: generated Python modules with one `@njit` driver per graph.

codegen.py writes the module (kernel groups inlined into the driver), scan.py the code for
`scan`, emit.py the context an op's lowering writes into, support.py the helpers generated code
imports (array views over the arenas), compiled.py runs a compiled module with the reference
calling convention and a fast bound step, target.py runs those stages in order and
registers the target as "cpu" (importing this package does not import Numba: only compiling
does).
"""
from ..target import register_target
from .codegen import CodegenOptions, generate_module
from .target import NumbaCpuTarget

register_target(NumbaCpuTarget())

__all__ = ["CodegenOptions", "NumbaCpuTarget", "generate_module"]
