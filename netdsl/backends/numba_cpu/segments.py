"""Repeated runs of kernel groups become one shared njit function ("segment"), compiled once.

Numba's compile time grows with the size of a function, and the step driver of a deep model is
long: twelve identical residual blocks are twelve copies of the same kernel calls, each inlined
and optimised again by LLVM.  Here the driver's kernel groups are compared after renaming: the
arrays and dims a run of groups reads become positional parameters (`a0, a1, ...` in order of
first use), its own locals `l0, l1, ...`, and integer literals passed to library kernels (a
dropout mask's seed) parameters too; those equal at every repeat (a mode argument) go back in
as literals.  Where the same canonical run repeats back to back (a
tandem repeat: block 1, block 2, ... of a `repeat`, their gradients, their optimiser updates),
the run becomes one function and each occurrence a call to it.  A call costs a few hundred
nanoseconds; a run that occurs once stays inlined.
"""
from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass

# Fewest lines in a shared run (a run of one call line gains nothing from a function around
# it), and fewest driver lines it must save: a function costs ~0.2-0.4 s of compile itself.
MIN_LINES = 4
MIN_SAVED = 8
# Driver arguments indexed by integer literals that differ per occurrence: the arena slots'
# offsets and the parameters' address table (param_table.py).
_TABLES = ("offsets", "params")


@dataclass
class Canonical:
    """A run of groups with its names abstracted: the text, and what each parameter is bound
    to at this occurrence (driver names and lifted literals, in parameter order)."""

    text: str
    arguments: list[str]
    constants: frozenset[int] = frozenset()   # positions of lifted library-kernel literals


def canonical(lines: list[str], module_names: set[str]) -> Canonical | None:
    """The canonical form of a run of driver lines, or None when the run cannot stand alone
    (a name it assigns is one it also reads first, i.e. it is not local to the run)."""
    tree = ast.parse("\n".join(lines))
    stored = {node.id for node in ast.walk(tree)
              if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    renamer = _Renamer(stored, module_names)
    tree = renamer.visit(tree)
    if renamer.conflict:
        return None
    return Canonical(ast.unparse(tree), renamer.arguments, frozenset(renamer.constants))


class _Renamer(ast.NodeTransformer):
    def __init__(self, stored: set[str], module_names: set[str]):
        self.stored, self.module_names = stored, module_names
        self.params: dict[str, str] = {}
        self.locals: dict[str, str] = {}
        self.arguments: list[str] = []
        self.constants: set[int] = set()
        self.conflict = False

    def visit_Name(self, node: ast.Name) -> ast.Name:
        name = node.id
        if name in self.module_names:
            return node
        if name in self.stored:
            if isinstance(node.ctx, ast.Load) and name not in self.locals:
                self.conflict = True                 # read before the run assigns it
            local = self.locals.setdefault(name, f"l{len(self.locals)}")
            return ast.copy_location(ast.Name(local, node.ctx), node)
        if name not in self.params:
            self.params[name] = f"a{len(self.params)}"
            self.arguments.append(name)
        return ast.copy_location(ast.Name(self.params[name], node.ctx), node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.Subscript:
        slot = isinstance(node.value, ast.Name) and node.value.id in _TABLES and \
            isinstance(node.slice, ast.Constant) and type(node.slice.value) is int
        self.generic_visit(node)
        if slot:
            node.slice = self._lift(node.slice)   # a buffer's slot, a parameter's index
        return node

    def _lift(self, constant: ast.Constant) -> ast.Name:
        """An integer literal as a parameter of the run (bound per occurrence)."""
        name = f"a{len(self.params)}"
        self.params[f"#{len(self.params)}"] = name
        # np.int64(): a bare literal would make Numba compile the shared function once per
        # value (a literal type per call site)
        self.arguments.append(f"np.int64({constant.value!r})")
        return ast.copy_location(ast.Name(name, ast.Load()), constant)

    def visit_Call(self, node: ast.Call) -> ast.Call:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in self.module_names:
            # Why only here: a literal passed to a library kernel is typed int64 either way,
            # while one inside a loop nest may be a trip count LLVM unrolls.
            for k, argument in enumerate(node.args):
                if isinstance(argument, ast.Constant) and type(argument.value) is int:
                    self.constants.add(len(self.arguments))
                    node.args[k] = self._lift(argument)
        return node


def share_repeats(groups: list[list[str]], module_names: set[str], define,
                  carves: dict[str, str]) -> list[str]:
    """The driver lines for `groups` (one list of lines per kernel group), where back-to-back
    repeats of a run of groups call one function.  `define(text, n_params)`, called once per
    call, adds the function for a canonical run to the module (once) and returns its name.
    A run makes the buffers it names itself from `carves` (buffer name ->
    `v_3 = _unowned_view(arena_f32, offsets[7], (d_0, 64))`): the driver then passes a slot number,
    not an array (cheaper to compile and call)."""
    def carved(lines: list[str]) -> list[str]:
        names = dict.fromkeys(re.findall(r"[A-Za-z_]\w*", "\n".join(lines)))
        return [carves[name] for name in names if name in carves] + lines

    # canonical is a pure function of the lines: a run of one group, or the same run met
    # again, is not parsed again (deep_residual's warm compile parsed 589 texts, 179 of them
    # once more).
    known: dict[tuple[str, ...], Canonical | None] = {}

    def canonical_of(lines: list[str]) -> Canonical | None:
        key = tuple(lines)
        if key not in known:
            known[key] = canonical(lines, module_names)
        return known[key]

    # Only a group whose skeleton another group shares can repeat (equal canonical forms have
    # equal skeletons): the others are not parsed (XOR's 14 groups took 35 of its 77 ms of
    # code generation in a warm compile).
    texts = [carved(lines) for lines in groups]
    skeletons = [_skeleton(lines) for lines in texts]
    seen = Counter(skeletons)
    single = [canonical_of(lines) if seen[skeleton] > 1 else None
              for lines, skeleton in zip(texts, skeletons)]
    keys = [c.text if c is not None else f"#{k}" for k, c in enumerate(single)]
    n, result, i = len(groups), [], 0
    while i < n:
        found = _tandem(keys, i)
        if found is not None:
            length, count = found
            runs = [carved(sum(groups[i + r * length:i + (r + 1) * length], []))
                    for r in range(count)]
            forms = [canonical_of(run) for run in runs]
            same = 1
            while same < count and forms[same] is not None and forms[0] is not None and \
                    forms[same].text == forms[0].text:
                same += 1
            size = _code_lines(sum(groups[i:i + length], []))      # without its carves
            if same > 1 and size >= MIN_LINES and (same - 1) * size >= MIN_SAVED:
                text, keep = _specialise(forms[:same])
                for form in forms[:same]:
                    name = define(text, len(keep))
                    result.append(f"{name}({', '.join(form.arguments[k] for k in keep)})")
                i += same * length
                continue
        result.extend(groups[i])
        i += 1
    return result


def _specialise(forms: list[Canonical]) -> tuple[str, list[int]]:
    """The shared text with the lifted library-kernel literals that are the same at every
    occurrence put back as literals (a mode argument, which LLVM then folds), and the positions
    of the parameters that remain.  Slot numbers stay parameters even where every repeat
    shares one: which slot that is depends on the rest of the model (a 3-block net against a
    4-block one), and the text must not, for a segment to be shared across models (its
    module's name is its content hash); a slot read costs nothing to speak of."""
    fixed = {k: argument for k, argument in enumerate(forms[0].arguments)
             if k in forms[0].constants and
             all(form.arguments[k] == argument for form in forms)}
    keep = [k for k in range(len(forms[0].arguments)) if k not in fixed]
    if not fixed:
        return forms[0].text, keep
    renamed = {f"a{k}": f"a{position}" for position, k in enumerate(keep)}
    constants = {f"a{k}": int(argument[len("np.int64("):-1]) for k, argument in fixed.items()}

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name):
            if node.id in constants:
                return ast.copy_location(ast.Constant(constants[node.id]), node)
            return ast.copy_location(ast.Name(renamed.get(node.id, node.id), node.ctx), node)

    return ast.unparse(Substitute().visit(ast.parse(forms[0].text))), keep


_WORD = re.compile(r"[A-Za-z_]\w*|\d+")
_COMMENT_OR_SPACE = re.compile(r"#[^\n]*|\s+")


def _skeleton(lines: list[str]) -> str:
    """The lines without comments and white space, every name and number one placeholder:
    what two runs with one canonical form (the same statements up to names and numbers)
    have in common.  Generated code writes a statement the same way wherever it writes it,
    so no two runs of one canonical form differ in their skeletons."""
    return _WORD.sub("_", _COMMENT_OR_SPACE.sub("", "\n".join(lines)))


def _code_lines(lines: list[str]) -> int:
    return sum(1 for line in lines if not line.lstrip().startswith("#"))


def _tandem(keys: list[str], start: int) -> tuple[int, int] | None:
    """The (length, count) of the back-to-back repeat starting at `start` that covers the most
    groups (ties: the shorter period, whose function is smaller to compile), or None."""
    n, best = len(keys), None
    for length in range(1, (n - start) // 2 + 1):
        if keys[start] != keys[start + length] or \
                keys[start:start + length] != keys[start + length:start + 2 * length]:
            continue
        count = 2
        while keys[start:start + length] == keys[start + count * length:
                                                 start + (count + 1) * length]:
            count += 1
        if best is None or length * count > best[0] * best[1]:
            best = (length, count)
    return best


__all__ = ["MIN_LINES", "canonical", "share_repeats"]
