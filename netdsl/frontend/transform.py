"""Lark parse tree → AST (netdsl.frontend.ast), with a span on every node.

Besides building nodes, the transformer catches the mistakes that the grammar deliberately
accepts so it can report them precisely: an unknown element type (`float32[B]`), an unknown
block argument type, a positional argument after a keyword argument, a repeated keyword, and a
scan body that does not end with exactly one `yield`.  They are collected, not raised, so that
every independent mistake in a file is reported in one run.
"""
from __future__ import annotations

import ast as python_ast
import warnings

from lark import Token, Transformer, v_args

from ..errors import Diagnostic, did_you_mean
from ..source import Span
from . import ast
from .limits import MAX_INT


def token_span(file: str, token: Token) -> Span:
    """The span of one token."""
    return Span(file, token.line, token.column, token.end_line, token.end_column)


def meta_span(file: str, meta) -> Span:
    """The span of a rule, from Lark's propagated positions."""
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


@v_args(meta=True)
class ToAst(Transformer):
    """Builds the AST for one file; `problems` holds the diagnostics found on the way."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.problems: list[Diagnostic] = []

    # -- helpers (no Lark callbacks start with an underscore) --------------------------------

    def _span(self, meta) -> Span:
        return meta_span(self.file, meta)

    def _tspan(self, token: Token) -> Span:
        return token_span(self.file, token)

    def _problem(self, message: str, span: Span, hint: str | None = None) -> None:
        self.problems.append(Diagnostic(message, span, hint))

    # -- top level ---------------------------------------------------------------------------

    def start(self, meta, items):
        return tuple(items)

    def import_(self, meta, children):
        return ast.Import(self._string_value(children[0]), span=self._span(meta))

    def const(self, meta, children):
        name, value = children
        return ast.Const(str(name), value, span=self._span(meta), name_span=self._tspan(name))

    def block(self, meta, children):
        name, params, body = children
        return ast.Block(str(name), params or (), body, span=self._span(meta),
                         name_span=self._tspan(name))

    def block_params(self, meta, children):
        return tuple(children)

    def block_param(self, meta, children):
        name, type_name, default = children
        if type_name not in ast.ARG_TYPES:
            self._problem(f"unknown argument type '{type_name}'", self._tspan(type_name),
                          did_you_mean(str(type_name), ast.ARG_TYPES)
                          or "block argument types are int, float, bool, str")
        return ast.BlockParam(str(name), str(type_name), default, span=self._span(meta),
                              name_span=self._tspan(name))

    def model(self, meta, children):
        name, body = children
        return ast.Model(str(name), body, span=self._span(meta), name_span=self._tspan(name))

    def train(self, meta, children):
        name, *entries = children
        return ast.Train(str(name), tuple(entries), span=self._span(meta),
                         name_span=self._tspan(name))

    def train_setting(self, meta, children):
        key, value = children
        return ast.TrainEntry(str(key), value, span=self._span(meta), key_span=self._tspan(key))

    def train_call(self, meta, children):
        return ast.TrainEntry(None, children[0], span=self._span(meta))

    # -- statements --------------------------------------------------------------------------

    def body(self, meta, children):
        return tuple(children)

    def input(self, meta, children):
        name, type_ = children
        return ast.Input(str(name), type_, span=self._span(meta), name_span=self._tspan(name))

    def param(self, meta, children):
        name, type_, init = children
        return ast.Param(str(name), type_, init, span=self._span(meta),
                         name_span=self._tspan(name))

    def _names(self, tokens) -> tuple[ast.Name, ...]:
        return tuple(ast.Name(str(t), span=self._tspan(t)) for t in tokens)

    def assign(self, meta, children):
        *targets, value = children
        return ast.Assign(self._names(targets), value, span=self._span(meta))

    def output(self, meta, children):
        name, value = children
        return ast.Output(str(name) if name else None, value, span=self._span(meta),
                          name_span=self._tspan(name) if name else None)

    def loss(self, meta, children):
        name, value, wrt = children
        return ast.Loss(str(name) if name else None, value, wrt, span=self._span(meta),
                        name_span=self._tspan(name) if name else None)

    def wrt(self, meta, children):
        return self._names(children)

    # -- types -------------------------------------------------------------------------------

    def tensor_type(self, meta, children):
        dtype, *dims = children
        if dtype not in ast.DTYPES:
            self._problem(f"unknown element type '{dtype}'", self._tspan(dtype),
                          "element types are f32, f64, f16, i32, i64, bool")
        return ast.TensorTypeExpr(str(dtype), tuple(dims), span=self._span(meta))

    def dim_int(self, meta, children):
        return ast.DimInt(self._int_value(children[0]), span=self._span(meta))

    def dim_name(self, meta, children):
        return ast.DimName(str(children[0]), span=self._span(meta))

    def dim_binop(self, meta, children):
        left, op, right = children
        return ast.DimBinOp(str(op), left, right, span=self._span(meta))

    # -- expressions -------------------------------------------------------------------------

    def pipe(self, meta, children):
        left, _, right = children
        return ast.Pipe(left, right, span=self._span(meta))

    def named(self, meta, children):
        value, name = children
        return ast.Named(value, str(name), span=self._span(meta), name_span=self._tspan(name))

    def binop(self, meta, children):
        left, op, right = children
        return ast.BinOp(str(op), left, right, span=self._span(meta))

    def unary(self, meta, children):
        op, operand = children
        return ast.UnaryOp(str(op), operand, span=self._span(meta))

    def call(self, meta, children):
        func, *arguments = children
        args, kwargs, seen = [], [], set()
        for argument in arguments:
            if isinstance(argument, ast.Keyword):
                if argument.name in seen:
                    self._problem(f"keyword argument '{argument.name}' is given twice",
                                  argument.name_span)
                seen.add(argument.name)
                kwargs.append(argument)
            elif kwargs:
                self._problem("positional argument after a keyword argument", argument.span,
                              "write positional arguments first: f(a, b, key=value)")
            else:
                args.append(argument)
        return ast.Call(func, tuple(args), tuple(kwargs), span=self._span(meta))

    def keyword(self, meta, children):
        name, value = children
        return ast.Keyword(str(name), value, span=self._span(meta), name_span=self._tspan(name))

    def keyword_loss(self, meta, children):
        """`monitor=loss`: the keyword `loss` as the value is the name `loss` (the column)."""
        name = children[0]
        value = Span(self.file, meta.end_line, meta.end_column - len("loss"), meta.end_line,
                     meta.end_column)
        return ast.Keyword(str(name), ast.Name("loss", span=value), span=self._span(meta),
                           name_span=self._tspan(name))

    def index(self, meta, children):
        value, *items = children
        return ast.Index(value, tuple(items), span=self._span(meta))

    def slice(self, meta, children):
        return ast.Slice(*children, span=self._span(meta))

    def ellipsis(self, meta, children):
        return ast.EllipsisLit(span=self._span(meta))

    def attribute(self, meta, children):
        value, attr = children
        return ast.Attribute(value, str(attr), span=self._span(meta))

    def name(self, meta, children):
        return ast.Name(str(children[0]), span=self._tspan(children[0]))

    def _int_value(self, token: Token) -> int:
        # Checked on the digits first: int() of 4,301 digits or more raises ValueError.
        text = str(token).lstrip("0") or "0"
        if len(text) > len(str(MAX_INT)) or int(text) > MAX_INT:
            self._problem(f"this integer is too large (the limit is {MAX_INT:,}, 2**63 - 1)",
                          self._tspan(token), "netdsl's integers are 64-bit")
            return 0
        return int(text)

    def int_(self, meta, children):
        return ast.Number(self._int_value(children[0]), True, span=self._span(meta))

    def float_(self, meta, children):
        value = float(children[0])
        if value == float("inf"):
            self._problem("this number is too large for a 64-bit float",
                          self._tspan(children[0]))
            value = 0.0
        return ast.Number(value, False, span=self._span(meta))

    def _string_value(self, token: Token) -> str:
        # Escapes are those of a double-quoted Python string.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an unknown escape such as \q stays as written
                return python_ast.literal_eval(str(token))
        except (ValueError, SyntaxError):
            self._problem("invalid escape in string", self._tspan(token))
            return str(token)[1:-1]

    def string(self, meta, children):
        return ast.String(self._string_value(children[0]), span=self._span(meta))

    def true(self, meta, children):
        return ast.Bool(True, span=self._span(meta))

    def false(self, meta, children):
        return ast.Bool(False, span=self._span(meta))

    def none(self, meta, children):
        return ast.NoneLit(span=self._span(meta))

    def tuple(self, meta, children):
        return ast.Tuple(tuple(children), span=self._span(meta))

    def list(self, meta, children):
        return ast.List(tuple(children), span=self._span(meta))

    # -- scan --------------------------------------------------------------------------------

    def scan(self, meta, children):
        inputs, axis, carries, (body_span, body) = children
        yields = [i for i, stmt in enumerate(body) if isinstance(stmt, ast.Yield)]
        if not yields:
            self._problem("scan body has no 'yield'", body_span,
                          "end the body with `yield` and the values of each step")
        for i in yields:
            if i != len(body) - 1:
                self._problem("'yield' must be the last statement of the scan body",
                              body[i].span)
        return ast.Scan(inputs, axis, carries or (), body, span=self._span(meta))

    def scan_inputs(self, meta, children):
        return self._names(children)

    def carries(self, meta, children):
        return tuple(children)

    def carry(self, meta, children):
        name, init = children
        return ast.Carry(str(name), init, span=self._span(meta), name_span=self._tspan(name))

    def scan_body(self, meta, children):
        return self._span(meta), tuple(children)

    def yield_(self, meta, children):
        return ast.Yield(tuple(children), span=self._span(meta))
