"""The CUDA target: generated modules of numba-cuda kernels and a host driver per graph.

device.py finds the GPU (or Numba's CUDA simulator) and sizes launches, render.py renders the
loop IR as kernels, codegen.py writes the module and its host driver, lowerings/ the launchers
of the non-elementwise ops, support.py what the generated code imports, compiled.py runs a
compiled module with the parameters resident on the device, and target.py runs those stages
and registers the target as "cuda".  Importing this package imports neither numba.cuda nor a
CUDA driver: compiling does.
"""
from ..target import register_target
from .target import NumbaCudaTarget

register_target(NumbaCudaTarget())

__all__ = ["NumbaCudaTarget"]
