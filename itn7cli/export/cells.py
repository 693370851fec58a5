"""Safe cells and sheet set-up for a streamed (write-only) openpyxl workbook.

Every text typed by an applicant goes through `text_cell`: it is cleaned of the characters XML
forbids, cut at Excel's cell limit with a visible mark, and forced to be a string cell, so that
`=HYPERLINK(…)`, `@SUM(…)`, `+33 6…` or `#N/A` never become a formula or an error value.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from weakref import WeakKeyDictionary

from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.properties import PageSetupProperties

from . import rows
from .rows import PreparedCell, RowStream, prepare

EXCEL_CELL_LIMIT = 32_767
PAPERSIZE_A4 = "9"  # OOXML paper codes
PAPERSIZE_A3 = "8"
# Measured on LibreOffice renderings: a column n units wide holds about 1.2 n characters of text.
CHARACTERS_PER_WIDTH = 1.2
LINE_HEIGHT = 15.0  # points, for the default 11-point font
MAX_ROW_HEIGHT = 409.0  # points: Excel's limit
TRUNCATED = "… [texte tronqué]"
# What XML 1.0 forbids (openpyxl raises IllegalCharacterError on them), and lone surrogates (a JSON
# "\ud83d" without its pair), which cannot be encoded; tab and line feed stay.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# A text starting with one of these would be taken for a formula when a user edits the cell.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

AMOUNT_FORMAT = '#,##0.00\\ "€";[Red]\\-#,##0.00\\ "€"'
DATETIME_FORMAT = "dd/mm/yyyy hh:mm"
DATE_FORMAT = "dd/mm/yyyy"
PERCENT_FORMAT = "0%"
SCORE_FORMAT = "0.0"

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="000091")  # the State's blue
HEADER_ALIGNMENT = Alignment(vertical="center", wrap_text=True)
TOP = Alignment(vertical="top")
RIGHT = Alignment(horizontal="right")
WRAP = Alignment(vertical="top", wrap_text=True)
LINK_FONT = Font(color="0563C1", underline="single")
TITLE_FONT = Font(bold=True, size=14, color="000091")
SECTION_FONT = Font(bold=True, size=11, color="000091")
BOLD = Font(bold=True)
NOTE_FONT = Font(italic=True, color="595959")
TOTAL_BORDER = Border(top=Side(style="thin"))
UNLOCKED = Protection(locked=False)  # the cells the committee fills in a protected sheet
DECISION_FILL = PatternFill("solid", fgColor="FFF8E1")  # a light tint: where to type
# Excel's own good / neutral / bad palette: readable on screen and in grey on paper.
STATUS_FILLS = {
    "eligible": PatternFill("solid", fgColor="C6EFCE"),
    "a_verifier": PatternFill("solid", fgColor="FFEB9C"),
    "ineligible": PatternFill("solid", fgColor="FFC7CE"),
}
STATUS_FONTS = {
    "eligible": Font(color="006100"),
    "a_verifier": Font(color="9C5700"),
    "ineligible": Font(color="9C0006", bold=True),
}


def clean_text(value: Any) -> str:
    """A text Excel accepts: control characters removed, cut at the cell limit with a visible mark."""
    text = str(value)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL_CHARACTERS.sub("", text)
    if len(text) > EXCEL_CELL_LIMIT:
        text = text[:EXCEL_CELL_LIMIT - len(TRUNCATED)] + TRUNCATED
    return text


# Setting a style attribute on a cell hashes the whole style object (≈ 15 µs): on 300 000 cells that
# is much of an export. Each combination is therefore made once per workbook, on a prototype cell.
_STYLE_CACHE: WeakKeyDictionary[Any, dict[tuple[Any, ...], str]] = WeakKeyDictionary()
_LAST_WORKBOOK: list[Any] = [lambda: None, {}]  # the workbook being written (a weak reference), its styles


def _styles(ws: WriteOnlyWorksheet) -> dict[tuple[Any, ...], str]:
    """The style attributes made so far for `ws`'s workbook, by key."""
    last, cache = _LAST_WORKBOOK
    if last() is not ws.parent:  # a WeakKeyDictionary lookup costs as much as the rest of a cell
        cache = _STYLE_CACHE.setdefault(ws.parent, {})
        _LAST_WORKBOOK[:] = weakref.ref(ws.parent), cache
    result: dict[tuple[Any, ...], str] = cache
    return result


def style(ws: WriteOnlyWorksheet, *, alignment: Alignment = TOP, font: Font | None = None,
          fill: PatternFill | None = None, number_format: str | None = None,
          quote_prefix: bool = False, protection: Protection | None = None) -> str:
    """The style attribute (` s="4"`) of a cell of `ws`'s workbook with this style.

    Style objects are keyed by identity (hashing them is the cost avoided): pass module constants."""
    cache = _styles(ws)
    key = (id(alignment), id(font), id(fill), number_format, quote_prefix, id(protection))
    found = cache.get(key)
    if found is None:
        prototype = WriteOnlyCell(ws)
        prototype.alignment = alignment
        prototype.quotePrefix = quote_prefix
        for name, value in (("font", font), ("fill", fill), ("number_format", number_format),
                            ("protection", protection)):
            if value is not None:
                setattr(prototype, name, value)
        found = cache[key] = f' s="{prototype.style_id}"' if prototype.has_style else ""
    return found


def text_cell(ws: WriteOnlyWorksheet, value: Any, *, wrap: bool = False, font: Font | None = None,
              fill: PatternFill | None = None, protection: Protection | None = None,
              alignment: Alignment | None = None, link: tuple[str, str | None] | None = None) -> PreparedCell:
    """A string cell, whatever the text looks like: never a formula, an error value or a number."""
    text = clean_text(value)
    # quotePrefix: the text stays text when a user edits the cell (F2, Entrée).
    quote = text.startswith(FORMULA_TRIGGERS)
    if font is None and fill is None and protection is None and alignment is None:  # most cells: a shorter key
        cache = _styles(ws)
        found = cache.get((wrap, quote))
        if found is None:
            found = cache[wrap, quote] = style(ws, alignment=WRAP if wrap else TOP, quote_prefix=quote)
        return rows.text(found, text, link)
    return rows.text(style(ws, alignment=alignment or (WRAP if wrap else TOP), font=font, fill=fill,
                           quote_prefix=quote, protection=protection), text, link)


def number_cell(ws: WriteOnlyWorksheet, value: float | int | None, number_format: str) -> PreparedCell | None:
    """A typed number with its display format; None (an empty cell) when there is no value."""
    if value is None:
        return None
    cache = _styles(ws)
    found = cache.get((number_format,))
    if found is None:
        found = cache[number_format,] = style(ws, number_format=number_format)
    return rows.number(found, value)


def input_cell(ws: WriteOnlyWorksheet, value: str | float | None, *, number_format: str | None = None,
               wrap: bool = False) -> PreparedCell:
    """A cell the committee fills (unlocked, tinted), empty or pre-filled; a text stays a text."""
    if isinstance(value, str):
        return text_cell(ws, value, wrap=wrap, fill=DECISION_FILL, protection=UNLOCKED)
    return rows.number(style(ws, alignment=WRAP if wrap else TOP, fill=DECISION_FILL, number_format=number_format,
                             protection=UNLOCKED), value)


def date_cell(ws: WriteOnlyWorksheet, value: datetime | date | None,
              number_format: str = DATETIME_FORMAT) -> PreparedCell | None:
    """A real Excel date; the value must already be naive local (Paris) time."""
    if value is None:
        return None
    return rows.moment(style(ws, number_format=number_format), value)


def link_cell(ws: WriteOnlyWorksheet, label: str, target: str, *, tooltip: str | None = None) -> PreparedCell:
    """A hyperlink written as a link (a relationship), never as a HYPERLINK formula."""
    return text_cell(ws, label, font=LINK_FONT, link=(target, tooltip))


def status_cell(ws: WriteOnlyWorksheet, status: str | None, label: str) -> PreparedCell:
    """The eligibility status with its colour (none for None)."""
    if status is None:
        return text_cell(ws, label)
    return text_cell(ws, label, fill=STATUS_FILLS[status], font=STATUS_FONTS[status])


def styled(ws: WriteOnlyWorksheet, value: Any, *, font: Font | None = None, number_format: str | None = None,
           border: Border | None = None, alignment: Alignment | None = None) -> WriteOnlyCell:
    """A cell of the tool's own text or numbers (the Synthèse's labels and totals), styled: written by openpyxl."""
    cell = WriteOnlyCell(ws, value)
    if isinstance(value, str):
        cell.data_type = "s"
    if font is not None:
        cell.font = font
    if number_format is not None:
        cell.number_format = number_format
    if border is not None:
        cell.border = border
    if alignment is not None:
        cell.alignment = alignment
    return cell


@dataclass(frozen=True)
class Column:
    """A column of a table sheet: its header, its width in characters, whether its texts wrap, and
    whether its values repeat from row to row (a few distinct values: démarche, état, groupe…)."""

    header: str
    width: float
    wrap: bool = False
    repeat: bool = False
    hidden: bool = False


def _glyphs(text: str) -> float:
    # Capitals are wider than the average character the width unit is measured on.
    return len(text) + 0.3 * sum(map(str.isupper, text))


SHORT_TEXT = 400  # characters: the texts whose line counts are remembered (names, natures, messages repeat)


def lines_needed(text: str, width: float) -> int:
    """How many lines a wrapped text takes in a column `width` characters wide (an upper estimate)."""
    return _short_lines(text, width) if len(text) <= SHORT_TEXT else _lines(text, width)


@functools.lru_cache(maxsize=4096)
def _short_lines(text: str, width: float) -> int:
    return _lines(text, width)


def _lines(text: str, width: float) -> int:
    """How many lines a wrapped text takes in a column `width` characters wide (an upper estimate).

    Word by word, as the spreadsheet wraps: a word that does not fit starts a new line.
    """
    per_line = max(width * CHARACTERS_PER_WIDTH, 1.0)
    lines = 0
    for paragraph in text.split("\n"):
        lines += 1
        if _glyphs(paragraph) <= per_line:  # most texts: one short line
            continue
        used = 0.0
        for word in paragraph.split():
            size = _glyphs(word)
            if used and used + 1 + size > per_line:
                lines += 1
                used = 0.0
            if size > per_line:  # a word longer than the column is cut across lines
                lines += int(size // per_line)
                size %= per_line
            used += size + (1 if used else 0)
    return max(lines, 1)


def row_height(texts: Sequence[tuple[str, float]]) -> float | None:
    """The height a row of wrapped texts needs, None for one line. Neither Excel nor LibreOffice
    re-measures rows when opening a file, so a row left without height shows one line of each text."""
    return height(max((lines_needed(text, width) for text, width in texts if text), default=1))


def height(lines: int) -> float | None:
    """The height of a row of `lines` lines, None for one line (the default height)."""
    return min(lines * LINE_HEIGHT, MAX_ROW_HEIGHT) if lines > 1 else None


def set_up_table(ws: WriteOnlyWorksheet, columns: Sequence[Column], *, freeze: str, footer: str,
                 paper: str = PAPERSIZE_A4) -> RowStream:
    """Widths, frozen panes, print set-up, then the header row; returns the stream of the sheet's rows
    (in write-only mode the set-up must precede the first row)."""
    for index, column in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(index)].width = column.width
        if column.hidden:
            ws.column_dimensions[get_column_letter(index)].hidden = True
    ws.freeze_panes = freeze
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = paper
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages tall as needed
    ws.print_title_rows = "1:1"
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.oddFooter.left.text = footer
    ws.oddFooter.left.size = 8
    ws.oddFooter.right.text = "Page &P / &N"
    ws.oddFooter.right.size = 8
    stream = RowStream(ws)
    stream.write(prepare(header_cells(ws, columns), row_height([(c.header, c.width) for c in columns])))
    return stream


def header_cells(ws: WriteOnlyWorksheet, columns: Sequence[Column]) -> list[PreparedCell]:
    """The header row's cells: white bold text on the State's blue, wrapped."""
    return [text_cell(ws, column.header, font=HEADER_FONT, fill=HEADER_FILL, alignment=HEADER_ALIGNMENT)
            for column in columns]


def finish_table(ws: WriteOnlyWorksheet, columns: Sequence[Column], rows: int) -> None:
    """The autofilter over the header and every written row (written at the end of the sheet)."""
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(rows + 1, 2)}"
