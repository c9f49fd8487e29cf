"""The op registry: every primitive's rules, declared together in one class per op.

    @op("matmul")
    class MatMul:
        \"\"\"Batched matrix product with NumPy's matmul broadcasting.\"\"\"
        traits = {"matmul"}
        def infer(a, b): ...                      # TensorTypes (+ attrs) -> TensorType | tuple
        def reference(a, b): ...                  # NumPy arrays (+ attrs) -> ndarray | tuple
        def vjp(b, grads, inputs, outputs): ...   # graph -> graph: one Value|None per input
        def examples(): ...                       # sample (input types, attrs) for the registry test

Rules (all plain functions written without `self`; the decorator reads them off the class):

* `infer(*types, **attrs)` returns the output TensorType (or a tuple for several outputs) or raises
  `ShapeError` naming both shapes; the builder attaches the source span.
* `reference(*arrays, **attrs)` is the NumPy oracle every backend is tested against.
* `vjp(b, grads, inputs, outputs, **attrs)`: `b` is a GraphBuilder, `grads` one Value or None per
  output (None: no gradient reaches it), `inputs`/`outputs` the node's Values.  Returns one Value
  (same type as the input) or None per input.  Never numbers: gradients are more graph.
  Ops with integer/boolean results or no gradient set `vjp = None` and traits {"no_grad"}.
  A control op's gradient differentiates its body, so a pass supplies it (`gradient_rule`).
* A control op's `reference` also receives `run_body(graph, arrays) -> list of output arrays`
  from the interpreter that calls it, so that ops need no backend to run a body subgraph.
* Elementwise ops set `kernel`, a scalar template over `{0}`, `{1}`, ... and attribute names
  (`"max({0}, 0.0)"`, `"({0} if {0} > 0 else {alpha} * {0})"`): the fusion pass concatenates
  templates into one loop nest, so no target needs a lowering for them.
* Ops hold no target code.  Each target lowers the other ops in its own package, registered per
  op name (the CPU's in backends/numba_cpu/lowerings/, `@lowering("matmul")`); the registry
  test checks that every op is lowered or explicitly exempted on every target.
* Reductions the loop IR can fuse set `reduction = ReductionRule(...)`: the accumulator's start
  value per dtype, a scalar template folding the next value into it, and an optional finishing
  template (mean divides by the count), so no backend keeps a table of reductions by name.
* Ops that are not elementwise but that loop nests may still fuse as a scalar expression set
  `fusion_kernel = (template, data inputs)`: broadcast_to and cast `("{0}", (0,))` (a load of
  input 0), full `("{value}", ())`; their other inputs are read for their shape only.
* `shape_inputs = (positions...)`: the inputs the op reads for their shape only, never their
  values (broadcast_to's and full's `like`, numel's input).  The memory planner does not keep a
  value's buffer alive for such a read (a mean's gradient reads the mean's input for its shape
  after the whole forward pass), so every target's lowering must honour it; the registry test
  checks that the reference and the cpu lowering do (other values there, the same result).
* Ops whose output is a box of input 0 at unit steps (slice) give `window(input type, **attrs)`:
  the box's start per axis (ints), or None where this node is not such a box.  A target that
  asks for it (`fuse(graph, windows=True)`) fuses the node into loop nests as a load of input 0
  at those offsets, so the box is never copied out.  Ops whose output is their inputs laid
  side by side (concat) give `tiles(*input types, **attrs)`: each input's start in the output
  per axis, or None; such a node joins the loop nest that makes all its inputs as stores at
  those offsets.
* Ops whose nodes may merge although their attributes differ, or that can drop unused outputs
  and inputs, give the rules CSE and DCE apply (scan does; other ops need neither):
  `merge_key(attrs)` -- nodes of the op on the same inputs with equal keys compute one thing, the
  one with most outputs serving the others; `widen(attrs)` -- the attributes that give a merged
  node every output; `prune(node, needed, memo) -> Pruning | None` -- the node cut down to the
  output indices `needed` (`memo` lets nodes that CSE would merge share their pruned parts).
* traits: "elementwise", "reduction", "shape" (pure data movement), "matmul", "conv",
  "random", "control" (has a body subgraph), "no_grad", "view" (the output is the input's
  memory under another shape: fusion aliases it, no copy), "constant" (a compile-time tensor in
  its attribute `value`).  Fusion anchors loop-nest epilogues on "matmul" and "conv" ops.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import did_you_mean


@dataclass(frozen=True)
class ReductionRule:
    """How a loop reduction accumulates, written as scalar templates like `kernel`.

    `identity(dtype)` is the accumulator's start value (a Python number) for a `DType`;
    `combine` folds the next value `{1}` into the accumulator `{0}`; `finish`, when set, turns the
    accumulated value `{0}` into the result, where `{count}` is the number of reduced elements.
    """

    identity: Callable[[Any], float | int]
    combine: str
    finish: str | None = None


@dataclass
class Pruning:
    """What dead-code elimination keeps of a node: the indices of its kept inputs, its new
    attributes, and old output index -> new output index for the kept outputs."""

    inputs: list[int]
    attrs: dict
    outputs: dict[int, int]


@dataclass(eq=False)
class OpDef:
    """A primitive op and everything about it."""

    name: str
    infer: Callable[..., Any]
    reference: Callable[..., Any]
    vjp: Callable[..., Any] | None = None
    kernel: str | None = None
    examples: Callable[[], list] | None = None
    reduction: ReductionRule | None = None
    fusion_kernel: tuple[str, tuple[int, ...]] | None = None
    shape_inputs: tuple[int, ...] = ()
    window: Callable[..., tuple[int, ...] | None] | None = None
    tiles: Callable[..., list[tuple[int, ...]] | None] | None = None
    merge_key: Callable[[dict], tuple] | None = None
    widen: Callable[[dict], dict] | None = None
    prune: Callable[..., Pruning | None] | None = None
    traits: frozenset[str] = field(default_factory=frozenset)
    doc: str = ""
    # The op family: the netdsl/ops/ module that defines it, which names the module of each
    # target's lowerings of it (a target loads only the families a graph uses).
    family: str = ""

    def has(self, trait: str) -> bool:
        return trait in self.traits

    @property
    def is_elementwise(self) -> bool:
        return "elementwise" in self.traits

    def __repr__(self) -> str:
        return f"<op {self.name}>"


_REGISTRY: dict[str, OpDef] = {}


def op(name: str) -> Callable[[type], OpDef]:
    """Class decorator: register the class's rules as the primitive `name`."""

    def register(cls: type) -> OpDef:
        if name in _REGISTRY:
            raise ValueError(f"op {name!r} is registered twice")
        members = vars(cls)

        def rule(attribute: str):
            value = members.get(attribute)
            return value.__func__ if isinstance(value, staticmethod) else value

        if rule("infer") is None or rule("reference") is None:
            raise ValueError(f"op {name!r} needs at least infer and reference")
        definition = OpDef(
            name=name,
            infer=rule("infer"),
            reference=rule("reference"),
            vjp=rule("vjp"),
            kernel=members.get("kernel"),
            examples=rule("examples"),
            reduction=members.get("reduction"),
            fusion_kernel=members.get("fusion_kernel"),
            shape_inputs=tuple(members.get("shape_inputs", ())),
            window=rule("window"),
            tiles=rule("tiles"),
            merge_key=rule("merge_key"),
            widen=rule("widen"),
            prune=rule("prune"),
            traits=frozenset(members.get("traits", ())),
            doc=(cls.__doc__ or "").strip(),
            family=cls.__module__.rsplit(".", 1)[-1],
        )
        _REGISTRY[name] = definition
        return definition

    return register


def gradient_rule(name: str) -> Callable[[Callable], Callable]:
    """Decorator: install the function as the `vjp` of op `name`, for an op whose gradient is
    built by a pass (scan's differentiates its body: passes/scan_grad.py)."""

    def register(rule: Callable) -> Callable:
        definition = get_op(name)
        if definition.vjp is not None:
            raise ValueError(f"op {name!r} already has a vjp rule")
        definition.vjp = rule
        return rule

    return register


def get_op(name: str) -> OpDef:
    """The registered op called `name` (internal error if missing: ops are not user-named)."""
    _load_op_modules()
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = did_you_mean(name, _REGISTRY)
        raise KeyError(f"no primitive op {name!r}" + (f"; {hint}" if hint else "")) from None


def all_ops() -> dict[str, OpDef]:
    """Every registered op, by name (loads all op modules first)."""
    _load_op_modules()
    return dict(_REGISTRY)


_loaded = False


def _load_op_modules() -> None:
    """Import every op family module once, so their @op classes register themselves."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    from .. import ops as package
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in ("registry", "__init__") and not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
