"""Tables for the CLI that never cut a cell: they wrap between words, or stack when even that cannot fit.

Rich shortens what does not fit with an ellipsis (`n1386…`, headers reduced to `…`), and output that is not
a terminal is laid out for 80 columns, so ids were lost exactly where they are copied from (logs, pipes).
`Table` is a drop-in `rich.table.Table`: if every column fits at the width of its longest word (an id
is one word), columns are narrowed only down to that, so text wraps at spaces and no word is broken;
otherwise each row is printed as a block instead: its first cell on a line, then `header value` pairs
wrapped to the width. Nothing is ever cut (a single word longer than the whole width folds).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.padding import Padding
from rich.style import Style
from rich.table import Table as RichTable
from rich.text import Text

_GAP = "  "
_INDENT = 2


class Table(RichTable):
    """A `rich.table.Table` whose columns fold instead of cutting, and that stacks rows when too wide."""

    def add_column(self, header: RenderableType = "", footer: RenderableType = "", **options: Any) -> None:
        options.setdefault("overflow", "fold")
        super().add_column(header, footer, **options)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.columns:
            yield from super().__rich_console__(console, options)
            return
        avail = (self.width or options.max_width) - self._extra_width
        inner = options.update_width(max(1, avail))
        ranges = [self._measure_column(console, inner, column) for column in self.columns]
        # the narrowest a column may get without breaking a word: its longest word (no_wrap: its widest)
        floors = [r.maximum if c.no_wrap else r.minimum for r, c in zip(ranges, self.columns, strict=True)]
        if sum(floors) > avail:
            yield from self._stacked(console, options)
            return
        widths = _fit([r.maximum for r in ranges], floors, avail)
        fixed = copy.copy(self)
        fixed.columns = [
            dataclasses.replace(c, width=max(1, w - self._get_padding_width(c._index)))
            for c, w in zip(self.columns, widths, strict=True)
        ]
        yield from RichTable.__rich_console__(fixed, console, options)

    # -- the stacked layout ---------------------------------------------------------------------------
    def _text(self, console: Console, cell: RenderableType) -> Text:
        if isinstance(cell, Text):
            return cell
        if isinstance(cell, str):
            return console.render_str(cell, highlight=False)
        return Text(str(cell))

    def _stacked(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        width = options.max_width
        if self.title:
            title = self._text(console, self.title)
            title.stylize(Style.pick_first(self.title_style, "table.title"))
            yield title
        headers = [self._text(console, c.header).plain for c in self.columns]
        for row in range(self.row_count):
            cells = [self._text(console, c._cells[row]) for c in self.columns]
            key = cells[0].copy()
            key.stylize("bold")
            key.overflow = "fold"
            yield key
            pairs: list[Text] = []
            for header, cell in zip(headers[1:], cells[1:], strict=True):
                if not cell.plain.strip():
                    continue
                pair = Text.assemble((f"{header}:", "dim"), " ") if self.show_header and header else Text()
                pairs.append(pair + cell)
            yield from _packed(pairs, width)


def _fit(widths: list[int], floors: list[int], avail: int) -> list[int]:
    """Narrow the widest column that still has room above its floor, one cell at a time, until it fits."""
    out = list(widths)
    excess = sum(out) - avail
    while excess > 0:
        k = max((i for i in range(len(out)) if out[i] > floors[i]), key=lambda i: out[i], default=None)
        if k is None:
            break
        out[k] -= 1
        excess -= 1
    return out


def _packed(pairs: list[Text], width: int) -> Iterator[Padding]:
    """Lines of `pairs` joined by gaps, indented, each at most `width` cells (a longer pair wraps alone,
    its continuation lines indented too)."""
    room = max(1, width - _INDENT)
    line = Text(overflow="fold")
    for pair in pairs:
        if line.cell_len and line.cell_len + len(_GAP) + pair.cell_len > room:
            yield Padding(line, (0, 0, 0, _INDENT), expand=False)
            line = Text(overflow="fold")
        if line.cell_len:
            line.append(_GAP)
        line.append_text(pair)
    if line.cell_len:
        yield Padding(line, (0, 0, 0, _INDENT), expand=False)
