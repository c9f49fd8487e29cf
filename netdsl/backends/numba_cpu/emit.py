"""The context an op's CPU lowering writes into, and a one-node compiler to test it.

A lowering (lowerings/) returns source lines for the body of the generated njit step function.
It reads input arrays and writes preallocated output arrays, both given by name; it may call
library kernels (`@njit` functions beside the lowering) through `ctx.use(function)`, which
imports them into the generated module and returns the name to call.  `ctx.fresh("i")` gives a unique local name.
`ctx.parallel` says whether the kernel may use `prange`; `ctx.large(type)` whether an op on
`type` is big enough for a library kernel's parallel variant to pay for its threads (always, with
`parallel`; else `parallel_min` elements with symbolic dims at `size_hint`, as the graph compiler
judges its own loop nests), `ctx.large_product(multiply_adds)` the same for a kernel of products.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np


class EmitContext:
    """Collects the imports and unique names of one generated module."""

    def __init__(self, parallel: bool = True, parallel_min: int = 0, size_hint: int = 128):
        self.parallel = parallel
        self.parallel_min = parallel_min          # 0: op kernels run serially unless parallel
        self.size_hint = size_hint
        self.imports: dict[str, tuple[str, str]] = {}     # local name -> (module, attribute)
        self.helpers: list[str] = []                      # module-level source (functions)
        self._counter = itertools.count()

    def use(self, function: Callable) -> str:
        """Import a module-level function (usually an njit kernel) and return its local name."""
        module = function.__module__
        attribute = getattr(function, "__name__", None) or function.py_func.__name__
        local = f"_{module.rsplit('.', 1)[-1]}_{attribute}".replace(".", "_")
        self.imports[local] = (module, attribute)
        return local

    def large(self, type_) -> bool:
        """Whether an op over a tensor of `type_` should call a kernel's parallel variant."""
        if self.parallel:
            return True
        return self.parallel_min > 0 and self.elements(type_.shape) >= self.parallel_min

    def large_product(self, multiply_adds: int) -> bool:
        """Whether a kernel of products (a convolution, a matmul) doing `multiply_adds` (at
        size_hint) should call its parallel variant: from 4 * parallel_min, 2^22 by default,
        ~60 us of one core's gemm, which two threads halve for ~20 us of hand-over (TBB's)."""
        if self.parallel:
            return True
        return self.parallel_min > 0 and multiply_adds >= 4 * self.parallel_min

    def elements(self, shape) -> int:
        """The product of a shape's dims, the symbolic ones at size_hint."""
        from ...ir.types import elements_at
        return elements_at(shape, self.size_hint)

    def fresh(self, prefix: str = "t") -> str:
        return f"{prefix}_{next(self._counter)}"

    @property
    def range(self) -> str:
        """`prange` where the kernel may run in parallel, else `range`."""
        return "prange" if self.parallel else "range"

    def helper_lines(self) -> list[str]:
        return [line for source in self.helpers for line in (source.rstrip("\n"), "")]

    def import_lines(self, only: set[str] | None = None) -> list[str]:
        """The generated module's import lines (of the locals in `only`, else all): a library
        kernel is called separately (separate.py), so that its code is not compiled again
        into every function that calls it."""
        lines = []
        for local, (module, attribute) in sorted(self.imports.items()):
            if only is not None and local not in only:
                continue
            lines.append(f"from {module} import {attribute} as {local}")
            if called_separately(module, attribute):
                lines.append(f"{local} = _separately({local})")
        return lines


def called_separately(module: str, attribute: str) -> bool:
    """Whether generated code calls `module.attribute` through separate.py: every njit
    function except those Numba inlines at the call (`inline="always"`)."""
    import importlib

    from numba.core.dispatcher import Dispatcher
    function = getattr(importlib.import_module(module), attribute)
    return isinstance(function, Dispatcher) and \
        function.targetoptions.get("inline", "never") == "never"


def compile_single_node(node, parallel: bool = False) -> Callable[..., Any]:
    """Compile one node's lowered code into an njit function `f(*ins, *outs)` (for tests)."""
    from .lowerings import lowering_for

    ctx = EmitContext(parallel=parallel)
    ins = [f"in_{i}" for i in range(len(node.inputs))]
    outs = [f"out_{i}" for i in range(len(node.outputs))]
    if node.op.kernel is not None:
        body = _elementwise_body(node, ins, outs[0], ctx)
    else:
        body = lowering_for(node.op)(ctx, node, ins, outs)
    source = "\n".join(
        ["import math", "import numpy as np", "from numba import prange",
         "from netdsl.backends.numba_cpu.jit import njit",
         "from netdsl.backends.numba_cpu.separate import separately as _separately",
         *ctx.import_lines(), *ctx.helper_lines(), "",
         f"def kernel({', '.join(ins + outs)}):"]
        + ["    " + line for line in body] + ["    return 0"])
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<kernel {node.op.name}>", "exec"), namespace)
    return namespace["njit"](parallel=parallel)(namespace["kernel"]), source


def _elementwise_body(node, ins, out, ctx) -> list[str]:
    """A plain loop over the output with NumPy broadcasting, for testing scalar templates."""
    rank = len(node.outputs[0].shape)
    index = [ctx.fresh("i") for _ in range(rank)]
    lines = []
    for axis, name in enumerate(index):
        lines.append("    " * axis + f"for {name} in range({out}.shape[{axis}]):")
    operands = []
    for array_name, value in zip(ins, node.inputs):
        offset = rank - value.rank
        subscripts = [
            f"0 if {array_name}.shape[{k}] == 1 else {index[offset + k]}"
            for k in range(value.rank)]
        operands.append(f"{array_name}[{', '.join(subscripts)}]" if subscripts
                        else f"{array_name}[()]")
    attrs = {k: repr(v) for k, v in node.attrs.items()}
    expression = node.op.kernel.format(*operands, **attrs)
    target = f"{out}[{', '.join(index)}]" if index else f"{out}[()]"
    lines.append("    " * rank + f"{target} = {expression}")
    return lines


def run_single_node(node, arrays: list[np.ndarray], parallel: bool = False) -> list[np.ndarray]:
    """Run one node through its compiled lowering; outputs allocated from the reference shapes."""
    reference = node.op.reference(*arrays, **node.attrs)
    reference = reference if isinstance(reference, tuple) else (reference,)
    outs = [np.zeros(np.shape(r), dtype=v.dtype.numpy) for r, v in zip(reference, node.outputs)]
    kernel, _ = compile_single_node(node, parallel)
    kernel(*arrays, *outs)
    return outs


__all__ = ["EmitContext", "compile_single_node", "run_single_node"]
