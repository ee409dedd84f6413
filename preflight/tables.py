"""Tables for a terminal of any width: whole names, or one block per row when a table cannot fit."""

from __future__ import annotations

from rich.console import Console
from rich.markup import render
from rich.table import Table


def print_table(console: Console, table: Table) -> None:
    """``table`` at the console's width (rich's own detection: the terminal, ``COLUMNS``, else 80).

    A column that may wrap (``no_wrap`` off) wraps between words only: its narrowest is its longest
    word. When the table cannot fit that way, each row is printed as a block of ``column: value``
    lines instead, so no name is ever split or cut, and the same input prints the same bytes.
    """
    for column in table.columns:
        if not column.no_wrap:
            words = [word for cell in column.cells for word in render(str(cell)).plain.split()]
            words += str(column.header).split()
            column.min_width = max((len(word) for word in words), default=1)
            column.overflow = "fold"
    # The table's own measure: Measurement.get would clamp its minimum to the width and hide the overflow.
    if table.__rich_measure__(console, console.options).minimum <= console.width:
        console.print(table)
        return
    headers = [str(column.header) for column in table.columns]
    lines = [str(table.title)] if table.title else []
    for row in zip(*(column.cells for column in table.columns), strict=True):
        lines.append(f"- {render(str(row[0])).plain}")
        lines += [f"  {h}: {render(str(c)).plain}" for h, c in zip(headers[1:], row[1:], strict=True) if str(c)]
    console.print("\n".join(lines), soft_wrap=True, markup=False, highlight=False)
