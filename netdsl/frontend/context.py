"""The call context: what a built-in function or layer sees while it builds its ops.

One `CallContext` is made per call, carrying the span of the call (errors point at it) and, for
layers, the instance whose parameters `param()` creates or, on a shared layer's second
application, returns.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, Sequence

import numpy as np

from ..errors import Error
from ..ir.graph import Value
from ..ir.types import DType, Sym, TensorType
from ..layers.init import InitSpec
from ..source import Span
from .cost import per_example
from .limits import MAX_DIM, MAX_ELEMENTS, whole
from .values import Instance

if TYPE_CHECKING:
    from .lower import Lowerer


class CallContext:
    """Builds ops for one call of a function or application of a layer."""

    def __init__(self, lowerer: "Lowerer", span: Span | None, instance: Instance | None = None):
        self.lowerer = lowerer
        self.span = span
        self.instance = instance

    # -- building -------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.lowerer.training

    def op(self, name: str, *inputs: Value, **attrs: Any) -> Any:
        """One primitive op (type-checked by the builder), counted against MAX_OPERATIONS; its
        results must be tensors that can exist (no empty or oversized known dimension)."""
        self.lowerer.count_operations(1, self.span)
        with self.lowerer.builder.at(self.span):
            result = self.lowerer.builder.op(name, *inputs, **attrs)
        for value in result if isinstance(result, tuple) else (result,):
            if isinstance(value, Value):
                check_type(value.type, self.span)
        return result

    def const(self, value: Any, like: Value | None = None) -> Value:
        """A scalar constant with the element type of `like` (f32 by default)."""
        if isinstance(value, Value):
            return value
        dtype = like.dtype if like is not None else DType.f32
        if isinstance(value, Sym):
            self.error(f"the dimension {value} has no value when the model is compiled, so it "
                       f"cannot be used as a number here",
                       hint="use a number, a const or a block argument")
        if not isinstance(value, (int, float, bool, np.number)):
            from ..layers.base import describe
            self.error(f"expected a number or a tensor, got {describe(value)}")
        if not fits(value, dtype):
            self.error(f"the constant {value!r} does not fit in {dtype.name}",
                       hint=f"cast the tensor first, e.g. cast(x, \"f64\")"
                       if dtype.is_float else None)
        with self.lowerer.builder.at(self.span):
            return self.lowerer.builder.constant(np.asarray(value, dtype=dtype.numpy), dtype)

    def ignore_label(self, labels: Value, class_id: int) -> None:
        """Record that a loss ignores `class_id` in `labels`; when they are a model input, the
        training metrics leave those positions out as well (Graph.ignored_labels)."""
        graph = self.lowerer.root.graph
        if any(v.id == labels.id for v in graph.inputs):
            graph.ignored_labels[labels.name] = int(class_id)

    def list_tensor(self, value: list, span: Span | None = None,
                    dtype: DType | None = None) -> Value:
        """A list literal where a tensor is expected: a constant of the list's shape, f32 unless
        `dtype` is given (an int tensor is expected and every item is an int)."""
        array = list_array(value, span or self.span)
        dtype = dtype or DType.f32
        if array.dtype.kind == "f" and not dtype.is_float:
            dtype = DType.f32
        with self.lowerer.builder.at(span or self.span):
            return self.lowerer.builder.constant(array.astype(dtype.numpy), dtype)

    def floating(self, x: Value) -> Value:
        """Integer and bool tensors become f32 where a float is needed (as torch promotes)."""
        if not isinstance(x, Value):
            self.error(f"expected a tensor, got {x!r}")
        return x if x.dtype.is_float else self.op("cast", x, dtype=DType.f32)

    def tensor(self, value: Any) -> Value:
        if isinstance(value, Value):
            return value
        if isinstance(value, (int, float, bool)):
            return self.const(value)
        self.error(f"expected a tensor, got {value!r}")

    def param(self, local_name: str, shape: Sequence[int], init: Any, *,
              trainable: bool = True, fan: tuple[int, int] | None = None,
              dtype: DType = DType.f32) -> Value:
        """The instance's parameter `local_name`, created on first use (weight sharing after)."""
        assert self.instance is not None, "param() outside a layer"
        if isinstance(init, str):
            init = InitSpec(init)
        type_ = TensorType(dtype, tuple(shape))
        existing = self.instance.params.get(local_name)
        if existing is not None:
            if existing.type != type_:
                self.error(f"the shared layer '{self.instance.full_name}' was built for "
                           f"{local_name} {existing.type} but this application needs {type_}",
                           hint="a bound layer shares its weights, so every input must have "
                                "the same feature size")
            return self.lowerer.capture(existing)
        name = ".".join(self.instance.scope + (local_name,))
        value = self.lowerer.new_param(name, type_, init, trainable=trainable, span=self.span,
                                       fan=fan)
        self.instance.params[local_name] = value
        return self.lowerer.capture(value)

    def state_update(self, param: Value, new_value: Value) -> None:
        """In training mode, `param` (a state such as a running mean) becomes new_value."""
        self.lowerer.state_update(param, new_value, self.span)

    def state_value(self, param: Value) -> Value:
        """The state `param` as this step has updated it so far: a bound layer applied twice
        (a BatchNorm shared by two branches) updates its running statistics twice, in order."""
        if not self.training:
            return param
        return self.lowerer.root.graph.state_updates.get(param.name, param)

    def rng_counter(self) -> Value:
        """The per-step counter input that makes random ops draw new numbers each step."""
        return self.lowerer.rng_counter()

    def fresh_seed(self) -> int:
        return self.lowerer.fresh_seed()

    # -- arguments ------------------------------------------------------------------------
    def axis(self, axis: Any, x: Value) -> int:
        """A possibly negative axis of x as a non-negative int, or an error."""
        if not isinstance(axis, int) or isinstance(axis, bool):
            self.error(f"an axis must be an int, got {axis!r}")
        rank = x.rank
        if not -rank <= axis < max(rank, 1):
            self.error(f"axis {axis} is out of range for {x.type} (rank {rank})")
        return axis % rank if rank else 0

    def axes(self, axis: Any, x: Value) -> tuple[int, ...]:
        """`none` (every axis), one axis, or a list of axes."""
        if axis is None:
            return tuple(range(x.rank))
        if isinstance(axis, (list, tuple)):
            axes = [self.axis(a, x) for a in axis]
            repeated = sorted({a for a in axes if axes.count(a) > 1})
            if repeated:
                self.error(f"axis {repeated[0]} is given more than once in {list(axis)} "
                           f"(for {x.type})", hint="list each axis once")
            return tuple(sorted(axes))
        return (self.axis(axis, x),)

    def dims(self, shape: Any) -> list:
        """A shape written as a list: ints, -1, consts and symbolic dims."""
        if not isinstance(shape, (list, tuple)):
            self.error(f"a shape must be a list such as [B, -1], got {shape!r}")
        dims = []
        for dim in shape:
            dim = whole(dim, self.span, "a shape entry")
            if isinstance(dim, Sym) or (isinstance(dim, int) and not isinstance(dim, bool)):
                dims.append(dim)
            else:
                self.error(f"a shape entry must be an int or a dimension name, got {dim!r}")
        return dims

    def where_made(self, x: Value) -> str | None:
        """`the input was made at file:line:col` — a hint for shape errors."""
        span = x.producer.span if x.producer is not None else None
        if span is None or span == self.span:
            return None
        kind = x.producer.op.name
        what = "flattened" if kind == "reshape" and x.rank == 2 else f"made by {kind}"
        return f"the input was {what} at {span}"

    def error(self, message: str, hint: str | None = None, span: Span | None = None) -> NoReturn:
        raise Error(message, span or self.span, hint)


def list_array(value: Any, span: Span | None) -> np.ndarray:
    """The NumPy array of a (nested) list of numbers, or an Error for a ragged one, an empty
    one, or one holding something other than numbers."""
    def shape_of(item: Any, path: str) -> tuple[int, ...]:
        if isinstance(item, (list, tuple)):
            if not item:
                raise Error(f"the list{path} is empty, so it makes no tensor", span)
            shapes = [shape_of(x, f"{path}[{i}]") for i, x in enumerate(item)]
            for i, shape in enumerate(shapes):
                if shape != shapes[0]:
                    raise Error(f"this list is ragged: item{path}[{i}] has shape "
                                f"{list(shape)} but item{path}[0] has {list(shapes[0])}", span,
                                "a list used as a tensor needs rows of one length")
            return (len(item),) + shapes[0]
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            from ..layers.base import describe
            raise Error(f"a list used as a tensor must hold numbers, but item{path} is "
                        f"{describe(item)}", span,
                        "to join tensors use concat([a, b], axis=...)"
                        if isinstance(item, Value) else None)
        return ()
    shape_of(value, "")
    return np.array(value)


def fits(value: Any, dtype: DType) -> bool:
    """Whether a Python number is exactly an element of dtype (a float: within its range)."""
    if isinstance(value, bool) or dtype == DType.bool:
        return True
    if not isinstance(value, (int, float)):
        return True                             # not a scalar: the builder judges it
    if dtype.is_float:
        return abs(value) <= float(np.finfo(dtype.numpy).max)
    if isinstance(value, float):
        return value.is_integer() and _in_int_range(int(value), dtype)
    return _in_int_range(value, dtype)


def _in_int_range(value: int, dtype: DType) -> bool:
    info = np.iinfo(dtype.numpy)
    return int(info.min) <= value <= int(info.max)


def check_type(type_: TensorType, span: Span | None) -> None:
    """An Error unless every known dimension is in [1, MAX_DIM] and the known part of the
    shape has at most MAX_ELEMENTS elements."""
    size = 1
    for dim in type_.shape:
        if isinstance(dim, int):
            if dim < 1:
                raise Error(f"this makes an empty tensor {type_}", span,
                            "every dimension must be at least 1")
            if dim > MAX_DIM:
                raise Error(f"this makes a tensor {type_} with a dimension larger than "
                            f"{MAX_DIM:,} (2**31 - 1), the limit", span)
            size *= dim
        elif per_example(dim) > MAX_DIM:
            raise Error(f"this makes a tensor {type_} with a dimension larger than "
                        f"{MAX_DIM:,} (2**31 - 1) even when its symbols are 1", span)
    if size > MAX_ELEMENTS:
        raise Error(f"this makes a tensor {type_} of {size:,} elements, more than the limit "
                    f"of {MAX_ELEMENTS:,} (2**40)", span)
