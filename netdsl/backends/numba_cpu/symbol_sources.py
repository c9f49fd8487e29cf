"""Where a generated function finds the value of each symbolic dimension at run time: an
expression over its arguments' shapes (`in_0.shape[0]`), read once at the top of the function
(function.FunctionWriter.dim writes dims in terms of them).

A symbol that is some argument's whole extent is read straight from it.  One that appears only
inside a larger dim (4*T, B*T, B + 1: a scan body capturing reshape(x, [B, 4*T]), or passing
an input of [B + 1] through) is solved from that extent once the dim's other symbols are
known, as often as another symbol becomes known.  A product of symbols that is an extent
itself (B*T) is read whole where its symbols are not all known (`product_sources`).
"""
from __future__ import annotations

from ...ir.graph import Graph
from ...ir.types import Sym


def _arguments(graph: Graph) -> list[tuple[str, object]]:
    """(argument name, value) of every input and parameter, in the function's order."""
    return [(f"in_{i}", v) for i, v in enumerate(graph.inputs)] + \
        [(f"p_{i}", p.value) for i, p in enumerate(graph.params)]


def symbol_sources(graph: Graph) -> dict[str, str]:
    """symbol -> source reading it from an argument's shape (`in_0.shape[0]`)."""
    found: dict[str, str] = {}
    sources = _arguments(graph)
    for arg, value in sources:
        for axis, d in enumerate(value.shape):
            if isinstance(d, Sym) and d.is_single_symbol and d.name not in found:
                found[d.name] = f"{arg}.shape[{axis}]"
    # Take the other terms from the extent and divide by the known factors.
    solved = True
    while solved:
        solved = False
        for arg, value in sources:
            for axis, d in enumerate(value.shape):
                if isinstance(d, Sym) and (solution := _solve(d, found)) is not None:
                    name, (rest, factors) = solution
                    extent = f"{arg}.shape[{axis}]" + (f" - ({rest})" if rest else "")
                    found[name] = f"(({extent}) // ({factors}))"
                    solved = True
    return found


def product_sources(graph: Graph, found: dict[str, str]) -> dict[tuple[str, ...], str]:
    """monomial -> source reading it whole, for each product of symbols (B*T) that is some
    argument's extent, or a multiple's (2*B*T), and whose symbols are not all in `found`.

    A scan body that reads only [B*T, ...] arrays cannot tell B from T, yet its buffers may
    need 2*B*T elements: it reads B*T as one number (differential-tester finding 88076)."""
    products: dict[tuple[str, ...], str] = {}
    for arg, value in _arguments(graph):
        for axis, d in enumerate(value.shape):
            if not isinstance(d, Sym) or len(d.terms) != 1:
                continue
            monomial, coefficient = d.terms[0]
            if len(monomial) >= 2 and coefficient > 0 and monomial not in products and \
                    any(name not in found for name in monomial):
                extent = f"{arg}.shape[{axis}]"
                products[monomial] = extent if coefficient == 1 else \
                    f"({extent} // {coefficient})"
    return products


def _solve(d: Sym, found: dict[str, str]) -> tuple[str, tuple[str, str]] | None:
    """(symbol, (source of the other terms, source of its factors)) where exactly one
    symbol of `d` is not in `found` and it appears in one term, once: the extent is
    rest + factors * symbol."""
    unknown = {n for monomial, _ in d.terms for n in monomial if n not in found}
    if len(unknown) != 1:
        return None
    name = unknown.pop()
    holding = [(monomial, coefficient) for monomial, coefficient in d.terms if name in monomial]
    if len(holding) != 1 or holding[0][0].count(name) != 1:
        return None
    monomial, coefficient = holding[0]
    factors = " * ".join([str(coefficient)] + [f"({found[n]})" for n in monomial if n != name])
    rest = " + ".join(" * ".join([str(c)] + [f"({found[n]})" for n in m])
                      for m, c in d.terms if name not in m)
    return name, (rest, factors)


__all__ = ["product_sources", "symbol_sources"]
