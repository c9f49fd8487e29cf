"""The random program generator: well-typed `.net` models grown one statement at a time.

In the manner of NNSmith (Liu et al., ASPLOS 2023): a model starts from a few inputs and
grows by applying entries of a light-weight op menu (menu.py) to values already in scope.
Every entry asks the op registry's own shape rule (`OpDef.infer`) whether its operands and
attributes are valid and what type results, so the generator and the compiler agree on what a
well-typed program is.  Values are picked with a bias to recent ones (deep chains) but older
ones come back (fan-out: one value feeding several kernels, read through several views).
Shapes are concrete small numbers, 1s included, and the symbolic dims `B` and `T` whose
run-time values the program's `bindings` give.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..ir.types import DType, ShapeError, Sym, TensorType
from ..ops.registry import get_op
from .program import Loss, Program, Stmt, Var, dim_text

SYMBOLS = ("B", "T")
SMALL_DIMS = (1, 1, 2, 2, 3, 3, 4, 5, 6, 8)
MAX_ELEMENTS = 4096          # per tensor at the program's bindings: the reference stays fast


@dataclass
class Config:
    """Knobs of one generated program."""

    statements: int = 12          # menu applications attempted
    max_rank: int = 4
    weights: dict | None = None   # menu entry -> weight override (0 disables an entry)


class Generator:
    """Grows one program (or, with `parent`, one scan body inside it)."""

    def __init__(self, rng: np.random.Generator, program: Program, config: Config,
                 parent: "Generator | None" = None):
        self.rng, self.program, self.config, self.parent = rng, program, config, parent
        self.pool: list[Var] = []                 # values usable here, in creation order
        self.body: list[str] = []                 # a scan body's lines (parent is not None)
        self.stmts: list[Stmt] = program.stmts if parent is None else []

    # -- names and dims -------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        counter = self.program.__dict__.setdefault("_counter", {})
        counter[prefix] = counter.get(prefix, 0) + 1
        return f"{prefix}{counter[prefix]}"

    def size(self, shape: Sequence) -> int:
        total = 1
        for d in shape:
            total *= d if isinstance(d, int) else _evaluate(d, self.program.bindings)
        return total

    def random_dim(self, symbolic: float = 0.3):
        if self.rng.random() < symbolic:
            return Sym.named(SYMBOLS[int(self.rng.integers(len(SYMBOLS)))])
        return int(self.rng.choice(SMALL_DIMS))

    def random_shape(self, rank: int, batch: bool = True) -> tuple:
        shape = [Sym.named("B")] if batch and rank > 0 else []
        while len(shape) < rank:
            shape.append(Sym.named("T") if self.rng.random() < 0.2 else
                         int(self.rng.choice(SMALL_DIMS)))
        while self.size(shape) > MAX_ELEMENTS // 4:
            shape = [d if not isinstance(d, int) or d <= 2 else d // 2 for d in shape]
        return tuple(shape)

    # -- the registry's shape rules -------------------------------------------------------
    @staticmethod
    def infer(op_name: str, *types: TensorType, **attrs) -> TensorType | None:
        """The type `op_name` gives these operand types, or None where its rule refuses."""
        try:
            result = get_op(op_name).infer(*types, **attrs)
        except (ShapeError, ValueError, TypeError, IndexError):
            return None
        return result if isinstance(result, TensorType) else None

    def fits(self, type_: TensorType | None) -> bool:
        return type_ is not None and 0 < self.size(type_.shape) <= MAX_ELEMENTS and \
            len(type_.shape) <= self.config.max_rank + 1

    # -- picking values -------------------------------------------------------------------
    def candidates(self, predicate: Callable[[Var], bool]) -> list[Var]:
        pool = self.pool + (self.parent.pool if self.parent else [])
        return [v for v in pool if predicate(v)]

    def pick(self, predicate: Callable[[Var], bool] = lambda v: True) -> Var | None:
        """A value satisfying `predicate`; recent values are likelier (deep chains)."""
        found = self.candidates(predicate)
        if not found:
            return None
        weights = np.array([1.0 + 3.0 * (k + 1) / len(found) for k in range(len(found))])
        return found[int(self.rng.choice(len(found), p=weights / weights.sum()))]

    def pick_float(self, predicate: Callable[[Var], bool] = lambda v: True) -> Var | None:
        return self.pick(lambda v: v.dtype.is_float and predicate(v))

    # -- making values --------------------------------------------------------------------
    def emit(self, expr: str, type_: TensorType, lo: float, hi: float,
             reads: Sequence[Var], tag: str, alternatives=()) -> Var:
        """A statement `name = expr` in scope; returns its value."""
        lo, hi = float(min(lo, hi)), float(max(lo, hi))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo, hi = -1e30, 1e30
        var = Var(self.fresh("t"), type_, lo, hi)
        self.program.values[var.name] = var
        self.pool.append(var)
        self.program.tags.append(tag)
        names = tuple(dict.fromkeys(v.name for v in reads))
        if self.parent is not None:
            self.body.append(f"{var.name} = {expr}")
        else:
            alts = tuple((a.name, (a.name,)) for a in dict.fromkeys(alternatives)
                         if a.type == type_ and a.name in names)
            self.stmts.append(Stmt((var.name,), expr, names, alternatives=alts, tag=tag))
        return var

    def new_param(self, shape: tuple, scale: float = 0.5, init: str | None = None) -> Var:
        """A raw trainable `param` at model level (scan bodies capture it)."""
        top = self.top()
        init = init or f"uniform({-scale}, {scale})"
        lo, hi = (-scale, scale) if init.startswith("uniform") else (-4 * scale, 4 * scale)
        var = Var(top.fresh("w"), TensorType(DType.f32, tuple(shape)), lo, hi, kind="param")
        top.program.params.append((var, init))
        top.program.values[var.name] = var
        top.pool.append(var)
        return var

    def new_input(self, type_: TensorType, lo: float = -1.0, hi: float = 1.0,
                  prefix: str = "x") -> Var:
        top = self.top()
        var = Var(top.fresh(prefix), type_, lo, hi, kind="input")
        top.program.inputs.append(var)
        top.program.values[var.name] = var
        if type_.dtype.is_float:
            top.pool.append(var)
        return var

    def top(self) -> "Generator":
        return self if self.parent is None else self.parent.top()

    def partner(self, var: Var) -> Var:
        """A value broadcast-compatible with `var`: an existing one, or a new param/input
        with some of var's dims set to 1 and maybe leading dims dropped."""
        def compatible(v: Var) -> bool:
            return v is not var and v.dtype.is_float and \
                self.fits(self.infer("add", var.type, v.type)) and \
                self.size(self.infer("add", var.type, v.type).shape) <= max(self.size(var.shape), 64)
        if self.rng.random() < 0.55:
            found = self.pick(compatible)
            if found is not None:
                return found
        shape = list(var.shape)
        for k in range(len(shape)):
            if self.rng.random() < 0.4:
                shape[k] = 1
        drop = int(self.rng.integers(0, len(shape) + 1)) if self.rng.random() < 0.4 else 0
        shape = shape[drop:]
        if self.parent is None and any(isinstance(d, Sym) for d in shape) or \
                self.rng.random() < 0.2:
            return self.new_input(TensorType(DType.f32, tuple(shape)))
        return self.new_param(tuple(d if isinstance(d, int) else 1 for d in shape))

    def apply_menu(self, entries) -> bool:
        """Apply one random menu entry (retrying others when one does not fit)."""
        names = [name for name, weight, _ in entries if weight > 0]
        weights = np.array([w for _, w, _ in entries if w > 0], dtype=float)
        for _ in range(8):
            k = int(self.rng.choice(len(names), p=weights / weights.sum()))
            entry = next(e for e in entries if e[0] == names[k])
            if entry[2](self):
                self.program.entries.append(entry[0])
                return True
        return False


def _evaluate(d, bindings) -> int:
    from ..ir.types import evaluate_dim
    return int(evaluate_dim(d, bindings))


def generate(seed: int, config: Config | None = None) -> Program:
    """A random, well-typed model with outputs and a loss that depends on its params."""
    from .menu import LOSSES, MENU, weighted
    config = config or Config()
    rng = np.random.default_rng(seed)
    program = Program(seed=seed)
    program.bindings = {"B": int(rng.choice([1, 2, 3, 4])), "T": int(rng.choice([1, 2, 3]))}
    gen = Generator(rng, program, config)
    for _ in range(int(rng.integers(1, 3))):
        rank = int(rng.choice([1, 2, 2, 3, 3, 4]))
        gen.new_input(TensorType(DType.f32, gen.random_shape(rank)),
                      *sorted(rng.uniform(-2, 2, size=2)))
    if rng.random() < 0.5:
        gen.new_param(tuple(int(rng.choice(SMALL_DIMS)) for _ in range(int(rng.integers(1, 3)))))
    menu = weighted(MENU, config.weights)
    statements = int(rng.integers(max(2, config.statements // 2), config.statements + 1))
    for _ in range(statements):
        gen.apply_menu(menu)
    _choose_outputs(gen, rng)
    losses = weighted(LOSSES, config.weights)
    for _ in range(1 if rng.random() < 0.7 else 2):
        gen.apply_menu(losses)
    if not program.losses:
        _fallback_loss(gen)
    return program.prune()


def _choose_outputs(gen: Generator, rng) -> None:
    """Every unused value, and some used ones, become `out`s."""
    read = {name for s in gen.program.stmts for name in s.reads}
    stmts = gen.program.stmts
    for k, stmt in enumerate(stmts):
        chosen = {t for t in stmt.targets
                  if gen.program.values.get(t) is not None and
                  (t not in read and rng.random() < 0.8 or rng.random() < 0.15)}
        if chosen:
            stmts[k] = Stmt(stmt.targets, stmt.expr, stmt.reads, stmt.body, stmt.alternatives,
                            frozenset(chosen), stmt.tag)
    if stmts and not any(s.outputs for s in stmts):
        last = stmts[-1]
        stmts[-1] = Stmt(last.targets, last.expr, last.reads, last.body, last.alternatives,
                         frozenset(last.targets[:1]), last.tag)


def _fallback_loss(gen: Generator) -> None:
    """mean(square(w)) of a param, so every program has a gradient to check."""
    params = [v for v, _ in gen.program.params] or [gen.new_param((2,))]
    var = params[-1]
    gen.program.losses.append(Loss(f"mean(square({var.name}))", (var.name,), "fallback"))


def shape_list(shape) -> str:
    return "[" + ", ".join(dim_text(d) for d in shape) + "]"


__all__ = ["Config", "Generator", "generate", "shape_list"]
