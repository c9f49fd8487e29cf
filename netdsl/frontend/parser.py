"""Text → AST: the Lark LALR parser, the newline postlexer, and syntax-error reporting.

`parse(text, file)` returns an `ast.Module` or raises `netdsl.errors.Error` listing every
syntax error it found.  After an error the parser blanks out the offending statement (keeping
line and column numbers) and parses again, so independent mistakes in one file are reported
together; it stops at errors that leave the block structure in doubt (an unclosed bracket, a
broken header), where going on would only produce noise.  How each error is worded lives in
`syntax_errors.py`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

from ..errors import Diagnostic, Error
from ..source import Span, read_source, register_source
from . import ast
from .grammar_file import GRAMMAR_FILE, find_grammar, grammar_candidates  # noqa: F401
from .limits import MAX_NESTING
from .transform import ToAst

MAX_ERRORS = 20
# Each recovery re-parses the whole text: after this many characters re-parsed, recovery stops
# (a 100 KB file with 20 syntax errors would otherwise be parsed 20 times over).
RECOVERY_CHARACTERS = 200_000

# ---- newlines --------------------------------------------------------------------------------

BINARY_OPERATORS = frozenset({"PIPE", "PLUS", "MINUS", "STAR", "SLASH", "DSLASH", "PERCENT",
                              "AT", "POW", "LT", "LE", "GT", "GE", "EQEQ", "NE"})
# A line starting with one of these continues the previous line.  `-` is included: a line
# `- x` after a complete statement is read as a subtraction continuing it, never as a new
# statement, because no statement can start with `-` (statements start with a keyword or a
# name).  `{` is included so that a body's brace may go on the next line (`model M` / `{`).
CONTINUE_BEFORE = BINARY_OPERATORS | {"LBRACE"}
CLOSER_OF = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
CLOSERS = frozenset(CLOSER_OF.values())
# start_pos of the newline inserted at the end of the file: past any real position.
END_OF_FILE_POS = 10**12


class NewlineFilter(PostLex):
    """Turns raw newlines into statement terminators.

    Drops a newline: inside () or [] (but not inside a {} body nested in them); after a binary
    operator; before a line that starts with one (CONTINUE_BEFORE); after a comma, unless the
    next line is `}` (so `with h = zeros([B, H]),` may go on with `c = ...` on the next line,
    while `yield h,` before `}` is still reported at the comma); right after `{`; at the start
    of the file; after another newline.  Inserts an empty newline token before every `}` that
    follows a statement, and one at the end of the file (start_pos END_OF_FILE_POS), so that in
    the grammar every statement and item is followed by exactly one _NL.
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return limit_nesting(self.statement_ends(stream))

    def statement_ends(self, stream: Iterator[Token]) -> Iterator[Token]:
        """The newline filtering described above."""
        open_brackets: list[str] = []  # types of the brackets open at this point
        last: Token | None = None      # the last token passed on
        pending: Token | None = None   # a newline waiting to see what the next line starts with
        for token in stream:
            kind = token.type
            if kind == "_NL":
                inside_expression = open_brackets and open_brackets[-1] != "LBRACE"
                if not (inside_expression or last is None or last.type in ("_NL", "LBRACE")
                        or last.type in BINARY_OPERATORS or pending is not None):
                    pending = token
                continue
            if pending is not None:
                after_comma = last is not None and last.type == "COMMA" and kind != "RBRACE"
                if not (kind in CONTINUE_BEFORE or after_comma):
                    yield pending
                    last = pending
                pending = None
            if kind == "RBRACE" and last is not None and last.type not in ("_NL", "LBRACE"):
                last = Token.new_borrow_pos("_NL", "", token)
                yield last
            if kind in CLOSER_OF:
                open_brackets.append(kind)
            elif kind in CLOSERS and open_brackets and CLOSER_OF[open_brackets[-1]] == kind:
                open_brackets.pop()
            yield token
            last = token
        # A newline still pending at the end is replaced by the end-of-file one.
        if last is not None and last.type != "_NL":
            yield end_of_file_token(last)


# ---- nesting -------------------------------------------------------------------------------

# Tokens that end an operand: a `(` or `[` right after one is a call or an index (a postfix
# operation on what came before), not a new bracketed expression.
OPERAND_ENDS = frozenset({"NAME", "INT", "FLOAT", "STRING", "TRUE", "FALSE", "NONE", "RPAR",
                          "RSQB"})
NESTING_OPERATORS = BINARY_OPERATORS | {"DOT", "AS"}


class NestingError(Error):
    """An expression nested deeper than MAX_NESTING (raised by the postlexer)."""


def limit_nesting(stream: Iterator[Token]) -> Iterator[Token]:
    """Pass the tokens on, refusing an expression nested more than MAX_NESTING levels deep.

    The parse tree, the AST transformer and the lowering all recurse on an expression's depth,
    so the depth is bounded here, before any of them runs, with an error at the token that goes
    too deep.  The depth at a token is an upper bound of its depth in the parse tree: one level
    per open bracket, plus one per operator (binary or unary, `|>`, `.`, `as`, a call's or an
    index's bracket) since the last comma or statement end inside each open bracket.
    """
    levels = [0]            # operators counted in each open bracket (the statement level first)
    depth = 0               # len(levels) - 1 + sum(levels), kept up to date
    previous: str | None = None
    for token in stream:
        kind = token.type
        if kind in CLOSER_OF:
            if kind != "LBRACE" and previous in OPERAND_ENDS:
                levels[-1] += 1                 # f(...) or x[...]: a postfix operation
                depth += 1
            levels.append(0)
            depth += 1
        elif kind in CLOSERS:
            if len(levels) > 1:
                depth -= levels.pop() + 1
        elif kind in ("COMMA", "_NL"):
            depth -= levels[-1]
            levels[-1] = 0
        elif kind in NESTING_OPERATORS:
            levels[-1] += 1
            depth += 1
        if depth > MAX_NESTING:
            span = Span("", token.line, token.column, token.end_line, token.end_column)
            raise NestingError(Diagnostic(
                f"this expression is nested too deeply (more than {MAX_NESTING} levels of "
                f"brackets and operators)", span,
                "bind parts of it to names (`h = ...`) and build on those"))
        previous = kind
        yield token


def end_of_file_token(last: Token) -> Token:
    """The newline inserted at the end of the file, placed just after the last token.  Its
    value is not empty because Lark places its $END token on the last token only when that
    token is truthy."""
    return Token("_NL", "<end of file>", start_pos=END_OF_FILE_POS, line=last.end_line,
                 column=last.end_column, end_line=last.end_line,
                 end_column=last.end_column + 1, end_pos=END_OF_FILE_POS)


# ---- the parser ------------------------------------------------------------------------------

_PARSER: Lark | None = None


def build_parser(strict: bool | None = None, cache: bool = True) -> Lark:
    """A new Lark parser for the grammar; strict (conflicts and regex collisions are errors)
    whenever the `interegular` package that Lark needs for it is installed."""
    if strict is None:
        try:
            import interegular  # noqa: F401
            strict = True
        except ImportError:
            strict = False
    grammar = find_grammar().read_text(encoding="utf-8")
    options = dict(parser="lalr", lexer="basic", strict=strict, maybe_placeholders=True)
    load_options = dict(propagate_positions=True, postlex=NewlineFilter())
    if not cache:
        return Lark(grammar, **options, **load_options)
    # Never Lark's cache=True: it loads a pickle from the shared temporary directory, which any
    # local user can plant.  The tables are JSON in the user's own cache directory instead
    # (~0.7 s to build in a fresh process, ~40 ms to load; measurements in lark_tables.py).
    from .lark_tables import cached_lark
    return cached_lark(grammar, options, load_options)


def lark_parser() -> Lark:
    """The parser, built once per process."""
    global _PARSER
    if _PARSER is None:
        _PARSER = build_parser()
    return _PARSER


def parse_file(path: str | Path) -> ast.Module:
    """Parse a .net file; its text is registered so that errors can quote it.  Raises
    SourceError (nothing of the file quoted) when it is not a regular UTF-8 file within the
    size limit."""
    name, text = read_source(path)
    return parse(text, name)


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse the text of a .net file; raises netdsl.errors.Error with every syntax error."""
    from .syntax_errors import describe  # imported late: it imports this module

    register_source(file, text)
    problems: list[Diagnostic] = []
    blanked_lines: set[int] = set()
    current, tree, last_position = text, None, -1
    reparsed = 0
    for _ in range(MAX_ERRORS):
        try:
            tree = lark_parser().parse(current)
            break
        except NestingError as error:           # no way to go on: the depth is the problem
            problems.extend(_in_file(d, file) for d in error.diagnostics)
            break
        except UnexpectedInput as error:
            position = error_position(error)
            if position <= last_position:  # no progress: stop rather than loop
                break
            last_position = position
            diagnostic, recoverable = describe(error, current, file)
            problems.append(diagnostic)
            segment = statement_around(error, current) if recoverable else None
            reparsed += len(current)
            if segment is None or reparsed > RECOVERY_CHARACTERS:
                break
            first_line = current.count("\n", 0, segment[0]) + 1
            blanked_lines.update(range(first_line, first_line + current.count(
                "\n", segment[0], segment[1]) + 1))
            current = blank(current, *segment)
    items: tuple[ast.Item, ...] = ()
    if tree is not None:
        builder = ToAst(file)
        items = builder.transform(tree)
        # A problem around a blanked statement (a scan body whose `yield` had a syntax error
        # now has no yield) is an echo of the syntax error, not a mistake of its own.
        problems.extend(d for d in builder.problems
                        if not blanked_lines & set(range(d.span.line, d.span.end_line + 1)))
    if problems:
        problems.sort(key=lambda d: (d.span.line, d.span.column) if d.span else (0, 0))
        raise Error(problems)
    lines = text.splitlines() or [""]
    span = Span(file, 1, 1, len(lines), len(lines[-1]) + 1)
    return ast.Module(tuple(items), file, span=span)


def _in_file(diagnostic: Diagnostic, file: str) -> Diagnostic:
    span = diagnostic.span
    if span is not None:
        diagnostic.span = Span(file, span.line, span.column, span.end_line, span.end_column)
    return diagnostic


# ---- recovery --------------------------------------------------------------------------------


def error_position(error: UnexpectedInput) -> int:
    """Where in the text an error is (character offset)."""
    if isinstance(error, UnexpectedToken):
        start = error.token.start_pos
        return END_OF_FILE_POS if start is None else start
    return error.pos_in_stream


def lex(text: str) -> list[Token]:
    """The tokens the parser sees (after the newline filter), up to a lexing error if any.
    The last text's tokens are kept: describing one error lexes the same text twice."""
    global _LEXED
    if _LEXED is not None and _LEXED[0] == text:
        return list(_LEXED[1])
    tokens: list[Token] = []
    try:
        for token in lark_parser().lex(text):
            tokens.append(token)
    except (UnexpectedCharacters, NestingError):
        pass
    _LEXED = (text, tokens)
    return list(tokens)


_LEXED: tuple[str, list[Token]] | None = None


def statement_around(error: UnexpectedInput, text: str) -> tuple[int, int] | None:
    """The character range of the statement holding the error, if blanking it out is safe.

    A statement runs from the newline or brace before the error to the newline after it.
    Blanking is unsafe (None) when the statement ends at a brace or starts a block, model or
    train section: removing it would unbalance the braces and produce a cascade of errors.
    """
    position = error_position(error)
    probe = text
    if isinstance(error, UnexpectedCharacters):
        # Lex past the bad character to find where its statement ends.
        line_end = text.find("\n", position)
        end = len(text) if line_end < 0 else line_end
        cut = end if text[position] == '"' else position + 1  # unterminated string: whole rest
        probe = text[:position] + " " * (cut - position) + text[cut:]
    tokens = lex(probe)
    if isinstance(error, UnexpectedCharacters) and not tokens:
        return None
    boundaries = [t for t in tokens if t.type in ("_NL", "LBRACE", "RBRACE")]
    before = [t for t in boundaries if t.start_pos < position]
    after = [t for t in boundaries if t.start_pos >= position]
    if not after or after[0].type != "_NL" or after[0].start_pos >= END_OF_FILE_POS:
        return None
    start = before[-1].end_pos if before else 0
    end = after[0].start_pos
    first = next((t for t in tokens if start <= t.start_pos < end), None)
    if first is None or first.type in ("BLOCK", "MODEL", "TRAIN"):
        return None
    return start, end


def blank(text: str, start: int, end: int) -> str:
    """text with [start, end) replaced by spaces, line breaks kept (so positions stay)."""
    middle = "".join(c if c in "\r\n" else " " for c in text[start:end])
    return text[:start] + middle + text[end:]
