"""How diagrams look: colours, shapes and fonts per category, and the HTML-like node labels.

Every visual decision of `netdsl render` lives here, so the three levels (layers, ops, kernels)
and both back ends (Graphviz, Mermaid) share one look: rounded boxes, one pastel fill per layer
category with a darker border of the same hue, the kind in bold, then the scoped name, the key
arguments, the output shape and the parameter count in smaller type.
"""
from __future__ import annotations

from html import escape

FONT = "Helvetica,Arial,sans-serif"
MONO = "DejaVu Sans Mono,Menlo,Consolas,monospace"
INK = "#1e293b"           # main text
MUTED = "#475569"         # secondary text (names, shapes)
FAINT = "#64748b"         # edges, details

# category -> (fill, border, text colour).  Pastel fills keep black text readable; the three
# ends of a model (inputs, outputs, losses) are saturated so they stand out at a glance.
PALETTE: dict[str, tuple[str, str, str]] = {
    "conv":           ("#dbeafe", "#3b82f6", INK),
    "dense":          ("#ede9fe", "#8b5cf6", INK),
    "embedding":      ("#e0e7ff", "#6366f1", INK),
    "norm":           ("#fef3c7", "#d97706", INK),
    "activation":     ("#dcfce7", "#16a34a", INK),
    "pooling":        ("#cffafe", "#0891b2", INK),
    "recurrent":      ("#fce7f3", "#db2777", INK),
    "attention":      ("#ffedd5", "#ea580c", INK),
    "regularization": ("#f1f5f9", "#94a3b8", INK),
    "reshape":        ("#f8fafc", "#94a3b8", INK),
    "elementwise":    ("#f0fdf4", "#4ade80", INK),
    "reduction":      ("#fef9c3", "#ca8a04", INK),
    "random":         ("#fae8ff", "#c026d3", INK),
    "control":        ("#fce7f3", "#db2777", INK),
    "block":          ("#eef2ff", "#4338ca", INK),
    "layer":          ("#f3f4f6", "#6b7280", INK),
    "function":       ("#f3f4f6", "#9ca3af", INK),
    "param":          ("#fefce8", "#a16207", INK),
    "constant":       ("#ffffff", "#cbd5e1", MUTED),
    "input":          ("#0f766e", "#115e59", "#ffffff"),
    "output":         ("#1d4ed8", "#1e3a8a", "#ffffff"),
    "loss":           ("#dc2626", "#991b1b", "#ffffff"),
    "grad":           ("#fff1f2", "#e11d48", INK),
    "grad_output":    ("#be123c", "#881337", "#ffffff"),
    "step":           ("#ccfbf1", "#0f766e", INK),      # a loop's step slice (x_t)
    "carry":          ("#fce7f3", "#be185d", INK),      # a loop's carried state (h)
}

# Kinds of the built-in library by category; user kinds fall back to name fragments below.
_KINDS = {
    "conv": "Conv1D Conv2D Conv3D ConvTranspose2D DepthwiseConv2D conv2d conv",
    "dense": "Dense Linear Bilinear matmul",
    "embedding": "Embedding PositionalEncoding gather one_hot",
    "norm": "BatchNorm LayerNorm GroupNorm InstanceNorm RMSNorm",
    "activation": "relu sigmoid tanh gelu softmax log_softmax leaky_relu step elu selu silu "
                  "swish softplus exp log sqrt abs",
    "pooling": "MaxPool AvgPool GlobalAvgPool GlobalMaxPool maxpool avgpool max_pool avg_pool",
    "recurrent": "RNN LSTM GRU Elman scan",
    "attention": "MultiHeadAttention TransformerEncoderLayer TransformerDecoderLayer Attention",
    "regularization": "Dropout dropout stop_gradient l1 l2",
    "reshape": "Flatten flatten reshape transpose concat stack split squeeze slice broadcast pad",
}
_KIND_CATEGORY = {kind: category for category, kinds in _KINDS.items() for kind in kinds.split()}
_FRAGMENTS = [("attention", "attention"), ("transformer", "attention"), ("conv", "conv"),
              ("pool", "pooling"), ("norm", "norm"), ("lstm", "recurrent"), ("gru", "recurrent"),
              ("rnn", "recurrent"), ("dense", "dense"), ("linear", "dense"), ("embed", "embedding")]
# Op traits (see ops/registry.py) -> category, in priority order.
_TRAITS = [("control", "control"), ("matmul", "dense"), ("conv", "conv"), ("random", "random"),
           ("reduction", "reduction"), ("shape", "reshape"), ("constant", "constant"),
           ("elementwise", "elementwise")]


def layer_category(kind: str, record_category: str) -> str:
    """The palette entry of a layer record: its kind's family, else its record category."""
    if record_category in ("input", "output", "loss"):
        return record_category
    if kind in _KIND_CATEGORY:
        return _KIND_CATEGORY[kind]
    lowered = kind.lower()
    for fragment, category in _FRAGMENTS:
        if fragment in lowered:
            return category
    return record_category if record_category in PALETTE else "layer"


def op_category(op) -> str:
    """The palette entry of a primitive op, from its name and traits."""
    name = getattr(op, "name", str(op))
    if name in _KIND_CATEGORY:
        return _KIND_CATEGORY[name]
    traits = getattr(op, "traits", ())
    for trait, category in _TRAITS:
        if trait in traits:
            return category
    return "function"


def format_count(n: int) -> str:
    """12 -> '12', 61706 -> '61.7k', 1234567 -> '1.23M'."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.3g}k"
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.3g}M"
    return f"{n / 1_000_000_000:.3g}B"


def params_text(n: int, times: int = 1) -> str:
    """'156 params', or '12 × 4.2k params' for a collapsed repeat."""
    if times > 1:
        return f"{times} × {format_count(n)} params"
    return f"{format_count(n)} param" + ("" if n == 1 else "s")


def wrap(text: str, width: int = 34, limit: int = 3) -> list[str]:
    """Split a comma-separated argument list into lines of about `width` characters."""
    lines: list[str] = []
    current = ""
    for piece in text.split(", "):
        candidate = f"{current}, {piece}" if current else piece
        if current and len(candidate) > width:
            lines.append(current + ",")
            current = piece
        else:
            current = candidate
    if current:
        lines.append(current)
    if len(lines) > limit:
        lines = lines[:limit - 1] + [lines[limit - 1].rstrip(",") + ", …"]
    return [line if len(line) <= width + 12 else line[:width + 10] + "…" for line in lines]


# ---------------------------------------------------------------------------------------------
# Graphviz attributes

def graph_attrs(rankdir: str, title: str | None, legend: str | None = None,
                edge_kinds: tuple[str, ...] = ()) -> dict[str, str]:
    """The graph's attributes; its label is the title, a note, and the key to the edges drawn."""
    attrs = {"rankdir": rankdir, "compound": "true", "fontname": FONT, "fontsize": "11",
             "fontcolor": INK, "bgcolor": "white", "nodesep": "0.3", "ranksep": "0.4",
             "pad": "0.3"}
    if title:
        label = f'<font point-size="16">{escape(title, quote=False)}</font>'
        if legend:
            label += f'<br/><font point-size="10" color="{MUTED}">{escape(legend, quote=False)}</font>'
        key = edge_legend(edge_kinds)
        if key:         # a table must be the whole label: the title goes in its first row
            label = (f'<table border="0" cellborder="0" cellspacing="0" cellpadding="2">'
                     f'<tr><td>{label}</td></tr><tr><td>{key}</td></tr></table>')
        attrs.update(label=f"<{label}>", labelloc="t", labeljust="c")
    return attrs


# link kind -> (a sample of the line in its colour, what it means), for the legend under the title
EDGE_LEGEND = {
    "data": ("──▶", FAINT, "data (its type on the edge)"),
    "loop": ("╌╌▶", "#be185d", "to the next step of a loop"),
    "repeat": ("╌╌▶", "#ea580c", "to the next copy of a repeated block"),
    "shared": ("┈┈┈", "#6366f1", "shared weights"),
    "grad": ("╌╌▶", "#e11d48", "gradient (backward pass)"),
    "fused": ("┈┈▶", "#16a34a", "inside a kernel (stays in registers)"),
    "memory": ("━━▶", "#334155", "between kernels (through memory)"),
}


def edge_legend(kinds) -> str:
    """One row of HTML-like cells: a sample line per kind of edge drawn, and what it means."""
    cells = []
    for kind in dict.fromkeys(kinds):
        if kind in EDGE_LEGEND:
            sample, colour, meaning = EDGE_LEGEND[kind]
            cells.append(f'<td><font color="{colour}" point-size="10">{sample}</font></td>'
                         f'<td align="left"><font point-size="9" color="{MUTED}">'
                         f'{escape(meaning, quote=False)}   </font></td>')
    if not cells:
        return ""
    return ('<table border="0" cellborder="0" cellspacing="0" cellpadding="1">'
            f'<tr>{"".join(cells)}</tr></table>')


NODE_DEFAULTS = {"shape": "box", "style": "rounded,filled", "fontname": FONT, "fontsize": "10",
                 "margin": "0.12,0.05", "penwidth": "1.2", "color": "#9ca3af"}
EDGE_DEFAULTS = {"fontname": MONO, "fontsize": "8", "color": FAINT, "fontcolor": MUTED,
                 "arrowsize": "0.6", "penwidth": "1.0"}


def node_attrs(category: str, emphasis: bool = False) -> dict[str, str]:
    """Fill, border and shape of a box of the given category."""
    fill, border, _ = PALETTE.get(category, PALETTE["layer"])
    attrs = {"fillcolor": fill, "color": border}
    if category == "param":
        attrs.update(shape="cylinder", style="filled", fontsize="9")
    elif category == "constant":
        attrs.update(style="rounded,filled,dotted", fontsize="8")
    elif category.startswith("grad"):
        attrs.update(style="rounded,filled,dashed")
    elif category in ("step", "carry"):
        attrs.update(penwidth="1.8")
    elif category == "block":
        attrs.update(peripheries="2")
    if emphasis:
        attrs["penwidth"] = "2.2"
    return attrs


# cluster kind -> attributes.  Blocks nest, so their fill darkens a little per level.
_BLOCK_FILLS = ["#f8fafc", "#f1f5f9", "#e2e8f0", "#cbd5e1"]
CLUSTERS = {
    "block": {"color": "#94a3b8", "style": "rounded,filled"},
    "repeat": {"color": "#ea580c", "style": "rounded,filled,bold", "fillcolor": "#fff7ed",
               "penwidth": "1.6"},
    "kernel": {"color": "#16a34a", "style": "rounded,filled", "fillcolor": "#f0fdf4",
               "penwidth": "1.6"},
    "grad": {"color": "#e11d48", "style": "rounded,filled,dashed", "fillcolor": "#fff5f7",
             "penwidth": "1.4"},
    "grad_scope": {"color": "#fda4af", "style": "rounded,filled", "fillcolor": "#ffe4e6"},
    "loop": {"color": "#db2777", "style": "rounded,filled,bold", "fillcolor": "#fdf2f8",
             "penwidth": "1.6"},
}


def cluster_attrs(kind: str, depth: int) -> dict[str, str]:
    attrs = {"fontname": FONT, "fontsize": "11", "fontcolor": INK, "labeljust": "l",
             "margin": "10", "penwidth": "1.0"}
    attrs.update(CLUSTERS.get(kind, CLUSTERS["block"]))
    attrs.setdefault("fillcolor", _BLOCK_FILLS[min(depth, len(_BLOCK_FILLS) - 1)])
    return attrs


# link kind -> attributes
EDGES = {
    "data": {},
    "repeat": {"style": "dashed", "color": "#ea580c", "constraint": "false", "arrowhead": "vee"},
    "shared": {"style": "dotted", "color": "#6366f1", "constraint": "false", "dir": "none"},
    "grad": {"style": "dashed", "color": "#e11d48", "fontcolor": "#be123c"},
    "fused": {"style": "dotted", "color": "#16a34a"},
    "memory": {"penwidth": "1.6", "color": "#334155"},
    "loop": {"style": "dashed", "color": "#be185d", "fontcolor": "#be185d", "constraint": "false",
             "arrowhead": "vee", "penwidth": "1.4"},
}


def html_label(title: str, subtitle: str | None, details: list[str], shape: str | None,
               category: str, badge: str | None = None) -> str:
    """An HTML-like Graphviz label: bold kind (+ badge), name, details, shape in monospace."""
    _, _, ink = PALETTE.get(category, PALETTE["layer"])
    soft = ink if ink != INK else MUTED
    rows = [f'<font color="{ink}"><b>{escape(title, quote=False)}</b></font>' +
            (f'  <font color="#c2410c"><b>{escape(badge, quote=False)}</b></font>' if badge else "")]
    if subtitle:
        rows.append(f'<font point-size="9" color="{soft}">{escape(subtitle, quote=False)}</font>')
    for line in details:
        rows.append(f'<font point-size="8" color="{soft}">{escape(line, quote=False)}</font>')
    if shape:
        rows.append(f'<font face="{MONO}" point-size="8" color="{soft}">'
                    f'{escape(shape, quote=False)}</font>')
    body = "".join(f"<tr><td>{row}</td></tr>" for row in rows)
    return (f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">'
            f'{body}</table>>')


def cluster_label(title: str, note: str | None) -> str:
    """A cluster's HTML-like label: the title as one bold run (one SVG text), then a note."""
    label = f'<b>{escape(title, quote=False)}</b>'
    if note:
        label += (f'<br align="left"/><font point-size="9" color="{MUTED}">'
                  f'{escape(note, quote=False)}</font>')
    return f"<{label}<br align=\"left\"/>>"
