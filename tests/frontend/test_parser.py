"""Parser tests: every construct of the language, precedence, newlines, spans, grammar lookup."""
from __future__ import annotations

from pathlib import Path

import pytest

from netdsl.frontend import ast, parse, parse_file
from netdsl.frontend.ast import (Assign, BinOp, Bool, Call, Carry, DimBinOp, DimInt, DimName,
                                 Index, Input, Keyword, List, Loss, Model, Name, Named, NoneLit,
                                 Number, Output, Param, Pipe, Scan, Slice, String,
                                 TensorTypeExpr, Tuple, UnaryOp, Yield)
from netdsl.frontend.parser import build_parser, find_grammar, grammar_candidates


def body(text: str) -> tuple:
    """The statements of `model M { text }`."""
    return parse(f"model M {{\n{text}\n}}\n", "t.net").items[0].body


def expr(text: str):
    """The AST of one expression."""
    return body(f"    v = {text}")[0].value


def sexp(node) -> str:
    """A compact, fully bracketed rendering of an expression, to test structure at a glance."""
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Number):
        return repr(node.value)
    if isinstance(node, String):
        return repr(node.value)
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, NoneLit):
        return "none"
    if isinstance(node, ast.EllipsisLit):
        return "..."
    if isinstance(node, BinOp):
        return f"({node.op} {sexp(node.left)} {sexp(node.right)})"
    if isinstance(node, UnaryOp):
        return f"({node.op} {sexp(node.operand)})"
    if isinstance(node, Pipe):
        return f"(|> {sexp(node.left)} {sexp(node.right)})"
    if isinstance(node, Named):
        return f"(as {sexp(node.value)} {node.name})"
    if isinstance(node, Call):
        parts = [sexp(a) for a in node.args] + [f"{k.name}={sexp(k.value)}" for k in node.kwargs]
        return f"{sexp(node.func)}({', '.join(parts)})"
    if isinstance(node, Index):
        return f"{sexp(node.value)}[{', '.join(sexp(i) for i in node.items)}]"
    if isinstance(node, Slice):
        return ":".join("" if p is None else sexp(p) for p in (node.start, node.stop, node.step))
    if isinstance(node, ast.Attribute):
        return f"{sexp(node.value)}.{node.attr}"
    if isinstance(node, Tuple):
        return f"tuple({', '.join(sexp(i) for i in node.items)})"
    if isinstance(node, List):
        return f"[{', '.join(sexp(i) for i in node.items)}]"
    raise TypeError(node)


@pytest.mark.parametrize("source, expected", [
    ("a + b |> relu", "(|> (+ a b) relu)"),
    ("-x**2", "(- (** x 2))"),
    ("2 ** -1", "(** 2 (- 1))"),
    ("a ** b ** c", "(** a (** b c))"),
    ("a - b - c", "(- (- a b) c)"),
    ("a + b * c @ d", "(+ a (@ (* b c) d))"),
    ("a // b % c / d", "(/ (% (// a b) c) d)"),
    ("-a * b", "(* (- a) b)"),
    ("+a", "(+ a)"),
    ("a < b + 1", "(< a (+ b 1))"),
    ("a == b", "(== a b)"), ("a != b", "(!= a b)"), ("a >= b", "(>= a b)"),
    ("a <= b", "(<= a b)"), ("a > b", "(> a b)"),
    ("x |> leaky_relu(alpha=0.2)", "(|> x leaky_relu(alpha=0.2))"),
    ("x |> Dense(120) as fc1 |> relu", "(|> (|> x (as Dense(120) fc1)) relu)"),
    ("Dense(64) as enc", "(as Dense(64) enc)"),
    ("(x |> Dense(4)) + y", "(+ (|> x Dense(4)) y)"),
    ("Dense(120)(x)", "Dense(120)(x)"),
    ("softmax(x, axis=-1)", "softmax(x, axis=(- 1))"),
    ("f()", "f()"),
    ("f(a, b,)", "f(a, b)"),
    ("repeat(6, EncoderLayer(128, heads=4))", "repeat(6, EncoderLayer(128, heads=4))"),
    ("x[:, -1]", "x[::, (- 1)]"),
    ("x[:, 0:8, ::2]", "x[::, 0:8:, ::2]"),
    ("x[..., 0]", "x[..., 0]"),
    ("x[1:]", "x[1::]"),
    ("x[0][1]", "x[0][1]"),
    ("fc1.weight", "fc1.weight"),
    ("(a, b)", "tuple(a, b)"), ("(a,)", "tuple(a)"), ("()", "tuple()"),
    ("[a, b]", "[a, b]"), ("[]", "[]"), ("[1, 2,]", "[1, 2]"),
    ("reshape(x, [B, -1])", "reshape(x, [B, (- 1)])"),
    ('"text"', "'text'"), ('"a\\"b\\n"', "'a\"b\\n'"),
    ("true", "true"), ("false", "false"), ("none", "none"),
    ("0.5", "0.5"), ("1e-3", "0.001"), (".5", "0.5"), ("2.", "2.0"), ("3E2", "300.0"),
    ("42", "42"),
])
def test_expression_structure(source, expected):
    assert sexp(expr(source)) == expected


def test_numbers_keep_int_and_float_apart():
    assert expr("2") == Number(2, True)
    assert expr("2.0") == Number(2.0, False)
    assert expr("2") != expr("2.0")


def test_structural_equality_ignores_spans():
    assert expr("a + b") == BinOp("+", Name("a"), Name("b"))
    assert expr("f(x, k=1)") == Call(Name("f"), (Name("x"),), (Keyword("k", Number(1, True)),))


def test_statements():
    stmts = body("""
    in  image: f32[B, 1, 28, 28]
    in  label: i64[B]
    param w: f32[2, 1] = zeros
    param s: f32[] = normal(0.01)
    param u: f32[3]
    x = image
    a, b = split(x)
    out probs = softmax(x)
    out x
    loss cross_entropy(x, label)
    loss d_loss = mse(a, b) wrt Discriminator
    loss g_loss = mse(a, b) wrt [Generator, Mapping]
""")
    assert stmts[0] == Input("image", TensorTypeExpr(
        "f32", (DimName("B"), DimInt(1), DimInt(28), DimInt(28))))
    assert stmts[1] == Input("label", TensorTypeExpr("i64", (DimName("B"),)))
    assert stmts[2] == Param("w", TensorTypeExpr("f32", (DimInt(2), DimInt(1))), Name("zeros"))
    assert stmts[3] == Param("s", TensorTypeExpr("f32", ()),
                             Call(Name("normal"), (Number(0.01, False),)))
    assert stmts[4] == Param("u", TensorTypeExpr("f32", (DimInt(3),)), None)
    assert stmts[5] == Assign((Name("x"),), Name("image"))
    assert stmts[6] == Assign((Name("a"), Name("b")), Call(Name("split"), (Name("x"),)))
    assert stmts[7] == Output("probs", Call(Name("softmax"), (Name("x"),)))
    assert stmts[8] == Output(None, Name("x"))
    assert stmts[9] == Loss(None, Call(Name("cross_entropy"), (Name("x"), Name("label"))))
    assert stmts[10].name == "d_loss" and stmts[10].wrt == (Name("Discriminator"),)
    assert stmts[11].wrt == (Name("Generator"), Name("Mapping"))


def test_dimension_arithmetic():
    (stmt,) = body("    in x: f32[B, 4*H, D+1, T//2, (D+1)*2, N-1,]")
    assert stmt.type.dims == (
        DimName("B"), DimBinOp("*", DimInt(4), DimName("H")),
        DimBinOp("+", DimName("D"), DimInt(1)), DimBinOp("//", DimName("T"), DimInt(2)),
        DimBinOp("*", DimBinOp("+", DimName("D"), DimInt(1)), DimInt(2)),
        DimBinOp("-", DimName("N"), DimInt(1)))


def test_top_level_items_in_any_order():
    module = parse("""
train Net { epochs = 2 }
import "blocks/resnet.net"
const HIDDEN = 128
const RATE = 1e-3
const NAME = "net"
const ON = true
const WIDE = HIDDEN * 4 + 1
block Residual(channels: int, stride: int = 1, act: str = "relu", p: float = 0.5, b: bool = false) {
    in x: f32[B, channels, H, W]
    out x
}
block Plain { in x: f32[B]
    out x }
block Empty() {}
model Net { in x: f32[B] }
""", "t.net")
    kinds = [type(item).__name__ for item in module.items]
    assert kinds == ["Train", "Import", "Const", "Const", "Const", "Const", "Const",
                     "Block", "Block", "Block", "Model"]
    assert module.items[1].path == "blocks/resnet.net"
    assert module.items[6].value == BinOp("+", BinOp("*", Name("HIDDEN"), Number(4, True)),
                                          Number(1, True))
    residual = module.items[7]
    assert [(p.name, p.type_name) for p in residual.params] == [
        ("channels", "int"), ("stride", "int"), ("act", "str"), ("p", "float"), ("b", "bool")]
    assert residual.params[1].default == Number(1, True)
    assert residual.params[2].default == String("relu")
    assert module.items[8].params == () and len(module.items[8].body) == 2
    assert module.items[9].body == ()
    assert module.path == "t.net"


def test_train_section_with_call_entries():
    (train,) = parse("""
train LeNet5 {
    optimizer = Adam(lr=1e-3)
    early_stopping(patience=3, monitor=val_loss)
    metrics = [accuracy, f1]
}
""", "t.net").items
    assert train.name == "LeNet5"
    assert [e.key for e in train.entries] == ["optimizer", None, "metrics"]
    assert train.entries[1].value == Call(Name("early_stopping"), (), (
        Keyword("patience", Number(3, True)), Keyword("monitor", Name("val_loss"))))


def test_scan_single_and_multiple_carries():
    (stmt,) = body("""
    hs, h_last = scan x over 1 with h = zeros([B, hidden]) {
        h = tanh(x_t @ wx + h @ wh + b)
        yield h
    }""")
    scan = stmt.value
    assert isinstance(scan, Scan) and stmt.targets == (Name("hs"), Name("h_last"))
    assert scan.inputs == (Name("x"),) and scan.axis == Number(1, True)
    assert scan.carries == (Carry("h", Call(Name("zeros"), (List((Name("B"), Name("hidden"))),))),)
    assert isinstance(scan.body[0], Assign) and scan.body[-1] == Yield((Name("h"),))
    assert scan.yields == (Name("h"),)

    (stmt,) = body("""
    ys, hT, cT = scan x, m over -1 with h = zeros([B, H]),
                                        c = zeros([B, H]) {
        h, c = lstm_cell(x_t, m_t, h, c)
        yield h, c
    }""")
    scan = stmt.value
    assert scan.inputs == (Name("x"), Name("m")) and sexp(scan.axis) == "(- 1)"
    assert [c.name for c in scan.carries] == ["h", "c"]
    assert scan.yields == (Name("h"), Name("c"))


def test_scan_without_carries_and_on_one_line():
    (stmt,) = body("    ys = scan x over 1 { yield relu(x_t) }")
    assert stmt.value.carries == () and stmt.value.yields == (Call(Name("relu"), (Name("x_t"),)),)


def test_newlines_comments_and_continuations():
    stmts = body("""
    # a comment line

    logits = image   # trailing comment
        |> Conv2D(6, kernel=5,
                  padding=2)   # inside brackets
        |> relu
        # a comment between stages
        |> Dense(10)
    y = a +
        b
    z = a
        - b
    w = f(
        a,
        b,
    )
""")
    assert len(stmts) == 4
    assert sexp(stmts[0].value) == \
        "(|> (|> (|> image Conv2D(6, kernel=5, padding=2)) relu) Dense(10))"
    assert sexp(stmts[1].value) == "(+ a b)"
    assert sexp(stmts[2].value) == "(- a b)"
    assert sexp(stmts[3].value) == "f(a, b)"


def test_brace_on_next_line_and_empty_file():
    module = parse("model M\n{\n    in x: f32[B]\n}", "t.net")
    assert isinstance(module.items[0], Model)
    assert parse("", "t.net").items == ()
    assert parse("# only a comment\n\n", "t.net").items == ()


def test_crlf_line_endings():
    module = parse("model M {\r\n    x = 1\r\n    y = x\r\n}\r\n", "t.net")
    assert len(module.items[0].body) == 2


# ---- spans ----------------------------------------------------------------------------------

def test_spans_point_at_tokens():
    text = "model M {\n    in x: f32[B, 3]\n    y = x\n        |> Dense(10, act=relu)\n}\n"
    (model,) = parse(text, "s.net").items
    inp, assign = model.body
    assert (model.span.line, model.span.column, model.span.end_line) == (1, 1, 5)
    assert (model.name_span.line, model.name_span.column) == (1, 7)
    assert (inp.name_span.line, inp.name_span.column, inp.name_span.end_column) == (2, 8, 9)
    assert (inp.type.span.column, inp.type.span.end_column) == (11, 20)
    pipe = assign.value
    assert (pipe.span.line, pipe.span.column, pipe.span.end_line) == (3, 9, 4)
    call = pipe.right
    assert (call.span.line, call.span.column, call.span.end_column) == (4, 12, 31)
    assert (call.func.span.line, call.func.span.column, call.func.span.end_column) == (4, 12, 17)
    keyword = call.kwargs[0]
    assert (keyword.span.column, keyword.name_span.column, keyword.value.span.column) == (
        22, 22, 26)
    assert call.span.file == "s.net"


def test_every_node_has_a_span():
    module = parse(LANGUAGE_EXAMPLES, "lang.net")
    for node in ast.walk(module):
        assert node.span is not None, node
        assert node.span.line >= 1 and node.span.column >= 1


# ---- the examples of LANGUAGE.md ------------------------------------------------------------

LANGUAGE_EXAMPLES = """
import "blocks/resnet.net"        # blocks and constants from another file (path relative to this file)
const HIDDEN = 128                # compile-time constant: int, float, bool or string

model LeNet {
    in image: f32[B, 1, 28, 28]
    logits = image
        |> Conv2D(6, kernel=5, padding=2) |> relu |> MaxPool(2)
        |> Flatten |> Dense(10)
    out logits
}

model Name {
    in  image: f32[B, 1, 28, 28]          # an input (fed at run time)
    in  label: i64[B]
    param w: f32[2, 1] = zeros            # a raw trainable parameter with its initialiser
    x = expression                        # a binding; single assignment
    a, b = expression                     # destructure a tuple result
    out probs = softmax(logits)           # a named output
    loss cross_entropy(logits, label)     # the scalar to minimise (mean over the batch)
}

block Elman(hidden: int) {
    in    x: f32[B, T, D]
    param wx: f32[D, hidden] = xavier
    param wh: f32[hidden, hidden] = orthogonal
    param b:  f32[hidden] = zeros
    hs, h_last = scan x over 1 with h = zeros([B, hidden]) {
        h = tanh(x_t @ wx + h @ wh + b)
        yield h
    }
    out hs
}

train LeNet5 {
    data         = digits                # built-in dataset, or "path.npz" / "path.csv" / a folder
    split        = 0.8                   # train/validation split when the data has none
    batch        = 64
    epochs       = 10
    optimizer    = Adam(lr=1e-3)         # SGD(lr, momentum, nesterov), RMSprop, Adam, AdamW
    schedule     = cosine()              # step(every, gamma), exponential(gamma), cosine, warm_restarts(period), warmup(steps)
    weight_decay = 1e-4
    clip_norm    = 1.0                   # or clip_value
    early_stopping(patience=3, monitor=val_loss)
    metrics      = [accuracy, f1]
    seed         = 0
}
"""


def test_language_reference_examples_parse():
    module = parse(LANGUAGE_EXAMPLES, "lang.net")
    names = [getattr(item, "name", None) for item in module.items]
    assert names == [None, "HIDDEN", "LeNet", "Name", "Elman", "LeNet5"]
    elman = module.items[4]
    assert isinstance(elman.body[4].value, Scan)
    train = module.items[5]
    assert len(train.entries) == 11 and train.entries[8].key is None


def test_parse_file_registers_source(tmp_path: Path):
    path = tmp_path / "m.net"
    path.write_text("model M {\n    in x: f32[B]\n}\n", encoding="utf-8")
    module = parse_file(path)
    assert module.items[0].name == "M"
    assert module.items[0].span.file == module.path


# ---- the grammar file -----------------------------------------------------------------------

def test_grammar_candidates_prefer_installed_location(tmp_path: Path):
    module_file = tmp_path / "site" / "netdsl" / "frontend" / "parser.py"
    candidates = grammar_candidates(module_file)
    assert candidates[0] == tmp_path / "site" / "netdsl" / "grammars" / "netdsl.lark"
    assert candidates[1] == tmp_path / "site" / "grammars" / "netdsl.lark"


def test_find_grammar_in_installed_and_checkout_layouts(tmp_path: Path):
    grammar = find_grammar().read_text(encoding="utf-8")
    installed = tmp_path / "site" / "netdsl"
    (installed / "frontend").mkdir(parents=True)
    (installed / "grammars").mkdir()
    (installed / "grammars" / "netdsl.lark").write_text(grammar)
    assert find_grammar(installed / "frontend" / "parser.py") == \
        installed / "grammars" / "netdsl.lark"

    checkout = tmp_path / "repo"
    (checkout / "netdsl" / "frontend").mkdir(parents=True)
    (checkout / "grammars").mkdir()
    (checkout / "grammars" / "netdsl.lark").write_text(grammar)
    assert find_grammar(checkout / "netdsl" / "frontend" / "parser.py") == \
        checkout / "grammars" / "netdsl.lark"

    with pytest.raises(FileNotFoundError, match="netdsl grammar not found"):
        find_grammar(tmp_path / "nowhere" / "netdsl" / "frontend" / "parser.py")


def test_grammar_has_no_conflicts_in_strict_mode():
    pytest.importorskip("interegular")  # Lark's strict mode needs it
    parser = build_parser(strict=True, cache=False)
    assert parser.options.strict
