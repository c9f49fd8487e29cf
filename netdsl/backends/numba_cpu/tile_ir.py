"""LLVM IR pieces that netdsl's own product kernels share (gemm_nt.py, gemm_nn.py): their
vector width, LLVM's intrinsics declared once per module, a value broadcast to every lane of a
vector, and the head of a loop over K carrying a grid of vector sums."""
from __future__ import annotations

from llvmlite import ir

WIDTH = 16                                    # float32 lanes of an AVX-512 register


def declared(module: ir.Module, name: str, function_type: ir.FunctionType) -> ir.Function:
    """The function `name` (an LLVM intrinsic) of `module`, declared there if it is not yet."""
    return module.globals.get(name) or ir.Function(module, function_type, name)


def splat(builder: ir.IRBuilder, value: ir.Value, vector: ir.VectorType) -> ir.Value:
    """`value` in every lane of a `vector`-typed value."""
    lanes = vector.count
    single = builder.insert_element(ir.Constant(vector, ir.Undefined), value,
                                    ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(single, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def open_loop(builder: ir.IRBuilder, name: str, rows: int, columns: int,
              vector: ir.VectorType, count: ir.Value | None = None):
    """Start a loop at the builder's position: (entry block, loop block, done block, the
    int64 index from 0, rows x columns vector sums from zero), the builder in the loop block.
    The caller adds each value's incoming from the loop and branches back or to done.  With
    `count`, the loop is entered only where count > 0 (else straight to done)."""
    int64 = ir.IntType(64)
    entry = builder.block
    loop = builder.append_basic_block(f"{name}_loop")
    done = builder.append_basic_block(f"{name}_done")
    if count is None:
        builder.branch(loop)
    else:
        builder.cbranch(builder.icmp_signed(">", count, ir.Constant(int64, 0)), loop, done)
    builder.position_at_end(loop)
    index = builder.phi(int64)
    index.add_incoming(ir.Constant(int64, 0), entry)
    zero = ir.Constant(vector, None)
    sums = [[builder.phi(vector) for _ in range(columns)] for _ in range(rows)]
    for row in sums:
        for value in row:
            value.add_incoming(zero, entry)
    return entry, loop, done, index, sums


__all__ = ["WIDTH", "declared", "open_loop", "splat"]
