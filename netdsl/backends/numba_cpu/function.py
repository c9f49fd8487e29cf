"""The writer of one generated function over a fused, planned graph: the step driver (buffers
carved from the arenas at `offsets`) or a scan body (arenas passed in, grown when too small and
returned, so that a scan allocates them once).

Each kernel group becomes driver lines: a loop nest inline or a call of a shared kernel
function (kernel_nests.py), an op's CPU lowering (its lines rewritten by line_rewrites.py), or
a scan; back-to-back repeats of runs of groups then become calls of shared segment functions
(segments.py).  See codegen.py for the module.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import cached_property

from ...errors import Error
from ...ir.graph import Value
from ...ir.types import DimLike, elements_at, opaque_source, opaque_symbols
from ...passes.fusion import FusedGraph, KernelGroup
from ...passes.memory import ALIGN, MemoryPlan
from .kernel_nests import INTERNAL, emit_nest, has_nest
from .line_rewrites import (plain_integers, reshapes_as_views, scalar_places, scalars_in_place,
                            slice_assignments, unowned_views)
from .parts import carves_for, split_driver, warm_up
from .segments import share_repeats
from .symbol_sources import product_sources, symbol_sources

# The driver's reversed twin is only ever compiled, in a helper: not cached (nothing loads it).
_WARM_UP_DECORATOR = f"@njit(fastmath=_FASTMATH, error_model='numpy', {INTERNAL})"


class FunctionWriter:
    """Writes one function over a fused, planned graph: the step driver or a body function."""

    def __init__(self, fused: FusedGraph, plan: MemoryPlan, module):
        # module: the codegen.ModuleWriter whose functions, kernels and imports this shares
        self.graph, self.fused, self.plan, self.module = fused.graph, fused, plan, module
        self.options, self.ctx = module.options, module.ctx
        self.symbols = symbol_sources(fused.graph)
        self.sym_var = {name: f"d_{k}" for k, name in enumerate(sorted(self.symbols))}
        self.products = product_sources(fused.graph, self.symbols)
        self.product_var = {m: f"m_{k}" for k, m in enumerate(sorted(self.products))}
        self.names: dict[int, str] = {}
        self.const_nodes = {n.id: n for n in fused.constants}
        self.outputs_in_place: dict[int, str] = {}    # value id -> the body output it is made in
        self.output_places: list = []                 # the driver's (_output_places)
        self.is_driver = False                        # writing the step (not a body)

    @cached_property
    def consumers(self) -> dict:
        """Value id -> the nodes reading it: built on first use (scan.step_major asks, for a
        graph with loops), not for every function written."""
        return self.graph.consumers()

    # -- dims ----------------------------------------------------------------------------
    def dim(self, d: DimLike) -> str:
        """Source of a dimension in terms of the dims read at the top of the function."""
        if isinstance(d, int):
            return str(d)
        terms = []
        for monomial, coefficient in d.terms:
            product, rest = self._factor(monomial)
            if rest is None:
                missing = {n for s in d.symbols for n in opaque_symbols(s)} - set(self.sym_var)
                raise Error(f"cannot compile: dimension {d} is not the dimension of any input, "
                            f"so it is unknown at run time ({', '.join(sorted(missing))})")
            factors = ([str(coefficient)] if coefficient != 1 or not monomial else []) + \
                ([self.product_var[product]] if product else []) + \
                [self.sym_var.get(n) or opaque_source(n, self.sym_var) for n in rest]
            terms.append(" * ".join(factors))
        return "(" + " + ".join(terms) + ")"

    def _factor(self, monomial: tuple) -> tuple[tuple | None, tuple | None]:
        """(a product read whole or None, the symbols left) covering `monomial` with known
        symbols, or (None, None) where nothing does."""
        def known(names) -> bool:
            return all(opaque_symbols(n) <= self.sym_var.keys() for n in names)
        if known(monomial):
            return None, monomial
        for product in self.product_var:
            left = Counter(monomial)
            left.subtract(product)
            if min(left.values()) >= 0 and known(left.elements()):
                return product, tuple(sorted(left.elements()))
        return None, None

    def shape(self, value: Value) -> str:
        dims = [self.dim(d) for d in value.shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def size_at_hint(self, dims) -> int:
        return elements_at(dims, self.options.size_hint)

    # -- functions -----------------------------------------------------------------------
    def driver(self) -> tuple[list[str], list[tuple[str, object]], list[str]]:
        """The step function: buffers from arenas at `offsets`, returns outputs and losses."""
        self.is_driver = True
        graph, plan = self.graph, self.plan
        params = self._name_user_values()
        carves = {self.names[v.id]: self._carve(v, f"offsets[{plan.location[v.id].slot}]")
                  for v in self._buffers()}
        if self._param_table():            # one table of addresses for every parameter
            carves.update({f"p_{i}": f"p_{i} = _param_view(params[{i}], "
                                     f"{self.shape(info.value)}, "
                                     f"np.{info.value.dtype.numpy.name})"
                           for i, info in enumerate(graph.params)})
            params = [p for p in params if p[0] != "param"] + \
                [("params", tuple(info.name for info in graph.params))]
        statements = self._kernels(carves) + self._updates()
        if getattr(self.module, "compact_driver", False):
            statements = plain_integers(statements, self.module.separate_names())
        values = list(graph.outputs.values()) + [loss.value for loss in graph.losses]
        values = [plan.returned.get(v.id, v) for v in values]   # snapshots of updated state
        self.output_places = self._output_places(values, carves)
        returned = [self.names[v.id] for v, place in zip(values, self.output_places)
                    if place is None]
        ending = [f"return ({', '.join(returned)}{',' if len(returned) == 1 else ''})"]
        carves, statements = self._owned(carves, ending, statements)
        enter, leave = self._floating_point()
        body = self._prologue() + enter + carves_for(statements + ending, carves) + \
            statements + leave + ending
        text = "\n".join(body)
        used = [k for k in range(len(self.fused.constants)) if re.search(rf"\bc_{k}\b", text)]
        params += [("const", k) for k in used]
        params += [("arena", d) for d in plan.dtypes] + [("offsets", None)]
        args = [self._param_name(kind, key) for kind, key in params]
        # Views of other buffers (`v_view_3 = _view(v_7, 0, ...)`) are made again where used.
        views = _view_lines(statements)
        add_part = getattr(self.module, "add_part", None)      # the CUDA host driver: none
        calls = None if add_part is None else split_driver(
            self._prologue(), [s for s in statements if s not in views.values()], ending,
            carves | views, args, self.module.global_names(), add_part,
            elements=self._elements_touched())
        if calls is not None:                  # a long driver: parts (parts.py)
            body = self._prologue() + enter + carves_for(ending, carves | views) + calls + \
                leave + ending
        if add_part is not None:               # a helper's reversed twin (parts.warm_up)
            twin = warm_up(self._prologue(), [s for s in statements if s not in views.values()],
                           carves | views, args, self.module.global_names(),
                           self.module.separate_names())
            if twin is not None:
                self.module.add_function("warm_up", [_WARM_UP_DECORATOR, *twin], separate=False)
        outputs = list(graph.outputs) + [loss.name for loss in graph.losses]
        return [f"def step({', '.join(args)}):"] + ["    " + l for l in body], params, outputs

    def _elements_touched(self) -> int:
        """The elements of the parameters and of the arena's slots, symbolic dims at the
        size hint: what a step reads or writes at least once (parts.BUSY_ELEMENTS)."""
        return sum(self.size_at_hint(info.value.shape) for info in self.graph.params) + \
            sum(max(self.size_at_hint(v.shape) for v in slot.values)
                for slot in self.plan.slots if slot.values)

    def _output_places(self, values: list[Value], carves: dict[str, str]) -> list:
        """Per returned value, where its caller finds it without the driver returning it:
        (arena dtype, slot, shape) for a value carved straight from its arena, which the
        caller views itself (compiled.output_views), else None: the driver returns it.  Only
        for a module that asks (the cpu target's): boxing an array to return it to Python
        costs ~0.3 us a call and ~6 ms of compile (a deep_residual step returns 43)."""
        if not getattr(self.module, "outputs_in_arena", False):
            return [None] * len(values)
        places = []
        for value in values:
            where = self.plan.location.get(value.id)
            name = self.names.get(value.id)
            carved = where is not None and where.kind == "slot" and name in carves and \
                carves[name] == self._carve(value, f"offsets[{where.slot}]")
            places.append((self.plan.slots[where.slot].dtype, where.slot, tuple(value.shape))
                          if carved else None)
        return places

    def _floating_point(self) -> tuple[list[str], list[str]]:
        """The driver's first and last lines around its work (denormals.py), where the options
        ask for them (the CUDA host driver's never do)."""
        if not getattr(self.options, "flush_denormals", False):
            return [], []
        from .denormals import driver_lines
        return driver_lines(self.ctx)

    def _param_table(self) -> bool:
        """Whether the driver takes its parameters as one table of addresses (param_table.py):
        there are at least the options' `param_table_min` (a target without that option: never)
        and every parameter's shape is static."""
        least = getattr(self.options, "param_table_min", None)
        return bool(least is not None and self.graph.params and
                    len(self.graph.params) >= least and
                    all(isinstance(d, int) for info in self.graph.params
                        for d in info.value.shape))

    def body(self, name: str) -> list[str]:
        """A function `name(inputs..., outputs..., arenas...)` (a scan body) returning its
        arenas, one per dtype of its memory plan (`arena_f32`, ...): an arena too small for
        this call's dims is replaced by a new one, so the caller allocates them once per scan
        (empty arrays before the first step) and passes back what the last call returned."""
        graph, plan = self.graph, self.plan
        self._name_user_values()
        if graph.params:
            raise Error(f"the Numba backend cannot compile the subgraph '{graph.name}': it "
                        f"reads parameters (pass them as inputs)")
        outs = [f"out_{i}" for i in range(len(graph.outputs))]
        body = self._prologue()
        for k, node in enumerate(self.fused.constants):    # array constants: made per call
            if not _inlined_only(node, self.fused):
                value = node.outputs[0]
                body.append(f"c_{k} = {self.empty(self.shape(value), value.dtype)}")
                body.extend(self.constant_lines(node, f"c_{k}"))
        totals: dict = {}
        for slot in plan.slots:                       # lay the arena out from the dims
            sizes = {self.dim(v.type.size) for v in slot.values}
            size = self.largest(sorted(sizes))
            start = totals.get(slot.dtype, "0")
            body.append(f"o_{slot.index} = {start}")
            totals[slot.dtype] = f"o_{slot.index} + ({size} + {ALIGN - 1}) // {ALIGN} * {ALIGN}"
        arenas = [f"arena_{dtype.value}" for dtype in totals]
        for dtype, total in totals.items():             # grown only when too small
            arena = f"arena_{dtype.value}"
            body += [f"if {arena}.shape[0] < {total}:",
                     f"    {arena} = {self.empty(total, dtype)}"]
        self._write_outputs_in_place(outs)
        carves = {self.names[v.id]: self._carve(v, f"o_{plan.location[v.id].slot}")
                  for v in self._buffers()}
        lines = self._kernels(carves)
        for out, value in zip(outs, graph.outputs.values()):
            if self.names[value.id] != out:
                lines += self._copy(out, self.names[value.id], value)
        body += carves_for(lines, carves) + lines
        args = [f"in_{i}" for i in range(len(graph.inputs))] + outs + arenas
        returned = "return (" + "".join(f"{a}, " for a in arenas) + ")"
        return [f"def {name}({', '.join(args)}):"] + ["    " + l for l in body + [returned]]

    def _write_outputs_in_place(self, outs: list[str]) -> None:
        """A body output that a kernel of the body makes, in an arena slot of its own, is
        made straight in the output array the caller passes rather than copied there at the
        end: an LSTM step's new state and gates, 768 values a row, twice per step (the
        forward loop and its gradient's).  Inputs, constants, views and a value returned
        twice keep the copy.  `memory` keys such a value by its output, not its slot."""
        values = list(self.graph.outputs.values())
        for out, value in zip(outs, values):
            where = self.plan.location.get(value.id)
            if where is not None and where.kind == "slot" and value.id not in self.names \
                    and sum(v.id == value.id for v in values) == 1:
                self.names[value.id] = out
                self.outputs_in_place[value.id] = out

    def memory(self, value: Value):
        """Which memory a value occupies (memory_key), an output made in place by its own."""
        return memory_key(self.plan, value, self.outputs_in_place)

    def largest(self, sizes: list[str]) -> str:
        """The largest of `sizes` (source expressions), as nested `_max2` calls: Python's
        `max` in compiled code is an overload Numba compiles apart, per argument count and
        types (25 ms of a cold compile)."""
        if len(sizes) == 1:
            return sizes[0]
        return f"_max2({sizes[0]}, {self.largest(sizes[1:])})"

    def empty(self, shape: str, dtype) -> str:
        """Source allocating an uninitialised array (a target's own memory: the cuda writer
        allocates on the device)."""
        return f"_empty({shape}, np.{dtype.numpy.name})"

    def constant_lines(self, node, name: str) -> list[str]:
        """Lines filling the array `name` with a constant node's value."""
        from .lowerings import lowering_for
        return lowering_for(node.op)(self.ctx, node, [], [name])

    # -- pieces --------------------------------------------------------------------------
    def _name_user_values(self) -> list[tuple[str, object]]:
        params: list[tuple[str, object]] = []
        for i, value in enumerate(self.graph.inputs):
            self.names[value.id] = f"in_{i}"
            params.append(("input", value.name))
        for i, info in enumerate(self.graph.params):
            self.names[info.value.id] = f"p_{i}"
            params.append(("param", info.name))
        for k, node in enumerate(self.fused.constants):
            self.names[node.outputs[0].id] = f"c_{k}"
        return params

    def _prologue(self) -> list[str]:
        return [f"{var} = {self.symbols[name]}  # {name}"
                for name, var in sorted(self.sym_var.items(), key=lambda t: t[1])] + \
            [f"{var} = {self.products[product]}  # {'*'.join(product)}"
             for product, var in self.product_var.items()]

    def _buffers(self) -> list[Value]:
        """Name every planned value; returns those that live in arena slots, in order."""
        order = {v.id: k for k, v in enumerate(v for n in self.graph.nodes for v in n.outputs)}
        result = []
        # Values of one slot with one shape and dtype are one view, under one name: each view
        # is a variable of the function, and LLVM's time grows faster than their count.
        carved: dict[tuple, str] = {}
        for group in self.fused.groups:
            for value in (v for node in group.nodes for v in node.outputs):
                where = self.plan.location.get(value.id)
                if where is None or value.id in self.names:
                    continue
                if where.kind == "user":
                    self.names[value.id] = self._user_name(where.name)
                elif where.kind == "slot":
                    key = (where.slot, value.dtype, self.shape(value))
                    if key in carved:
                        self.names[value.id] = carved[key]
                        continue
                    self.names[value.id] = carved[key] = f"v_{order[value.id]}"
                    result.append(value)
        for value, copy in self.plan.snapshots:
            self.names[copy.id] = f"snap_{len(result)}"
            result.append(copy)
        return result

    def _kernels(self, carves: dict[str, str]) -> list[str]:
        """The kernel groups in order; views first (a view depends on its buffer, never on
        its contents), so that runs of groups read only names defined before them.  `carves`
        (buffer name -> the line making it) lets a shared run make its own buffers."""
        views, groups = [], []
        scalars = scalar_places(carves) if getattr(self.module, "compact_driver", False) \
            else {}
        for t, group in enumerate(self.fused.groups):
            lines = self.group(t, group)
            if scalars and group.kind != "view":
                lines = scalars_in_place(lines, scalars)
            if group.kind == "view":
                views.extend(lines)
            else:
                comment = f"# k{t} {group.kind}: {' '.join(n.op.name for n in group.nodes)}"
                groups.append([comment] + lines)
        if not self.options.share_repeated:
            return views + [line for lines in groups for line in lines]
        return views + share_repeats(groups, self.module.global_names(),
                                     self.module.segment_function, carves)

    def _updates(self) -> list[str]:
        lines = []
        for value, copy in self.plan.snapshots:
            lines.extend(self._copy(self.names[copy.id], self.names[value.id], value))
        for name, value in self.plan.copies:
            lines.extend(self._copy(self._user_name(name), self.names[value.id], value))
        return lines

    def _carve(self, value: Value, offset: str) -> str:
        """The line making a value's buffer: a view into its dtype's arena at `offset`, without
        an owner where the module has such views (support.unowned_view: the arena is an
        argument, which the caller keeps alive)."""
        arena = f"arena_{self.plan.slots[self.plan.location[value.id].slot].dtype.value}"
        return f"{self.names[value.id]} = {self.carve_view}({arena}, {offset}, " \
            f"{self.shape(value)})"

    @property
    def carve_view(self) -> str:
        """The view a step driver carves its buffers with: the module's unowned one where it
        has one (the cpu target's), else `_view`."""
        return getattr(self.module, "carve_view", "_view")

    def _owned(self, carves: dict[str, str], ending: list[str],
               statements: list[str]) -> tuple[dict[str, str], list[str]]:
        """`carves` and `statements` with the driver's views of its arguments, and of what it
        makes of them, without an owner (support.unowned_view), but for the arrays it returns
        and those they are made from: an array returned to Python keeps its arena alive."""
        carve = self.carve_view
        if carve == "_view":
            return carves, statements
        returned = {line.split(" = ", 1)[0]
                    for line in carves_for(ending, carves | _view_lines(statements))}
        owned = {name: line.replace(f" = {carve}(", " = _view(", 1) if name in returned
                 else line for name, line in carves.items()}
        return owned, unowned_views(statements, returned, carve)

    def _copy(self, target: str, source: str, value: Value) -> list[str]:
        size, k = self.dim(value.type.size), self.ctx.fresh("k")
        return [f"{k}_t = _view({target}, 0, ({size},))", f"{k}_s = _view({source}, 0, ({size},))",
                f"for {k} in range({size}):", f"    {k}_t[{k}] = {k}_s[{k}]"]

    def _user_name(self, name: str) -> str:
        for i, value in enumerate(self.graph.inputs):
            if value.name == name:
                return f"in_{i}"
        for i, info in enumerate(self.graph.params):
            if info.name == name:
                return f"p_{i}"
        raise KeyError(name)

    def _param_name(self, kind: str, key) -> str:
        if kind in ("input", "param"):
            return self._user_name(key)
        return {"const": f"c_{key}", "arena": f"arena_{getattr(key, 'value', '')}",
                "offsets": "offsets", "params": "params"}[kind]

    # -- kernel groups ---------------------------------------------------------------------
    def group(self, t: int, group: KernelGroup) -> list[str]:
        if group.kind in ("elementwise", "reduction"):
            return self.nest(t, group)
        if group.kind == "view":
            node = group.nodes[0]
            out = node.outputs[0]
            self.names[out.id] = f"v_view_{t}"
            return [f"v_view_{t} = _view({self.names[node.inputs[0].id]}, 0, {self.shape(out)})"]
        lines = self.op(group.anchor or group.nodes[0])
        if group.kind in ("matmul", "conv") and group.epilogue:
            lines += self.nest(t, group)
        return lines

    def op(self, node) -> list[str]:
        ins = [self.names[v.id] for v in node.inputs]
        outs = [self.names[v.id] for v in node.outputs]
        self.module.counts["ops"] += 1
        if node.op.name == "scan":
            from .scan import emit_scan
            return emit_scan(self, node, ins, outs)
        if node.op.name == "row_blocks":
            from .row_blocks import emit_row_blocks
            return emit_row_blocks(self, node, ins, outs)
        from .lowerings import lowering_for
        lower = lowering_for(node.op)
        if lower is None:
            raise Error(f"the Numba backend cannot compile op '{node.op.name}': it has no "
                        f"CPU lowering", node.span)
        return [reshapes_as_views(line) for line in
                slice_assignments(lower(self.ctx, node, ins, outs), self.ctx)]

    def nest(self, t: int, group: KernelGroup) -> list[str]:
        return emit_nest(self, t, group)


# A view group's line (FunctionWriter.group), not a write into a view (`v_view_3[0] = ...`).
_VIEW_LINE = re.compile(r"(v_view_\d+) = _(?:unowned_)?view\(")


def _view_lines(statements: list[str]) -> dict[str, str]:
    """The view groups' lines among `statements`, by the name each makes."""
    return {match.group(1): line for line in statements if (match := _VIEW_LINE.match(line))}


def memory_key(plan: MemoryPlan, value: Value, outputs_in_place: dict | None = None):
    """Which memory a value occupies (views resolved to their source): a body's output made
    in place (`outputs_in_place`: source value id -> output) by that output, not its slot."""
    source, where = value.id, plan.location.get(value.id)
    while where is not None and where.kind == "alias":
        source, where = where.alias, plan.location.get(where.alias)
    if outputs_in_place and source in outputs_in_place:
        return ("output", outputs_in_place[source])
    if where is None:
        return ("value", value.id)
    return (where.kind, where.slot, where.name)


def _inlined_only(node, fused: FusedGraph) -> bool:
    """A scalar constant read only by loop nests (inlined as a literal, needs no array)."""
    from ...passes.fusion_rules import is_scalar_constant
    value = node.outputs[0]
    return is_scalar_constant(node) and all(
        has_nest(g) and (g.anchor is None or value not in g.anchor.inputs)
        for g in fused.groups if value in g.inputs)


__all__ = ["FunctionWriter", "has_nest", "memory_key"]
