"""Wording of syntax errors: from a Lark exception to a `Diagnostic` a user can act on.

In order of preference:
1. a bracket that is never closed (or closed by the wrong bracket), reported at the opening
   bracket — the parser only notices it later, where the message would be confusing;
2. a labelled common mistake, recognised with `UnexpectedInput.match_examples` against the
   table MISTAKES of small wrong programs (same parser state ⇒ same mistake);
3. a few general rules (a keyword used as a name, a stray comma, the end of the file);
4. "unexpected X; expected Y", the expected tokens spelled as the user would type them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..errors import Diagnostic, did_you_mean
from ..source import Span
from .parser import (BINARY_OPERATORS, CLOSER_OF, CLOSERS, END_OF_FILE_POS, lark_parser,
                     lex)

DTYPE_HINT = "element types are f32, f64, f16, i32, i64, bool"
EXPRESSION_START = frozenset({"NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "PLUS", "MINUS",
                              "TRUE", "FALSE", "NONE", "SCAN"})
COMPARISONS = frozenset({"LT", "LE", "GT", "GE", "EQEQ", "NE"})
POSTFIX = frozenset({"LPAR", "LSQB", "DOT", "AS"})
ITEM_KEYWORDS = frozenset({"IMPORT", "CONST", "BLOCK", "MODEL", "TRAIN"})
REGEX_TERMINALS = {"NAME": "a name", "INT": "an integer", "FLOAT": "a number",
                   "STRING": "a string", "_NL": "end of line", "$END": "end of file"}


@dataclass(frozen=True)
class Mistake:
    """A labelled common mistake: the message (which may use {prev}, the text of the token
    before the error, and {token}), an optional hint, the error tokens it applies to (None:
    any), whether the caret goes on the previous token, and example programs that make it."""

    message: str
    hint: str | None
    tokens: frozenset[str] | None
    examples: tuple[str, ...]
    at_previous: bool = False


def _body(*lines: str) -> tuple[str, ...]:
    """Examples of statements inside a model body."""
    return tuple(f"model M {{\n    {line}\n}}\n" for line in lines)


MISTAKES: dict[str, Mistake] = {
    "top_level_statement": Mistake(
        "expected 'import', 'const', 'block', 'model' or 'train' at the top level", 
        "bindings, `in`, `out` and `loss` belong inside a model or block body", None,
        ("x = 3\n", "in x: f32[B]\n", "const A = 1\nx = 3\n", "import \"a.net\"\nx = 3\n",
         "block B {\n}\nx = 3\n", "model M {\n}\nout y\n", "train M {\n}\nx = 3\n")),
    "missing_in_or_param": Mistake(
        "missing 'in' or 'param' before '{prev}'",
        "an input is written `in x: f32[B, 10]`, a parameter `param w: f32[10] = zeros`",
        frozenset({"COLON"}), _body("x: f32[B]")),
    "missing_equals": Mistake(
        "expected '=' after '{prev}'", "a binding is written `name = expression`", None,
        _body("x relu(y)", "x 3", "a, b f(x)")
        + ("train T {\n    epochs 10\n}\n", "const N 3\n")),
    "missing_colon": Mistake(
        "expected ':' after '{prev}'",
        "the name and its type are separated by ':', as in `in x: f32[B, 10]` or `units: int`",
        None, _body("in x f32[B]", "param w f32[2] = zeros") + ("block B(n int) {\n}\n",)),
    "missing_element_type": Mistake(
        "missing element type before '['", DTYPE_HINT, frozenset({"LSQB"}),
        _body("in x: [B]", "param w: [2] = zeros")),
    "missing_shape": Mistake(
        "expected '[' after the element type '{prev}'",
        "the dimensions follow the element type in brackets, as in f32[B, 10]; "
        "a scalar is f32[]", None, _body("in x: f32", "param w: f32 = zeros")),
    "colon_keyword_argument": Mistake(
        "keyword arguments are written with '=', not ':'", "write {prev}=value",
        frozenset({"COLON"}), _body("y = Dense(10, act: relu)", "y = Dense(units: 10)")),
    "keyword_as_name": Mistake(
        "'{prev}' is a keyword and cannot be used as a name", "choose another name",
        frozenset({"EQUAL", "COMMA"}),
        _body("loss = 1", "out = 1", "in = 1", "param = 1")
        + ("model = 1\n", "block = 1\n", "train = 1\n", "const = 1\n"), at_previous=True),
    "stray_comma": Mistake(
        "stray ','", "remove the extra comma", frozenset({"COMMA"}),
        _body("y = f(,a)", "y = f(a,,b)", "y = [,]", "y = [a,,b]", "y = (,)", "y = (a,,)",
              "y = x[,1]", "y = x[1,,2]", "in x: f32[,]", "in x: f32[B,,2]", "y, , z = f(x)")
        + ("block B(,) {\n}\n", "block B(a: int,,) {\n}\n")),
    "trailing_comma": Mistake(
        "unexpected ',' after the end of the statement",
        "a tuple is written in parentheses, (a, b); several outputs are several `out` lines",
        frozenset({"COMMA"}),
        _body("y = f(a),", "y = a,", "out y, z", "out f(y), z", "out y = a, b", "loss y, z",
              "loss f(y), z", "loss l = a, b") + ("const N = 1,\n", "train T {\n  f(x),\n}\n",
                                                  "train T {\n    epochs = 1,\n}\n")),
    "missing_open_brace": Mistake(
        "expected '{{' after '{prev}'", "a body is written in braces: model Name {{ ... }}",
        None, ("model M:\n", "model M\n    x = 1\n", "block B(n: int):\n", "block B:\n",
               "train T:\n", "train T\n    epochs = 1\n", "block B(n: int) x\n")),
}


# ---- entry point -----------------------------------------------------------------------------


def describe(error: UnexpectedInput, text: str, file: str) -> tuple[Diagnostic, bool]:
    """The diagnostic for a Lark error in `text`, and whether parsing may safely go on
    after skipping the statement that holds it."""
    if isinstance(error, UnexpectedCharacters):
        return _bad_character(error, text, file), True
    if not isinstance(error, UnexpectedToken):  # not raised by the LALR parser; be safe
        line, column = max(getattr(error, "line", 1), 1), max(getattr(error, "column", 1), 1)
        return Diagnostic("syntax error", Span(file, line, column, line, column + 1)), False
    tokens = lex(text)
    bracket = _bracket_problem(tokens, error.token, file)
    if bracket is not None:
        return bracket
    previous = _previous_token(tokens, error.token)
    at_end = _is_end_of_file(error.token)
    label = None if at_end else match_mistake(error)
    if label is not None:
        mistake = MISTAKES[label]
        values = {"prev": str(previous) if previous else "", "token": str(error.token)}
        span = _token_span(file, previous if mistake.at_previous and previous else error.token)
        hint = _misspelt_keyword(label, error.token, previous) or (
            mistake.hint.format(**values) if mistake.hint else None)
        return Diagnostic(mistake.message.format(**values), span, hint), True
    return _general(error, file, previous), not at_end


def match_mistake(error: UnexpectedToken) -> str | None:
    """The label in MISTAKES whose examples fail in the same parser state, if any.

    First Lark's match_examples, which compares the parser state *and the stack depth* (so
    an example only matches at its own nesting level); then the same test on the state at the
    top of the stack and the set of acceptable tokens alone, so that one example covers the
    mistake however deeply it is nested (`y = f(a: 1)` and `y = x |> f(a: 1)` alike).
    """
    candidates = [(label, mistake) for label, mistake in MISTAKES.items()
                  if mistake.tokens is None or error.token.type in mistake.tokens]
    for label, mistake in candidates:
        if error.match_examples(_example_error, {label: mistake.examples}) is not None:
            return label
    for label, mistake in candidates:
        for example in mistake.examples:
            failure = _example_failure(example)
            if (isinstance(failure, UnexpectedToken)
                    and failure.state.position == error.state.position
                    and set(failure.accepts) == set(error.accepts)):
                return label
    return None


@lru_cache(maxsize=None)
def _example_failure(example: str) -> UnexpectedInput | None:
    try:
        lark_parser().parse(example)
    except UnexpectedInput as failure:
        return failure
    return None


def _example_error(example: str) -> None:
    """match_examples's parse function; each example is parsed once per process."""
    failure = _example_failure(example)
    if failure is not None:
        raise failure.with_traceback(None)


def _misspelt_keyword(label: str, token: Token, previous: Token | None) -> str | None:
    """`did you mean 'model'?` for `modle M {`, and `did you mean 'in'?` for `inn x: f32[B]`."""
    if label == "top_level_statement" and token.type == "NAME":
        return did_you_mean(str(token), ["import", "const", "block", "model", "train"])
    if label == "missing_equals" and previous is not None and previous.type == "NAME":
        return did_you_mean(str(previous), ["in", "param", "out", "loss"])
    return None


# ---- the cases -------------------------------------------------------------------------------


def _bad_character(error: UnexpectedCharacters, text: str, file: str) -> Diagnostic:
    char = text[error.pos_in_stream]
    span = Span(file, error.line, error.column, error.line, error.column + 1)
    if char == '"':
        line_end = text.find("\n", error.pos_in_stream)
        length = (len(text) if line_end < 0 else line_end) - error.pos_in_stream
        span = Span(file, error.line, error.column, error.line, error.column + length)
        return Diagnostic("string is never closed", span, 'add the closing \'"\'')
    if char == "'":
        return Diagnostic("unexpected character \"'\"", span,
                          'strings are written in double quotes: "text"')
    return Diagnostic(f"unexpected character {char!r}", span)


def _bracket_problem(tokens: list[Token], at: Token,
                     file: str) -> tuple[Diagnostic, bool] | None:
    """An unclosed, stray or mismatched bracket that explains the error at token `at`, and
    whether parsing may go on after it (only after a stray ')' or ']')."""
    position = at.start_pos
    stack: list[Token] = []
    for token in tokens:
        if token.type in CLOSER_OF:
            stack.append(token)
            continue
        if token.type not in CLOSERS:
            continue
        if stack and CLOSER_OF[stack[-1].type] == token.type:
            stack.pop()
            continue
        if token.type != "RBRACE" and (not stack or stack[-1].type == "LBRACE"):
            # A stray ')' or ']': it explains the error only where the parser stopped on it.
            if token.start_pos == position:
                return Diagnostic(f"unmatched '{token}'", _token_span(file, token)), True
            continue
        if not stack:  # a stray '}'
            if token.start_pos == position and at.type != "_NL":
                return Diagnostic(f"unmatched '{token}'", _token_span(file, token)), False
            return None
        opener = stack[-1]
        if token.start_pos == position and token.type != "RBRACE" and token.line == opener.line:
            return Diagnostic(f"'{token}' does not match '{opener}'", _token_span(file, token),
                              f"the '{opener}' is at column {opener.column}"), False
        if opener.start_pos < position <= token.start_pos:
            return _never_closed(opener, file), False
        return None
    for opener in reversed(stack):
        if opener.start_pos >= position:
            continue
        if opener.type == "LBRACE":
            if _is_end_of_file(at) or at.type in ITEM_KEYWORDS:
                return _never_closed(opener, file), False
        elif _is_end_of_file(at) or at.line > opener.line:
            return _never_closed(opener, file), False
        return None
    return None


def _never_closed(opener: Token, file: str) -> Diagnostic:
    closer = {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}[opener.type]
    return Diagnostic(f"'{opener}' is never closed", _token_span(file, opener),
                      f"add the matching '{closer}'")


def _general(error: UnexpectedToken, file: str, previous: Token | None) -> Diagnostic:
    token = error.token
    expected = set(error.accepts or error.expected)
    span = _token_span(file, token)
    if token.type == "YIELD":
        return Diagnostic("'yield' is only allowed at the end of a scan body", span)
    if expected and expected <= ITEM_KEYWORDS | {"$END"}:
        return Diagnostic(MISTAKES["top_level_statement"].message, span,
                          _misspelt_keyword("top_level_statement", token, None)
                          or MISTAKES["top_level_statement"].hint)
    # A keyword first on its line more likely starts a new statement after an unfinished line
    # than stands for a name.
    starts_line = previous is not None and previous.end_line < token.line
    if token.type in _keywords() and "NAME" in expected and not starts_line:
        return Diagnostic(f"'{token}' is a keyword and cannot be used as a name", span,
                          "choose another name")
    if token.type in COMPARISONS and not expected & COMPARISONS and "PLUS" in expected:
        return Diagnostic("comparisons cannot be chained", span,
                          "bracket one comparison, as in (a < b) == c, if that is meant")
    if token.type == "_NL" and previous is not None and previous.type == "COMMA":
        return Diagnostic("trailing ',' at the end of the line", _token_span(file, previous),
                          "remove it, or go on with the next item on the next line")
    if token.type == "COMMA" and "_NL" in expected:
        return Diagnostic("unexpected ',' after the end of the statement", span,
                          MISTAKES["trailing_comma"].hint)
    if token.type == "COMMA" and expected & EXPRESSION_START:
        return Diagnostic("stray ','", span, "remove the extra comma")
    return Diagnostic(f"unexpected {describe_token(token)}; {expected_text(expected)}", span)


# ---- spelling tokens -------------------------------------------------------------------------


def describe_token(token: Token) -> str:
    """How the error message names the token found: `name 'x'`, `')'`, `end of line`."""
    if _is_end_of_file(token):
        return "end of file"
    if token.type == "_NL":
        return "end of line" if token.value else "'}'"  # inserted newlines come before '}'
    if token.type == "NAME":
        return f"name '{token}'"
    if token.type in ("INT", "FLOAT"):
        return f"number {token}"
    if token.type == "STRING":
        return f"string {token}"
    if token.type in _keywords():
        return f"keyword '{token}'"
    return f"'{token}'"


def expected_text(expected: set[str]) -> str:
    """`expected X`, `expected X or Y`, `expected one of X, Y, Z`, with token sets spelled as
    the user writes them and the usual groups collapsed ("an expression", "an operator")."""
    expected = set(expected)
    words: list[str] = []
    if {"NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "MINUS"} <= expected:
        expected -= EXPRESSION_START
        words.append("an expression")
    if len(expected & BINARY_OPERATORS) >= 5:
        expected -= BINARY_OPERATORS | POSTFIX
        words.append("an operator")
    rest = sorted(_spell(name) for name in expected if name != "_NL" and name != "$END")
    words += [w for w in rest if not w.startswith("'")] + [w for w in rest if w.startswith("'")]
    if "_NL" in expected:
        words.append("end of line")
    elif "$END" in expected:
        words.append("end of file")
    if not words:
        return "nothing can follow here"
    if len(words) == 1:
        return f"expected {words[0]}"
    if len(words) == 2:
        return f"expected {words[0]} or {words[1]}"
    return "expected one of " + ", ".join(words)


def _spell(name: str) -> str:
    if name in REGEX_TERMINALS:
        return REGEX_TERMINALS[name]
    pattern = lark_parser().get_terminal(name).pattern
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


@lru_cache(maxsize=None)
def _keywords() -> frozenset[str]:
    """Terminal names of the reserved words (string terminals that look like names)."""
    return frozenset(t.name for t in lark_parser().terminals
                     if t.pattern.type == "str" and t.pattern.value.isidentifier())


def _is_end_of_file(token: Token) -> bool:
    return token.type == "$END" or (
        token.type == "_NL" and (token.start_pos or 0) >= END_OF_FILE_POS)


def _previous_token(tokens: list[Token], at: Token) -> Token | None:
    """The last real (non-newline) token before `at`."""
    position = END_OF_FILE_POS if at.start_pos is None else at.start_pos
    before = [t for t in tokens if t.type != "_NL" and t.start_pos < position]
    return before[-1] if before else None


def _token_span(file: str, token: Token) -> Span:
    if token.type in ("_NL", "$END"):
        # A newline: the caret goes just past the end of the line (or on the '}' it precedes).
        return Span(file, token.line, token.column, token.line, token.column + 1)
    return Span(file, token.line, token.column, token.end_line, token.end_column)
