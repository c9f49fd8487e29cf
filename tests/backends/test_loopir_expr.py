"""The loop IR's scalar expressions: every op's kernel template parses into the neutral tree,
and the Numba renderer writes it with typed literals and casts."""
import math

import numpy as np
import pytest

from netdsl.backends.expr import (FUNCTIONS, BinOp, Call, Cast, Compare, Const, Ref, Select,
                                  UnaryOp, parse_template)
from netdsl.backends.numba_cpu import fast_math
from netdsl.backends.numba_cpu.render import render
from netdsl.ir.types import DType
from netdsl.ops.registry import all_ops

KERNEL_OPS = sorted(name for name, opdef in all_ops().items() if opdef.kernel is not None)


def _walk(expr):
    yield expr
    for child in vars(expr).values():
        if isinstance(child, tuple):
            for item in child:
                yield from _walk(item)
        elif isinstance(child, (Const, Ref, Call, BinOp, UnaryOp, Compare, Select, Cast)):
            yield from _walk(child)


@pytest.mark.parametrize("name", KERNEL_OPS)
def test_every_kernel_template_parses_into_neutral_nodes(name):
    opdef = all_ops()[name]
    operands = [Ref(f"x{k}", DType.f32) for k in range(3)]
    attrs = {"alpha": 0.01, "lo": -1.0, "hi": 1.0}
    tree = parse_template(opdef.kernel, operands, attrs, DType.f32)
    for node in _walk(tree):
        if isinstance(node, Call):
            assert node.function in FUNCTIONS.values()
        if isinstance(node, Const) and not node.weak:
            assert node.dtype == DType.f32            # float literals take the node's type


def test_numba_rendering_types_literals_and_casts():
    x = Ref("x0", DType.f32)
    tree = parse_template("(type({0})(1) / (type({0})(1) + np.exp(-{0})) if {0} >= 0.5 else "
                          "math.erf({0}))", [x], {}, DType.f32)
    # the cpu target spells exp and erf by its vectorisable forms (numba_cpu/fast_math.py)
    assert render(tree) == ("((np.float32(1) / (np.float32(1) + _fast_exp((-x0)))) if "
                            "(x0 >= np.float32(0.5)) else _fast_erf(x0))")
    assert render(Cast(DType.f32, tree), "g1_").startswith("np.float32(((np.float32(1) / ")
    assert render(Const(-math.inf, DType.f32)) == "np.float32(-np.inf)"
    assert render(Const(True, DType.bool, weak=True)) == "True"


def test_rendered_expression_computes_what_the_template_did():
    """The rendered text and the template, both evaluated by Python on f32 scalars, agree."""
    for name in KERNEL_OPS:
        template = all_ops()[name].kernel
        if any(f"{{{k}}}" in template for k in (1, 2)) or "{" in template.replace("{0}", ""):
            continue                                   # unary, attribute-free ones
        x = np.float32(0.75)
        tree = parse_template(template, [Ref("x0", DType.f32)], {}, DType.f32)
        namespace = {"np": np, "math": math, "x0": x, "_fast_exp": fast_math.exp,
                     "_fast_tanh": fast_math.tanh, "_fast_erf": fast_math.erf}
        expected = eval(template.format("x0"), namespace)
        assert eval(render(tree), namespace) == expected, name
