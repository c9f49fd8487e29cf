"""Helpers the front-end tests share."""
from __future__ import annotations

import textwrap

import netdsl


def load_text(tmp_path, text: str, name: str = "model.net") -> netdsl.Model:
    """Write the (dedented) `.net` text into `tmp_path/name` and load it."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return netdsl.load(path)
