"""The Numba CPU target: generated Python modules with one `@njit` driver per graph.

codegen.py writes the module (kernel groups inlined into the driver), scan.py the code for
`scan`, emit.py the context an op's lowering writes into, support.py the helpers generated code
imports (array views over the arenas), compiled.py runs a compiled module with the reference
calling convention and a fast bound step.
"""
from .codegen import CodegenOptions, generate_module

__all__ = ["CodegenOptions", "generate_module"]
