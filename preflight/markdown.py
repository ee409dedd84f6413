"""Text from a stack file or a policy message, made inert inside a Markdown table cell.

A pull request writes the stack files this comment quotes: no value may open a link, an HTML
tag, a mention or a code span, or break out of its cell.
"""

from __future__ import annotations

import html

# A cell delimiter, a code span, a link and a mention: the rest of Markdown only changes emphasis.
_INERT = str.maketrans({char: f"&#{ord(char)};" for char in "|`[]@"})


def cell(text: str) -> str:
    """One cell's text: HTML escaped, Markdown specials as entities, lines joined with <br>."""
    lines = (html.escape(line, quote=True).translate(_INERT) for line in text.splitlines())
    return "<br>".join(lines)
