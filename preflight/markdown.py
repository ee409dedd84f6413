"""Text from a stack file or a policy message, made inert inside a Markdown table cell.

A pull request writes the stack files this comment quotes: no value may open a link, an HTML
tag, a mention or a code span, or break out of its cell.
"""

from __future__ import annotations

import html

_INERT = str.maketrans(
    {"|": "&#124;", "`": "&#96;", "[": "&#91;", "]": "&#93;", "@": "&#64;", "*": "&#42;", "_": "&#95;"}
)


def cell(text: str) -> str:
    """One cell's text: HTML escaped, Markdown specials as entities, lines joined with <br>."""
    lines = (html.escape(line, quote=True).translate(_INERT) for line in text.splitlines())
    return "<br>".join(lines)
