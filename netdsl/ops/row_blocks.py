"""`row_blocks`: a body subgraph that computes each row of its batch from that row alone.

    outputs... = row_blocks(rows..., constants..., body=Graph, n_rows=R)

* inputs: R values whose axis 0 is the batch (the body reads a block of their rows), then the
  constants the body reads whole (weights, values computed before).
* body: a Graph with no params, one input per input of the node (same types), whose outputs
  all have the batch as axis 0; the node's outputs are the body's, in order.

No front end writes it: the CPU target's pass passes/row_regions.py wraps runs of row-keeping
nodes of an already differentiated graph in it, so that a target may run the body over blocks
of rows in parallel (backends/numba_cpu/row_blocks.py).  It has no gradient rule for that
reason.  Its `reference` runs the body once over every row.
"""
from __future__ import annotations

from ..ir.graph import Graph, GraphBuilder
from ..ir.types import ShapeError, TensorType
from .registry import op


@op("row_blocks")
class RowBlocks:
    """A body run on blocks of rows of its batch (the CPU's row-parallel regions)."""
    traits = {"control", "no_grad"}
    vjp = None

    def infer(*types, body, n_rows):
        given, wanted = list(types), [v.type for v in body.inputs]
        if given != wanted:
            raise ShapeError(f"row_blocks: the body takes {', '.join(map(str, wanted))}, the "
                             f"node gives {', '.join(map(str, given))}")
        if not 1 <= n_rows <= len(given):
            raise ShapeError(f"row_blocks: {n_rows} row inputs of {len(given)}")
        batch = given[0].shape[0] if given[0].rank else None
        outputs = tuple(v.type for v in body.outputs.values())
        if batch is None or any(t.rank == 0 or t.shape[0] != batch
                                for t in given[:n_rows] + list(outputs)):
            raise ShapeError("row_blocks: every row input and output must have the batch as "
                             "axis 0")
        return outputs

    def reference(*arrays, body, n_rows, run_body):
        return tuple(run_body(body, list(arrays)))

    def examples():
        from ..ir.types import DType
        f32 = DType.f32
        builder = GraphBuilder(Graph(name="rows"))
        x = builder.input("x0", TensorType(f32, (2, 3)))
        w = builder.input("x1", TensorType(f32, (4, 3)))
        h = builder.op("relu", builder.op("matmul", x, w, transpose_b=True))
        builder.graph.outputs = {"y0": h, "y1": builder.op("tanh", h)}
        types = (TensorType(f32, (2, 3)), TensorType(f32, (4, 3)))
        return [(types, {"body": builder.graph, "n_rows": 1})]
