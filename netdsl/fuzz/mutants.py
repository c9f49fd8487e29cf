"""The programs the front-end fuzzer checks: a corpus of valid programs and their mutants.

The corpus is examples/*.net, the tests' .net files, the standard library, a few built-in seeds
covering the syntax, and programs of netdsl.fuzz.generate.  `mutant(seed, index, texts)` mutates
one of them at the token and the character level (see netdsl/fuzz/frontend.py for the list) and
says which mutations it applied; the same (seed, index) always gives the same program.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# ---- the corpus ------------------------------------------------------------------------------

SEEDS = [
    '''const HIDDEN = 2 * 8
const RATE = 1e-3
block Unit(width: int, gain: float = 1.0, act: bool = true) {
    in x: f32[B, D]
    param scale: f32[width] = ones
    h = x |> Dense(width, init=normal(0.02)) as proj
    out where(act, relu(h) * scale * gain, h)
}
model M {
    in x: f32[B, 4]
    in y: i64[B]
    enc = Dense(HIDDEN)
    a = x |> enc |> relu
    b = (x |> enc) + a[:, 0:HIDDEN] * 0.5
    c = b |> repeat(3, Unit(HIDDEN)) as trunk |> LayerNorm |> Dropout(0.1)
    logits = c |> Dense(3, bias=false)
    out p = softmax(logits, axis=-1)
    out w = enc.weight
    loss cross_entropy(logits, y, weights=[1.0, 2.0, 0.5]) + 0.01 * l2(enc.weight)
}
train M {
    data = "data.npz"
    batch = 8
    optimizer = Adam(lr=RATE)
    early_stopping(patience=2, monitor=val_loss)
    metrics = [accuracy, f1]
}
''',
    '''block Elman(hidden: int) {
    in    x: f32[B, T, D]
    param wx: f32[D, hidden] = xavier
    param wh: f32[hidden, hidden] = orthogonal
    param b:  f32[hidden] = zeros
    hs, h_last = scan x over 1 with h = zeros([B, hidden]) {
        h = tanh(x_t @ wx + h @ wh + b)
        yield h
    }
    out hs
    out h_last
}
model Seq {
    in x: f32[B, 5, 3]
    in t: f32[B, 4]
    hs, last = x |> Elman(4)
    m = mean(hs, axis=[1, 2], keepdims=true)
    e = reshape(hs, [B, -1]) |> Dense(4) |> gelu(approximate="tanh")
    out o = concat([e, last], axis=1) |> leaky_relu(alpha=0.2)
    loss mse(last, t) + mean(square(m))
}
''',
    '''model Img {
    in image: f32[B, 1, 8, 8]
    in label: i64[B]
    in mask: bool[B, 10]
    h = image |> Conv2D(4, kernel=3, padding="same") |> relu |> MaxPool(2)
        |> Conv2D(8, kernel=[3, 3], stride=1, padding=1) |> AvgPool(2, stride=2)
        |> Flatten |> Dense(10) as head
    n = normal([B, 10], std=0.1) + uniform([B, 10], low=-1, high=1)
    z = where(mask, h + n, 0.0)
    out probs = softmax(z)
    out s = sum(z, axis=1) / 10 - max(z, axis=-1) ** 2
    loss d_loss = focal(z, label, gamma=2) wrt head
    loss bce(sigmoid(z), one_hot(label, 10)) + kl_normal(h, z * 0.5)
}
''',
    '''model Emb {
    in ids: i64[B, 6]
    e = ids |> Embedding(50, 8) |> RNN(8, return_sequences=true)
    f = transpose(e, [0, 2, 1])[..., -1]
    g = stop_gradient(e[:, ::2, :]) |> GlobalAvgPool
    out y = cast(f, "f64") |> exp |> log |> sqrt |> abs
    out k = argmax(g, axis=-1)
}
''',
]


def corpus(generated: int = 200) -> list[str]:
    """The valid programs mutations start from."""
    texts = list(SEEDS)
    for pattern in ("examples/*.net", "tests/**/*.net", "netdsl/layers/stdlib/*.net"):
        for path in sorted(ROOT.glob(pattern)):
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                pass
    from .generate import generate
    texts += [generate(seed).text() for seed in range(generated)]
    return texts


# ---- tokens and mutations --------------------------------------------------------------------

TOKEN = re.compile(r'''(?P<space>[ \t]+)|(?P<newline>\r?\n)|(?P<comment>\#[^\n]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*")
    |(?P<number>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_]\w*)
    |(?P<op>\|>|\*\*|//|<=|>=|==|!=|\.\.\.|[-+*/%@<>=(){}\[\],:.])|(?P<other>.)''',
                   re.S | re.X)

NUMBERS = ["0", "-1", "1", "2.5", "-5", "0.0", "1e-3", "-0.5", "3", "7", "1000", "65536",
           "2147483647", "2147483648", "9223372036854775807", "9223372036854775808",
           "10**30", "2**40", "10 ** 10 ** 10", "7 ** 100000000", "1e308", "1e999", "-1e999",
           "1e-999", "9" * 30, "9" * 4301, "0x10", "00", "1.", ".5", "1e", "2 ** -1",
           "(1/0)", "(0 % 0)", '"4"', "true", "none", "[3, 3, 3]", "[]", "-2147483649",
           "999", "1001", "100000"]
STRINGS = ['"/dev/zero"', '"/etc/passwd"', '"/proc/self/environ"', '""', '"."', '".."',
           '"a\\x00b.net"', '"x.net"', '"same"', '"valid"', '"f99"', '"f16"', '"bool"',
           '"\\q"', '"' + "a" * 5000 + '"', '"lib.net"', '"\\u00e9"', '"tanh"', '"none"']
DTYPES = ["f32", "f64", "f16", "i32", "i64", "bool", "float32", "int", "f8", "B"]
NAMES = ["Dense", "Conv2D", "MaxPool", "AvgPool", "Flatten", "LayerNorm", "Dropout",
         "Embedding", "GlobalAvgPool", "RNN", "relu", "softmax", "concat", "one_hot", "sum",
         "mean", "max", "reshape", "transpose", "where", "zeros", "ones", "normal", "uniform",
         "leaky_relu", "cross_entropy", "bce", "mse", "focal", "kl_normal", "repeat", "orthogonal",
         "he", "xavier", "constant", "stop_gradient", "cast", "argmax", "clip", "l2", "B", "T",
         "x", "y", "in", "out", "loss", "param", "block", "model", "train", "scan", "yield",
         "with", "over", "as", "wrt", "import", "const", "true", "false", "none", "x_t"]
OPERATORS = ["|>", "**", "//", "<=", ">=", "==", "!=", "...", "-", "+", "*", "/", "%", "@",
             "<", ">", "=", "(", ")", "{", "}", "[", "]", ",", ":", "."]
NESTING = [50, 99, 100, 101, 150, 250, 500, 1000, 5000]


def tokenize(text: str) -> list[tuple[str, str]]:
    return [(m.lastgroup, m.group()) for m in TOKEN.finditer(text)]


def _join(tokens) -> str:
    return "".join(value for _, value in tokens)


def _pick(rng: random.Random, tokens, kinds=None) -> int | None:
    places = [i for i, (kind, _) in enumerate(tokens)
              if (kinds is None and kind not in ("space", "newline")) or
              (kinds is not None and kind in kinds)]
    return rng.choice(places) if places else None


def _near_miss(rng: random.Random, name: str) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"
    i = rng.randrange(len(name))
    choice = rng.randrange(5)
    if choice == 0 and len(name) > 1:
        return name[:i] + name[i + 1:]
    if choice == 1:
        return name[:i] + rng.choice(letters) + name[i:]
    if choice == 2 and len(name) > 1:
        j = min(i + 1, len(name) - 1)
        return name[:i] + name[j] + name[i] + name[j + 1:] if j != i else name + "x"
    if choice == 3:
        return name.swapcase()
    return name[:i] + rng.choice(letters) + name[i + 1:]


def mutate_tokens(rng: random.Random, text: str, other: str) -> tuple[str, str]:
    """One mutation of `text` (`other` is another corpus program to splice from): the new
    text and what was done."""
    tokens = tokenize(text)
    what = rng.choice(["delete", "duplicate", "swap", "number", "number", "name", "name",
                       "operator", "string", "dtype", "nesting", "chain", "bytes", "truncate",
                       "line", "splice", "recursion", "repeat", "errors", "huge_line"])
    at = _pick(rng, tokens)
    if at is None:
        return text + "x", "append"
    kind, value = tokens[at]
    if what == "delete":
        del tokens[at]
    elif what == "duplicate":
        tokens.insert(at, (kind, value))
    elif what == "swap":
        other_at = _pick(rng, tokens)
        tokens[at], tokens[other_at] = tokens[other_at], tokens[at]
    elif what == "number":
        place = _pick(rng, tokens, ("number",))
        if place is not None:
            tokens[place] = ("number", rng.choice(NUMBERS))
    elif what == "name":
        place = _pick(rng, tokens, ("name",))
        if place is not None:
            name = tokens[place][1]
            tokens[place] = ("name", _near_miss(rng, name) if rng.random() < 0.5
                             else rng.choice(NAMES + [v for k, v in tokens if k == "name"]))
    elif what == "operator":
        place = _pick(rng, tokens, ("op",))
        if place is not None:
            tokens[place] = ("op", rng.choice(OPERATORS))
    elif what == "string":
        place = _pick(rng, tokens, ("string",))
        if place is not None:
            tokens[place] = ("string", rng.choice(STRINGS))
        else:
            tokens.insert(0, ("string", f"import {rng.choice(STRINGS)}\n"))
    elif what == "dtype":
        places = [i for i, (k, v) in enumerate(tokens) if v in ("f32", "i64", "f64", "bool")]
        if places:
            tokens[rng.choice(places)] = ("name", rng.choice(DTYPES))
    elif what == "nesting":
        place = _pick(rng, tokens, ("name", "number"))
        if place is not None:
            depth = rng.choice(NESTING)
            opener, closer = rng.choice([("(", ")"), ("[", "]"), ("relu(", ")"), ("-", ""),
                                         ("f(", ")"), ("[1, ", "]"), ("(1 + ", ")")])
            tokens[place] = ("op", opener * depth + tokens[place][1] + closer * depth)
    elif what == "chain":
        place = _pick(rng, tokens, ("name",))
        if place is not None:
            link = rng.choice([" |> relu", " + 1", " * x", "[0]", ".weight", " as a", " ** 1",
                               "(x)", "\n    |> relu"])
            tokens[place] = ("op", tokens[place][1] + link * rng.choice(NESTING))
    elif what == "bytes":
        junk = rng.choice([b"\x00", b"\xff\xfe", b"\x80", b"\xc3", b"\r", b"\x0c", b"\t",
                           "\u2028".encode(), "\U0001f600".encode(), bytes([rng.randrange(256)])])
        data = text.encode("utf-8", "surrogateescape")
        cut = rng.randrange(len(data) + 1)
        return (data[:cut] + junk + data[cut:]).decode("utf-8", "surrogateescape"), "bytes"
    elif what == "truncate":
        return text[:rng.randrange(len(text) + 1)], "truncate"
    elif what == "line":
        lines, other_lines = text.split("\n"), other.split("\n")
        i = rng.randrange(len(lines))
        choice = rng.randrange(4)
        if choice == 0:
            del lines[i]
        elif choice == 1:
            lines.insert(i, lines[i])
        elif choice == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines.insert(i, rng.choice(other_lines))
        return "\n".join(lines), f"line{choice}"
    elif what == "splice":
        other_tokens = tokenize(other)
        start = rng.randrange(len(other_tokens) + 1)
        piece = other_tokens[start:start + rng.randrange(1, 30)]
        tokens[at:at + rng.randrange(0, 10)] = piece
    elif what == "recursion":
        blocks = [tokens[i + 2][1] for i, (k, v) in enumerate(tokens[:-2])
                  if v == "block" and tokens[i + 2][0] == "name"]
        names = [i for i, (k, v) in enumerate(tokens) if k == "name" and v[:1].isupper()]
        if blocks and names:
            tokens[rng.choice(names)] = ("name", rng.choice(blocks))
    elif what == "repeat":
        places = [i for i, (k, v) in enumerate(tokens) if k == "name" and v[:1].isupper()
                  and i + 1 < len(tokens) and tokens[i + 1][1] == "("]
        if places:
            i = rng.choice(places)
            tokens[i] = ("name", f"repeat({rng.choice(NUMBERS)}, {tokens[i][1]}")
            depth, j = 0, i + 1
            while j < len(tokens):
                depth += {"(": 1, ")": -1}.get(tokens[j][1], 0)
                if depth == 0:
                    tokens.insert(j + 1, ("op", ")"))
                    break
                j += 1
    elif what == "errors":
        count = rng.choice([30, 300, 600])
        body = "".join(f"    e{i} = unknown{i} + Nope{i}(1)\n" for i in range(count))
        return text.replace("{\n", "{\n" + body, 1), "errors"
    elif what == "huge_line":
        return text.replace("\n", "\n" + "# " + "x" * 200000 + "\n", 1) + \
            "z" * rng.choice([10, 100000]), "huge_line"
    return _join(tokens), what


def mutant(seed: int, index: int, texts: list[str]) -> tuple[str, list[str]]:
    """Program `index` of a campaign: 1 to 3 mutations of a corpus program."""
    rng = random.Random(seed * 1_000_003 + index)
    text = rng.choice(texts)
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        text, what = mutate_tokens(rng, text, rng.choice(texts))
        done.append(what)
    return text, done
