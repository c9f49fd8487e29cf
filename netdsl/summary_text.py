"""The `netdsl check` summary as text: the table of summary.py's rows, then the totals and each
step's FLOPs and memory, each number saying what it is.

Numbers may be symbolic (a dimension polynomial, ir/types.py): `16.51K·T + 2.10K FLOPs`.
`ascii_only` writes the box-drawing rule, `·`, `×`, `…` and `≈` in ASCII, for a terminal whose
encoding has no such characters (`LC_ALL=C`).
"""
from __future__ import annotations

from typing import Any

from .ir.types import DimLike

_ASCII = str.maketrans({"─": "-", "·": "*", "×": "x", "…": "...", "≈": "~"})
UNICODE_SAMPLE = "─·×…≈"            # every character the summary may print beyond ASCII


def format_count(n: int) -> str:
    return f"{n:,}"


def _scaled(n: int, units, plain: str) -> str:
    for unit, size, digits in units:
        if abs(n) >= size:
            return f"{n / size:.{digits}f}{unit}"
    return f"{n}{plain}"


_FLOP_UNITS = (("G", 1e9, 2), ("M", 1e6, 2), ("K", 1e3, 2))
_BYTE_UNITS = ((" GiB", 1 << 30, 1), (" MiB", 1 << 20, 1), (" KiB", 1 << 10, 1))


def _expression(d: DimLike, coefficient) -> str:
    """A polynomial written term by term, highest degree first: `16.51K·T + 2.10K`."""
    if isinstance(d, int):
        return coefficient(d)
    text = ""
    for index, (monomial, value) in enumerate(d.terms):
        factors = "·".join(monomial)
        number = coefficient(abs(value)) if monomial == () or abs(value) != 1 else ""
        term = f"{number}·{factors}" if number and factors else number or factors
        sign = ("-" if value < 0 else "") if index == 0 else (" - " if value < 0 else " + ")
        text += sign + term
    return text


def format_flops(d: DimLike) -> str:
    """`52.24 KFLOPs`, or an expression: `608·T FLOPs`."""
    if isinstance(d, int):
        scaled = _scaled(d, _FLOP_UNITS, "")
        return f"{scaled[:-1]} {scaled[-1]}FLOPs" if scaled[-1] in "GMK" else f"{d} FLOPs"
    return _expression(d, lambda n: _scaled(n, _FLOP_UNITS, "")) + " FLOPs"


def format_bytes(d: DimLike) -> str:
    """`102.0 KiB`, or an expression: `4.0 KiB·T + 512 B`."""
    return _expression(d, lambda n: _scaled(n, _BYTE_UNITS, " B"))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _table(data: dict[str, Any]) -> list[str]:
    per_example = "FLOPs/example" if data["batch"]["dim"] else "FLOPs"
    rows = [("Layer", "Kind", "Arguments", "Output shape", "Params", per_example)]
    for row in data["rows"]:
        kind = row["kind"] + (f" ×{row['copies']}" if row["copies"] > 1 else "")
        args = ", ".join(f"{k}={v}" for k, v in row["arguments"].items())
        rows.append(("  " * row["depth"] + row["name"], kind, args,
                     ", ".join(row["output_shapes"]),
                     format_count(row["params"]) if row["params"] else "",
                     format_flops(row["flops"]) if row["flops"] else ""))
    return _columns(rows, right={4, 5}, header=True)


def _columns(rows, right=frozenset(), header=False) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row) -> str:
        return "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                         for i, cell in enumerate(row)).rstrip()
    lines = [line(row) for row in rows]
    if header:
        rule = "─" * max(len(text) for text in lines)
        lines = [rule, lines[0], rule, *lines[1:], rule]
    return lines


def _steps(data: dict[str, Any]) -> list[str]:
    skipped = [f"  {kind}: not planned: its graph has at least {nodes:,} nodes (--plan-limit "
               f"{data['plan_limit']}; 0 plans any size)"
               for kind, nodes in data.get("not_planned", {}).items()]
    steps = data.get("steps")
    if not steps:
        return ["One step:", *skipped] if skipped else []
    batch = data["batch"]
    if batch["dim"]:
        origin = {"train section": "the train section's batch; --batch N for another",
                  "default": "the default batch, no train section; --batch N for another"}
        head = f"One step at batch {batch['size']} ({batch['dim']}={batch['size']}, " \
               f"{origin.get(batch['from'], 'from ' + batch['from'])}):"
    else:
        head = "One step (the inputs have no batch dimension):"
    kinds = list(steps)
    training = steps.get("training")

    def cells(key, fmt=format_bytes, only=None):
        return [fmt(steps[k][key]) if only in (None, k) else "-" for k in kinds]

    approx = "" if all(step["exact"] for step in steps.values()) else "≈ "
    optimizers = ", ".join(training["optimizers"]) if training else ""
    each = f" ({training['objectives']} objectives)" \
        if training and training["objectives"] > 1 else ""
    rows = [("", *kinds, ""),
            ("FLOPs", *cells("flops", format_flops),
             f"training: forward, backward, {optimizers} update{each}" if training else ""),
            ("parameters", *cells("parameters"), "weights and running statistics"),
            ("optimiser state", *cells("optimizer", only="training"),
             f"{optimizers}'s slots" if training else ""),
            ("inputs", *cells("inputs"), "one batch"),
            ("constants", *cells("constants"), ""),
            ("arena", *[approx + c for c in cells("arena")],
             "activations, gradients, temporaries; buffers reused"),
            ("total memory", *[approx + c for c in cells("total")], ""),
            ("gradients", *cells("gradients", only="training"),
             "inside the arena, not added again")]
    if not training:                                # rows only a training step has
        rows = [row for row in rows if row[0] not in ("optimiser state", "gradients")]
    lines = [head, *("  " + line for line in _columns(rows, right=set(range(1, len(kinds) + 1))))]
    lines.append("  FLOPs: the step's graph after the passes; a multiply and an add are 2 FLOPs.")
    lines.append("  Memory: the cpu target's memory planner; arena " + ", ".join(
        f"{kind} {_plural(s['buffers'], 'value')} in {_plural(s['slots'], 'buffer')} "
        f"({format_bytes(s['arena_without_reuse'])} one buffer each)"
        for kind, s in steps.items()) + ".")
    if approx:
        lines.append("  ≈: dims left free, so each arena buffer is its largest value, without "
                     "padding; --dim binds them.")
    return lines + skipped


def format_summary(data: dict[str, Any], ascii_only: bool = False) -> str:
    """The summary text of `summary.summary_data`'s result."""
    out = [f"model {data['model']}" + (f"  ({data['source']})" if data["source"] else "")]
    out += _table(data)
    if any(row["copies"] > 1 for row in data["rows"]):
        out.append("×n: n copies (a repeat) in one row, Params and FLOPs of all n; the rows "
                   "under it are the first copy's (--expand shows every copy)")
    params = data["parameters"]
    out.append(f"Parameters:  {format_count(params['total'])} ({format_bytes(params['bytes'])})"
               f"   trainable {format_count(params['trainable'])}"
               f"   non-trainable {format_count(params['non_trainable'])}")
    forward = data["per_example"].get("forward_flops")
    if forward is not None:
        unit = "Per example:" if data["batch"]["dim"] else "Per call:   "
        out.append(f"{unit} forward {format_flops(forward)} (the inference step)")
    out += _steps(data)
    if data["free_dims"]:
        free = ", ".join(data["free_dims"])
        example = data["free_dims"][0]
        out.append(f"Free dims:   {free} (numbers are expressions in them; bind one with "
                   f"--dim {example}=N)")
    if data["dims"]:
        out.append("Bound dims:  " + ", ".join(f"{k}={v}" for k, v in data["dims"].items()))
    named = lambda pairs: ", ".join(f"{name} {what}" for name, what in pairs) or "-"
    out.append(f"Inputs:      {named(data['inputs'])}")
    out.append(f"Outputs:     {named(data['outputs'])}")
    losses = ", ".join(name + (f" (wrt {', '.join(wrt)})" if wrt else "")
                       for name, wrt in data["losses"])
    out.append(f"Losses:      {losses or '-'}")
    text = "\n".join(out)
    return text.translate(_ASCII) if ascii_only else text


__all__ = ["UNICODE_SAMPLE", "format_bytes", "format_count", "format_flops", "format_summary"]
