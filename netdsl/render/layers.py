"""The layers level of `netdsl render`: one box per layer instance, one cluster per block.

Reads the Architecture records that lowering produces (netdsl/ir/architecture.py), so the
diagram and the `netdsl check` summary table always agree.  Three rules keep large networks
readable:

* a run of `repeat(n, ...)` copies (consecutive siblings with one repeat group id and indices
  counting up) is drawn once, as the first copy inside a cluster labelled "encoder ×12 (Kind)";
* consecutive identical block instances (same kind, same arguments, each feeding the next) are
  collapsed the same way;
* with `depth=N`, a block nested deeper than N levels is drawn as one box;
* a `scan` is a loop cluster holding its body (loops.py), given the model's graph.

Records inside a copy that is not drawn are mapped to the matching record of the first copy (by
position in source order), so edges into and out of a collapsed run still land on real boxes,
and the edge from one copy to the next becomes a dashed back edge inside the cluster.
`expand=True` draws every copy.  The ops and kernels levels apply the same rule to the ops of
each copy (`repeated_copies` here, `OpCopies` in copies.py).
"""
from __future__ import annotations

import re
from collections import defaultdict

import graphviz

from ..ir.architecture import Architecture, LayerRecord
from ..ir.graph import Graph
from . import style
from .loop_records import RecordLoops, layer_loop_links
from .loops import input_boxes, loop_group, output_details
from .output import (Box, Diagram, Group, Link, check_rankdir, clip_at_clusters, location,
                     to_digraph)

def render_layers(arch: Architecture, *, expand: bool = False, depth: int | None = None,
                  rankdir: str = "TB", graph: Graph | None = None) -> graphviz.Digraph:
    """The layer-level diagram of a model as a graphviz.Digraph.

    Given the model's graph, loops show their carried states and step slices (loops.py)."""
    return to_digraph(build_layers(arch, expand=expand, depth=depth, rankdir=rankdir,
                                   graph=graph))


def build_layers(arch: Architecture, *, expand: bool = False, depth: int | None = None,
                 rankdir: str = "TB", graph: Graph | None = None) -> Diagram:
    """The layer-level diagram as a neutral Diagram (for Graphviz or Mermaid)."""
    return _LayerLayout(arch, expand, depth, graph).diagram(check_rankdir(rankdir))


def repeated_copies(arch: Architecture) -> tuple[dict[str, str], dict[str, str]]:
    """The collapse rule for other levels: ({copy name: first copy's name}, {first: label}).

    Every copy but the first of each run (repeat copies, identical chained blocks) maps to the
    first; the label is the run's cluster title, e.g. "trunk ×12 (ResidualDense)".
    """
    layout = _LayerLayout(arch, expand=False, depth=None)
    layout.diagram("TB")
    return layout.hidden_copies, layout.run_labels


def _types(record: LayerRecord) -> str | None:
    return ", ".join(str(t) for t in record.output_types) or None


def _args(record: LayerRecord) -> list[str]:
    # Positional arguments may be recorded under numeric keys; show those by value only.
    text = ", ".join(value if key.isdigit() or key.startswith("_") else f"{key}={value}"
                     for key, value in record.args.items())
    return style.wrap(text) if text else []


def _run_name(run: list[LayerRecord]) -> str:
    """What a collapsed run is called: `trunk` for trunk_1 … trunk_12, else first … last."""
    first, last = run[0].short_name, run[-1].short_name
    group = run[0].repeat[0] if run[0].repeat else ""
    if re.fullmatch(r"[A-Za-z_][\w.]*", group):        # a readable group id (`as encoder`)
        return group.rsplit(".", 1)[-1]
    base = re.sub(r"_\d+$", "", first)
    if run[0].repeat and base != first and all(
            re.fullmatch(re.escape(base) + r"_\d+", r.short_name) for r in run):
        return base
    return f"{first} … {last}"


class _LayerLayout:
    """Places records into boxes and clusters, then connects them."""

    def __init__(self, arch: Architecture, expand: bool, depth: int | None,
                 graph: Graph | None = None):
        self.arch, self.expand, self.depth = arch, expand, depth
        self.loops = RecordLoops(arch.records, graph)
        self.by_name = {r.name: r for r in arch.records}
        self.kids: dict[str | None, list[LayerRecord]] = defaultdict(list)
        for record in arch.records:
            parent = record.parent if record.parent in self.by_name else None
            self.kids[parent].append(record)
        self.consumers: dict[str, set[str]] = defaultdict(set)
        for record in arch.records:
            for name in record.inputs:
                self.consumers[name].add(record.name)
        self.alias: dict[str, str] = {}            # record in a hidden copy -> first copy's
        self.collapsed_into: dict[str, str] = {}   # record inside a block drawn as one box
        self.copy_of: dict[str, tuple[int, int]] = {}    # name -> (run number, copy index)
        self.boxes: set[str] = set()
        self.clusters: dict[str, str] = {}         # block record name -> cluster id
        self.placed: set[str] = set()
        self._subtrees: dict[str, list[LayerRecord]] = {}
        self.hidden_copies: dict[str, str] = {}    # copy k > 0 of a run -> its first copy
        self.run_labels: dict[str, str] = {}       # first copy of a run -> "trunk ×12 (Kind)"

    # -- structure ----------------------------------------------------------------------
    def subtree(self, name: str) -> list[LayerRecord]:
        """The records under `name`, in source order (not including it)."""
        if name not in self._subtrees:             # asked for again and again: remember it
            out: list[LayerRecord] = []
            for kid in self.kids.get(name, []):
                out.append(kid)
                out.extend(self.subtree(kid.name))
            self._subtrees[name] = out
        return self._subtrees[name]

    def params(self, record: LayerRecord) -> int:
        return record.params + sum(r.params for r in self.subtree(record.name))

    def ancestors(self, name: str) -> list[str]:
        chain, record = [], self.by_name.get(name)
        while record is not None and record.parent in self.by_name:
            chain.append(record.parent)
            record = self.by_name[record.parent]
        return chain

    def canon(self, name: str) -> str:
        """The drawn record standing for `name`: first copy of its run, or the collapsed box."""
        seen = 0
        while name in self.alias and seen < 64:
            name, seen = self.alias[name], seen + 1
        return self.collapsed_into.get(name, name)

    def kid_of(self, name: str, block: str) -> str | None:
        """The direct child of `block` that contains (or is) `name`."""
        record = self.by_name.get(name)
        while record is not None:
            if record.parent == block:
                return record.name
            record = self.by_name.get(record.parent) if record.parent else None
        return None

    # -- runs ---------------------------------------------------------------------------
    def runs(self, siblings: list[LayerRecord]) -> list[list[LayerRecord]]:
        """Split siblings into runs that draw as one: repeat copies, identical chained blocks."""
        runs: list[list[LayerRecord]] = []
        for record in siblings:
            last = runs[-1][-1] if runs else None
            if last is not None and not self.expand and self.continues(runs[-1], record):
                runs[-1].append(record)
            else:
                runs.append([record])
        return runs

    def continues(self, run: list[LayerRecord], record: LayerRecord) -> bool:
        last = run[-1]
        if last.repeat and record.repeat:
            return record.repeat[0] == last.repeat[0] and record.repeat[1] == last.repeat[1] + 1
        if last.repeat or record.repeat or not self.kids.get(record.name):
            return False
        if record.kind != last.kind or record.args != last.args or record.shared_with:
            return False
        if self.signature(record) != self.signature(last):
            return False
        # Only a chain collapses: parallel identical branches must stay visible, and so must a
        # block whose output is also read by something other than the next block.
        previous = {last.name} | {r.name for r in self.subtree(last.name)}
        following = {record.name} | {r.name for r in self.subtree(record.name)}
        if any(c not in previous | following for name in previous
               for c in self.consumers.get(name, ())):
            return False
        return any(i in previous for r in [record, *self.subtree(record.name)] for i in r.inputs)

    def signature(self, record: LayerRecord) -> list[tuple]:
        return [(r.kind, sorted(r.args.items()), r.name[len(record.name):])
                for r in self.subtree(record.name)]

    # -- placing ------------------------------------------------------------------------
    def place(self, group: Group, siblings: list[LayerRecord], level: int,
              loop: str | None = None) -> None:
        # A loop's body records are placed inside its cluster, when their scan is placed.
        siblings = [r for r in siblings if self.loops.member_of.get(r.name) == loop]
        for run in self.runs(siblings):
            first = run[0]
            if len(run) > 1:
                number = len(self.copy_of)
                first_tree = [first, *self.subtree(first.name)]
                for index, copy in enumerate(run):
                    tree = [copy, *self.subtree(copy.name)]
                    for record, counterpart in zip(tree, first_tree):
                        self.copy_of[record.name] = (number, index)
                        if index:
                            self.alias[record.name] = counterpart.name
                    if index:
                        self.hidden_copies[copy.name] = first.name
                self.run_labels[first.name] = f"{_run_name(run)} ×{len(run)} ({first.kind})"
            self.place_one(group, first, run, level)

    def place_one(self, group: Group, record: LayerRecord, run: list[LayerRecord],
                  level: int) -> None:
        self.placed.add(record.name)
        count = len(run)
        file_line, url = location(record.span)
        tooltip = f"{file_line} — {record.kind} {record.name}" if file_line else \
            f"{record.kind} {record.name}"
        if self.kids.get(record.name) and (self.depth is None or level <= self.depth):
            if count > 1:
                label = self.run_labels[record.name]
            else:
                label = f"{record.short_name} ({record.kind})"
            cluster = Group(f"cluster_{record.name}", label, "repeat" if count > 1 else "block",
                            note=style.params_text(self.params(record), count),
                            tooltip=tooltip, url=url)
            self.clusters[record.name] = cluster.id
            self.place(cluster, self.kids[record.name], level + 1)
            group.groups.append(cluster)
            return
        for inner in self.subtree(record.name):
            self.collapsed_into[inner.name] = record.name
        box = self.box(record, count, tooltip, url)
        if record.name in self.loops.members:
            parts = self.loops.parts.get(record.name)
            cluster = loop_group(f"cluster_loop_{record.name}", parts, tooltip, url)
            if parts is not None:
                cluster.boxes += input_boxes(parts, self.loops.box_id(record.name))
            self.place(cluster, self.loops.members[record.name], level + 1, loop=record.name)
            box.details = output_details(parts)
            group.groups.append(cluster)
            group = cluster                 # the scan's own box: the loop's outputs, inside it
        self.boxes.add(record.name)
        group.boxes.append(box)

    def box(self, record: LayerRecord, count: int, tooltip: str, url: str | None) -> Box:
        category = style.layer_category(record.kind, record.category)
        box = Box(record.name, record.kind, category, subtitle=record.short_name,
                  shape=_types(record), tooltip=tooltip, url=url,
                  badge=f"×{count}" if count > 1 else None)
        if record.category in ("input", "output"):
            box.title, box.subtitle = record.short_name, record.category
            return box
        inner = self.subtree(record.name)
        if inner:
            box.category = "block" if category in ("layer", "function") else category
            box.emphasis = True
        box.details = _args(record)
        total = self.params(record)
        if total:
            box.details.append(style.params_text(total, count))
        if inner:
            box.details.append(f"{sum(1 for r in inner if not self.kids.get(r.name))} layers inside")
        if record.shared_with:
            box.details.append(f"shares weights with {record.shared_with}")
        return box

    # -- edges --------------------------------------------------------------------------
    def exits(self, name: str) -> list[str]:
        """The boxes that values of `name` come out of."""
        drawn = self.canon(name)
        if drawn in self.boxes:
            return [drawn]
        return self.ends(drawn, outgoing=True) if drawn in self.clusters else []

    def ends(self, block: str, outgoing: bool) -> list[str]:
        """The boxes where values leave (outgoing) or enter a drawn block."""
        kids = [k.name for k in self.kids.get(block, [])
                if k.name in self.placed and k.name not in self.loops.member_of]
        if not kids:
            return []
        linked: set[str] = set()           # kids fed by a sibling / kids feeding a sibling
        for record in self.subtree(block):
            consumer = self.kid_of(self.canon(record.name), block)
            for name in record.inputs:
                producer = self.kid_of(self.canon(name), block)
                if producer and consumer and producer != consumer:
                    linked.add(producer if outgoing else consumer)
        chosen = [k for k in kids if k not in linked] or [kids[-1] if outgoing else kids[0]]
        boxes: list[str] = []
        for kid in chosen:
            if kid in self.clusters:
                boxes.extend(self.ends(kid, outgoing))
            elif kid in self.boxes:
                boxes.append(kid)
        return boxes

    def sources(self, name: str, consumer: str) -> list[tuple[str, str | None, str]]:
        """(box, shape label, producing record) for an input `name` of `consumer`."""
        ancestors = self.ancestors(consumer)
        block = name if name in ancestors else next(
            (a for a in ancestors if name.startswith(a + ".") and name not in self.by_name), None)
        if block is not None:
            # The consumer reads its enclosing block's input: draw from what feeds the block.
            outer = self.by_name[block]
            return [s for i in outer.inputs for s in self.sources(i, block)]
        record = self.by_name.get(name)
        if record is None:
            return []
        return [(box, _types(record), name) for box in self.exits(name)]

    def links(self) -> list[Link]:
        links: dict[tuple[str, str], Link] = {}

        def add(source: str, target: str, **kwargs) -> None:
            if source != target and (source, target) not in links:
                links[(source, target)] = Link(source, target, **kwargs)

        for record in self.arch.records:
            target = self.canon(record.name)
            if target in self.clusters:
                if self.fed_from_inside(record):
                    continue
                heads = self.ends(target, outgoing=False)
            elif record.name in self.loops.parts:
                continue                    # its inputs feed the loop's input boxes
            elif target in self.boxes:
                heads = [target]
            else:
                continue
            for name in record.inputs:
                for source, label, origin in self.sources(name, record.name):
                    for head in heads:
                        if self.crosses_copies(origin, record.name):
                            add(source, head, kind="repeat", tooltip="next copy")
                        else:
                            add(source, head, label=label,
                                tooltip=f"{name} → {record.name}: {label or ''}")
            if record.shared_with and self.canon(record.shared_with) in self.boxes:
                add(self.canon(record.shared_with), target, kind="shared",
                    tooltip=f"{record.name} shares weights with {record.shared_with}")
        for link in (link for scan in self.loops.parts for link in layer_loop_links(self, scan)):
            links.setdefault((link.source, link.target), link)   # copies share their edges
        return list(links.values())

    def fed_from_inside(self, block: LayerRecord) -> bool:
        """Whether the block's children name its inputs themselves (then the block adds none)."""
        inside = {r.name for r in self.subtree(block.name)}
        return any(i not in inside for r in self.subtree(block.name) for i in r.inputs)

    def crosses_copies(self, source: str, target: str) -> bool:
        a, b = self.copy_of.get(source), self.copy_of.get(target)
        return a is not None and b is not None and a[0] == b[0] and a[1] != b[1]

    def diagram(self, rankdir: str) -> Diagram:
        root = Group("root", self.arch.model)
        self.place(root, self.kids.get(None, []), 1)
        title = f"{self.arch.model} · {style.format_count(self.arch.total_params)} parameters"
        diagram = Diagram(self.arch.model, root, self.links(), title=title, rankdir=rankdir)
        clip_at_clusters(diagram)
        return diagram
