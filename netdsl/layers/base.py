"""How built-in functions and layers are declared, and how calls to them are checked.

A function is a Python function `f(ctx, x: Tensor, axis: int = -1)`; a layer is a class whose
`__init__` takes the compile-time arguments (`Dense(units: int, bias: bool = True)`) and whose
`apply(ctx, x: Tensor)` builds its ops.  Annotations are the user-visible signature: the lowering
binds a call's arguments against them, so arity, unknown keywords (with did-you-mean) and
argument kinds are all reported from this one place, with the span of the offending argument.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import Error, did_you_mean
from ..ir.graph import Value
from ..source import Span
from .init import INITIALIZERS, InitSpec, init_problem


class Tensor:
    """Annotation: a tensor argument (a graph Value)."""


class Init:
    """Annotation: an initialiser (`he`, `normal(0.02)`)."""


class AnyValue:
    """Annotation: any compile-time value (lists of dims, strings, ...)."""


class ArgumentError(Exception):
    """Raised by a layer's constructor for a bad argument value; lowering points at it."""

    def __init__(self, argument: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.argument, self.message, self.hint = argument, message, hint


@dataclass
class Argument:
    """A call argument after evaluation, with the span to blame if it is wrong."""

    value: Any
    span: Span | None


FUNCTIONS: dict[str, Callable] = {}
LAYERS: dict[str, type] = {}


def function(name: str) -> Callable[[Callable], Callable]:
    """Register a lowercase built-in function of the language."""

    def register(fn: Callable) -> Callable:
        FUNCTIONS[name] = fn
        fn.language_name = name
        return fn

    return register


def layer(name: str) -> Callable[[type], type]:
    """Register a capitalised built-in layer of the language."""

    def register(cls: type) -> type:
        LAYERS[name] = cls
        cls.kind = name
        return cls

    return register


def snake_case(kind: str) -> str:
    """`Conv2D` -> `conv2d`, `TransformerEncoderLayer` -> `transformer_encoder_layer`."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", kind)
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", text)
    return re.sub(r"_(?=\d)", "", text).lower()


def describe(value: Any) -> str:
    """How a value is named in error messages."""
    if isinstance(value, Value):
        return f"a tensor {value.type}"
    if isinstance(value, bool):
        return f"the bool {str(value).lower()}"
    if isinstance(value, int):
        return f"the int {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, (list, tuple)):
        return f"a {'list' if isinstance(value, list) else 'tuple'} of {len(value)}"
    if isinstance(value, InitSpec):
        return f"the initialiser {value}"
    if value is None:
        return "none"
    if type(value).__name__ == "FunctionRef":      # frontend.values, not imported here
        return f"the function {value.name}"
    kind = getattr(value, "kind", type(value).__name__)
    return f"the layer {kind}"


_ANNOTATION_NAMES = {Tensor: "a tensor", int: "an int", float: "a number", bool: "a bool",
                     str: "a string", list: "a list", Init: "an initialiser"}


def _accepts(annotation: Any, value: Any) -> tuple[bool, Any]:
    """Whether `value` fits `annotation`, and the value converted (int -> float is fine)."""
    if annotation in (inspect.Parameter.empty, AnyValue, Any):
        return True, value
    if annotation is Tensor:
        return isinstance(value, Value), value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if annotation is str:
        return isinstance(value, str), value
    if annotation is list:
        return isinstance(value, (list, tuple)), list(value) if isinstance(value, tuple) else value
    if annotation is Init:
        # `zeros` and `ones` are also functions (`zeros([B, H])`), so as `init=zeros` they
        # arrive as a reference to the function; a bare initialiser name means the initialiser.
        name = value if isinstance(value, str) else getattr(value, "name", None)
        if not isinstance(value, InitSpec) and name in INITIALIZERS:
            value = InitSpec(name)
        return isinstance(value, InitSpec), value
    if isinstance(annotation, tuple):                  # a union, e.g. (int, str) for padding
        for option in annotation:
            ok, converted = _accepts(option, value)
            if ok:
                return True, converted
        return False, value
    return True, value


def _expected(annotation: Any) -> str:
    if isinstance(annotation, tuple):
        return " or ".join(_expected(a) for a in annotation)
    return _ANNOTATION_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


# Tensor parameters that take integers (class indices), so that a list of ints passed to them
# is an i64 constant rather than f32: `one_hot([0, 2], 3)`.
INT_TENSOR_PARAMETERS = frozenset({"labels", "indices", "ids"})


def bind_call(target: Callable, display: str, args: Sequence[Argument],
              kwargs: Sequence[tuple[str, Argument]], call_span: Span | None,
              skip: int = 1, lists: Callable | None = None) -> dict[str, Any]:
    """Bind a call's arguments to `target`'s signature (its first `skip` parameters excluded).

    `lists(value, span, int_expected)`, if given, turns a list literal passed where only a
    tensor is accepted into a constant tensor (`weights=[1.0, 2.0]`); an int tensor is expected
    for the parameters named in INT_TENSOR_PARAMETERS.

    Raises Error for too many or too few arguments, an unknown or repeated keyword, or an
    argument of the wrong kind, pointing at the argument (or the call) at fault.
    """
    if target is object.__init__:                      # a layer without arguments
        parameters: list[inspect.Parameter] = []
    else:
        parameters = [p for p in _parameters(target)[skip:] if p.kind != p.VAR_KEYWORD]
    annotations = _annotations(target)
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = next((p for p in parameters if p.kind == p.VAR_POSITIONAL), None)
    names = [p.name for p in parameters if p.kind != p.VAR_POSITIONAL]
    bound: dict[str, tuple[Any, Span | None]] = {}
    extra: list[Argument] = []
    for index, argument in enumerate(args):
        if index < len(positional):
            bound[positional[index].name] = (argument.value, argument.span)
        elif variadic is not None:
            extra.append(argument)
        else:
            required = sum(1 for p in positional if p.default is p.empty)
            count = (f"{required}" if required == len(positional)
                     else f"{required} to {len(positional)}")
            raise Error(f"{display} takes {count} positional argument"
                        f"{'s' if len(positional) != 1 else ''}, got {len(args)}",
                        argument.span or call_span)
    for key, argument in kwargs:
        if key not in names:
            hint = did_you_mean(key, names)
            accepted = ", ".join(names) or "no keyword arguments"
            raise Error(f"{display} has no argument '{key}'", argument.span or call_span,
                        hint or f"{display} accepts: {accepted}")
        if key in bound:
            raise Error(f"{display} got argument '{key}' twice", argument.span or call_span)
        bound[key] = (argument.value, argument.span)
    result: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.kind == parameter.VAR_POSITIONAL:
            continue
        annotation = annotations.get(parameter.name, inspect.Parameter.empty)
        if parameter.name not in bound:
            if parameter.default is parameter.empty:
                raise Error(f"{display} is missing its argument '{parameter.name}'", call_span)
            # Defaults get the same conversion as written values (`init: Init = "he"` is an
            # InitSpec inside the layer either way).
            default = parameter.default
            result[parameter.name] = default if default is None else \
                _accepts(annotation, default)[1]
            continue
        value, span = bound[parameter.name]
        if lists is not None and annotation is Tensor and isinstance(value, list):
            value = lists(value, span or call_span, parameter.name in INT_TENSOR_PARAMETERS)
        ok, converted = _accepts(annotation, value)
        if not ok and not (value is None and parameter.default is None):
            raise Error(f"{display}: argument '{parameter.name}' expects {_expected(annotation)}, "
                        f"got {describe(value)}", span or call_span)
        if isinstance(converted, InitSpec) and init_problem(converted):
            raise Error(f"{display}: {init_problem(converted)}", span or call_span,
                        f"write it with its arguments, e.g. `{parameter.name}="
                        f"{converted.kind}(0.1)`")
        result[parameter.name] = converted
    if variadic is not None:
        result[variadic.name] = [a.value for a in extra]
    return result


def _annotations(target: Callable) -> dict[str, Any]:
    """The signature's annotations as objects: modules here use `from __future__ import
    annotations`, so `__annotations__` holds strings such as "Init" or "(int, list)", and an
    unevaluated string would silently accept any value."""
    # Keyed by the function: a bound method is new for each layer instance (the cache missed
    # every time, and kept every instance alive).
    function = getattr(target, "__func__", target)
    cached = _ANNOTATIONS.get(function)
    if cached is None:
        cached = inspect.get_annotations(function, eval_str=True)
        _ANNOTATIONS[function] = cached
    return cached


_ANNOTATIONS: dict[Callable, dict[str, Any]] = {}


def _parameters(target: Callable) -> list[inspect.Parameter]:
    """inspect.signature's parameters, computed once per function (it is slow, and every
    call of a function or layer in a model binds against it)."""
    # Keyed by the function, not the bound method: each layer instance makes a new one.
    key = (getattr(target, "__func__", target), hasattr(target, "__self__"))
    cached = _PARAMETERS.get(key)
    if cached is None:
        cached = _PARAMETERS[key] = list(inspect.signature(target).parameters.values())
    return cached


_PARAMETERS: dict[tuple[Callable, bool], list[inspect.Parameter]] = {}
