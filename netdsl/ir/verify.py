"""The IR verifier: checks the invariants every pass may rely on and every pass must keep.

* nodes are in topological order and every node input is defined before it (a graph input, a
  parameter/state, or an output of an earlier node); no value is defined twice;
* each node's outputs point back to it (`producer`, `index`), and re-running the op's `infer` on
  the input types gives exactly the recorded output types;
* outputs, losses and state updates reference defined values; losses are scalars; a state update
  names an existing parameter and has its type;
* Graph-valued attributes (`scan` bodies) are verified recursively.

A failure is a compiler bug, never a user mistake, so it raises `InternalError` (not
`netdsl.Error`) with the offending node printed.
"""
from __future__ import annotations

from .graph import Graph, Value
from .printer import format_node


class InternalError(RuntimeError):
    """A compiler bug: an invariant of the IR was broken by a pass (not the user's fault)."""


def verify(graph: Graph) -> Graph:
    """Raise InternalError listing every broken invariant; returns the graph when it is valid."""
    problems = _problems(graph)
    if problems:
        listing = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InternalError(f"internal error: graph '{graph.name}' is malformed:\n  {listing}{more}")
    return graph


def _problems(graph: Graph) -> list[str]:
    problems: list[str] = []
    defined: dict[int, Value] = {}
    names: set[str] = set()

    def define(value: Value, what: str) -> None:
        if value.id in defined:
            problems.append(f"{what} {value!r} is defined twice")
        defined[value.id] = value

    for value in graph.inputs:
        if value.kind != "input" or not value.name:
            problems.append(f"graph input {value!r} must be a named value of kind 'input'")
        if value.name in names:
            problems.append(f"two inputs or parameters are named '{value.name}'")
        names.add(value.name or "")
        define(value, "input")
    for info in graph.params:
        expected = "param" if info.trainable else "state"
        if info.value.kind != expected or info.value.name != info.name:
            problems.append(f"parameter '{info.name}' has a value of kind '{info.value.kind}' "
                            f"named '{info.value.name}' (expected kind '{expected}')")
        if info.name in names:
            problems.append(f"two inputs or parameters are named '{info.name}'")
        names.add(info.name)
        define(info.value, "parameter")

    for node in graph.nodes:
        # The node's line is printed only for a problem: formatting every node of a valid
        # graph was half the verifier's time (two runs per compile, warm ones included).
        for position, value in enumerate(node.inputs):
            if value.id not in defined:
                problems.append(f"input {position} of `{format_node(node)}` is used before "
                                f"it is defined (or is not in the graph)")
        for index, value in enumerate(node.outputs):
            if value.producer is not node or value.index != index:
                problems.append(f"output {index} of `{format_node(node)}` does not point "
                                f"back to its node")
            define(value, "node output")
        problems.extend(_type_problems(node))
        for key, attr in node.attrs.items():
            if isinstance(attr, Graph):
                problems.extend(f"in {key} of `{node.op.name}`: {p}" for p in _problems(attr))

    for name, value in graph.outputs.items():
        if value.id not in defined:
            problems.append(f"output '{name}' references an undefined value {value!r}")
    for loss in graph.losses:
        if loss.value.id not in defined:
            problems.append(f"loss '{loss.name}' references an undefined value {loss.value!r}")
        elif loss.value.rank != 0:
            problems.append(f"loss '{loss.name}' is not a scalar: {loss.value.type}")
    params = {info.name: info for info in graph.params}
    for name, value in graph.state_updates.items():
        if value.id not in defined:
            problems.append(f"state update '{name}' references an undefined value {value!r}")
        if name not in params:
            problems.append(f"state update '{name}' names no parameter of the graph")
        elif params[name].value.type != value.type:
            problems.append(f"state update '{name}' has type {value.type}, "
                            f"but the parameter has type {params[name].value.type}")
    return problems


def _type_problems(node) -> list[str]:
    try:
        result = node.op.infer(*(v.type for v in node.inputs), **node.attrs)
    except Exception as error:       # any failure of a type rule here is a pass bug
        return [f"`{format_node(node)}` no longer type-checks: {error}"]
    types = result if isinstance(result, tuple) else (result,)
    recorded = tuple(v.type for v in node.outputs)
    if tuple(types) != recorded:
        return [f"`{format_node(node)}` infers {', '.join(map(str, types))}, "
                f"but records {', '.join(map(str, recorded))}"]
    return []
