"""Runs of a graph's nodes that keep the rows of its batch apart, wrapped in `row_blocks` nodes.

The CPU target runs such a node as one parallel loop over blocks of rows, each thread taking
its rows through every op of the run (backends/numba_cpu/row_blocks.py): the threads meet
once per run instead of once per product, and a block's values stay in its core's cache from
one op to the next.  The MLP benchmark's inference forward (three products, their bias and
relu, the softmax) at two threads: 271 against 307 us with each product cut across the
threads and the elementwise work on one.

Which values keep rows apart follows passes/scan_rows.py (`row_kind`): the graph's inputs
whose axis 0 is the batch are ROW, parameters and constants FREE, and each node's kind follows
from its inputs' by that module's rules.  A node that mixes rows (a reduction over the batch,
a weight's gradient `x^T @ dy`, a gather by index: not proven) ends a run; its outputs, computed
before any later run starts, count as ROW where their axis 0 is the batch and FREE otherwise,
as do a FREE node's (`zeros([B])`: the same for every row, but a block reads its rows).
A run keeps its FREE nodes outside, before its `row_blocks` node (they depend on no ROW value),
and copies the constants its ROW nodes read into the body (a scalar stays a literal there).
Only runs with a product by weights or a convolution are wrapped (a run of elementwise work
is one loop nest already), and only where every value of the run has the batch as its leading dim alone
(`batch_only_leads`): the body reads its rows from its inputs' shapes.

The batch is the leading dim of the graph's first input whose axis 0 is a symbol; a graph
with a static batch is left as it is (a block's body is compiled for any number of rows).
"""
from __future__ import annotations

from ..ir.graph import Graph, GraphBuilder, Node, Value
from ..ir.types import Sym
from .rewrite import Rebuilder, as_values
from .scan_rows import FREE, ROW, batch_only_leads, row_kind

MAX_WEIGHTS = 1 << 20           # elements of a run's weights, all products together


def row_regions(graph: Graph) -> Graph:
    """`graph` with each run of row-keeping nodes holding a product in one `row_blocks`
    node (see the module docstring); `graph` itself where there is none."""
    batch = _batch(graph)
    if batch is None:
        return graph
    kinds: dict[int, str] = {v.id: _outside(v, batch) for v in graph.inputs}
    kinds.update({info.value.id: FREE for info in graph.params})
    runs: list[list[Node]] = [[]]
    inside: set[int] = set()                # ids of the ROW nodes: a body computes them
    for node in graph.nodes:
        kind = row_kind(node, [kinds.get(v.id, FREE) for v in node.inputs], batch)
        if kind == ROW and not (all(batch_only_leads(v, ROW, batch) for v in node.outputs) and
                                all(v.rank or _is_constant(v) for v in node.inputs)):
            kind = None         # a rank-0 input would reach the body as a 0-d array: left out
        if kind is None:
            runs.append([])
        else:
            runs[-1].append(node)
        if kind == ROW:
            inside.add(node.id)
            kinds.update({v.id: ROW for v in node.outputs})
        else:       # computed before any later run: its rows are there to read (zeros([B]))
            kinds.update({v.id: _outside(v, batch) for v in node.outputs})
    wrapped = {id(run[0]): run for run in runs if _worth(run, inside, kinds)}
    if not wrapped:
        return graph
    rebuilder = Rebuilder(graph)
    region: dict[int, int] = {}             # node id -> the run that computes it
    for k, run in enumerate(wrapped.values()):
        region.update({node.id: k for node in run if node.id in inside})
    leaving = _leaving(graph, region)
    moved = {node.id for run in wrapped.values() for node in run}
    for node in graph.nodes:
        run = wrapped.get(id(node))
        if run is not None:
            _wrap(rebuilder, run, inside, kinds, leaving)
        elif node.id not in moved:
            rebuilder.copy(node)
    return rebuilder.finish()


def _batch(graph: Graph) -> Sym | None:
    for value in graph.inputs:
        if value.rank >= 1 and isinstance(value.shape[0], Sym) and value.shape[0].is_single_symbol:
            return value.shape[0]
    return None


def _outside(value: Value, batch: Sym) -> str:
    """A value computed before a run: ROW where its axis 0 is the batch, else FREE."""
    return ROW if value.rank >= 1 and value.shape[0] == batch and \
        batch_only_leads(value, ROW, batch) else FREE


def _worth(run: list[Node], inside: set[int], kinds: dict[int, str]) -> bool:
    """A run with a product of its rows by weights or a convolution (one op, or a run
    without one, gains nothing), whose weights are at most MAX_WEIGHTS elements: each thread
    reads all of them, where a product cut by columns reads its share (784-1024-1024-10's
    7 MB would be read by both cores from memory, not from their caches)."""
    rows = [node for node in run if node.id in inside]
    weights = [node.inputs[1] for node in rows if node.op.name in ("matmul", "conv2d") and
               kinds.get(node.inputs[1].id, FREE) == FREE]
    return len(rows) >= 2 and bool(weights) and \
        sum(_elements(w) for w in weights) <= MAX_WEIGHTS


def _elements(value: Value) -> int:
    count = 1
    for d in value.shape:
        count *= d if isinstance(d, int) else MAX_WEIGHTS
    return count


def product_rows(body: Graph, size_hint: int = 128) -> int:
    """Rows of the largest product by weights per row of the batch, in a `row_blocks` body
    (1 for [B, F] @ W, T for [B, T, F] @ W; other symbolic dims at `size_hint`)."""
    largest, rows = -1, 1
    for node in body.nodes:
        if node.op.name != "matmul" or node.inputs[1].rank != 2:
            continue
        a, b = node.inputs
        if all(isinstance(d, int) for d in b.shape):
            count = 1
            for d in a.shape[1:-1]:
                count *= d if isinstance(d, int) else size_hint
            work = count * b.shape[0] * b.shape[1]
            if work > largest:
                largest, rows = work, count
    return max(rows, 1)


def _leaving(graph: Graph, region: dict[int, int]) -> set[int]:
    """Ids of the values a run computes that something outside that run reads: a node of
    another run or of none, or the graph's outputs, losses and state updates."""
    made = {v.id: region[node.id] for node in graph.nodes if node.id in region
            for v in node.outputs}
    read = {v.id for node in graph.nodes for v in node.inputs
            if v.id in made and region.get(node.id) != made[v.id]}
    read.update(v.id for v in graph.outputs.values())
    read.update(loss.value.id for loss in graph.losses)
    read.update(v.id for v in graph.state_updates.values())
    return read


def _wrap(rebuilder: Rebuilder, run: list[Node], inside: set[int], kinds: dict[int, str],
          leaving_ids: set[int]) -> None:
    """Emit the run's FREE nodes, then one `row_blocks` node computing its ROW nodes."""
    rows = [node for node in run if node.id in inside]
    for node in run:
        if node.id not in inside:
            rebuilder.copy(node)
    seen = {v.id for node in rows for v in node.outputs}     # made inside, or taken already
    row_inputs: list[Value] = []
    free_inputs: list[Value] = []
    for node in rows:
        for value in node.inputs:
            if value.id in seen or _is_constant(value):
                continue
            seen.add(value.id)
            (row_inputs if kinds.get(value.id) == ROW else free_inputs).append(value)
    body = Graph(name="rows")
    builder = GraphBuilder(body)
    mapping: dict[int, Value] = {}
    for k, value in enumerate(row_inputs + free_inputs):
        mapping[value.id] = builder.input(f"x{k}", value.type)
    for node in rows:
        builder.span, builder.scope = node.span, node.scope
        for value in node.inputs:
            if value.id not in mapping and _is_constant(value):
                mapping[value.id] = builder.op(value.producer.op, **value.producer.attrs)
        new = as_values(builder.op(node.op, *(mapping[v.id] for v in node.inputs),
                                   **node.attrs))
        mapping.update({old.id: v for old, v in zip(node.outputs, new)})
    leaving = [v for node in rows for v in node.outputs if v.id in leaving_ids]
    body.outputs = {f"y{k}": mapping[v.id] for k, v in enumerate(leaving)}
    with rebuilder.like(rows[0]) as outer:
        results = as_values(outer.op("row_blocks", *(rebuilder.get(v) for v in row_inputs),
                                     *(rebuilder.get(v) for v in free_inputs), body=body,
                                     n_rows=len(row_inputs)))
    for old, new in zip(leaving, results):
        rebuilder.replace(old, new)


def _is_constant(value: Value) -> bool:
    return value.producer is not None and value.producer.op.has("constant")


__all__ = ["MAX_WEIGHTS", "product_rows", "row_regions"]
