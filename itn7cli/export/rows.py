"""A faster row writer for the table sheets of a write-only openpyxl workbook.

openpyxl writes each cell through an openpyxl cell object, nested contexts of lxml's incremental
writer and a few Python calls per attribute: most of an export of 300 000 cells. Here a cell is
prepared as its XML text once (a cell shared by many rows once for all of them), a row as XML cut
where its row number goes (a dossier's row once for « Dossiers » and its département's sheet), and
each sheet parses its rows with lxml (in C) into its stream. The XML is openpyxl's (`test_export`
compares them); the rest of the sheet (set-up, hyperlinks, protection, validations, autofilter) and
the styles are openpyxl's.

This leans on private members of openpyxl 3.1's write-only worksheet: it starts the sheet's writer
(`_get_writer`), replaces `_values_to_row` and the writer's `write_row`, and fills `_hyperlinks` as
openpyxl's cell writer does. pyproject.toml bounds openpyxl below 3.2; a test fails if the hook stops
being called, another if the XML written differs from openpyxl's for the same cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from types import MethodType
from typing import Any, NamedTuple

from lxml import etree
from openpyxl.compat import safe_string
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.hyperlink import Hyperlink

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
_LETTERS = [get_column_letter(index) for index in range(1, 703)]  # A … ZZ


class PreparedCell(NamedTuple):
    """A cell ready to be written: its XML after the reference's column letter, its value (a text's
    row height is measured on it), and its link (target, tooltip)."""

    xml: str
    value: Any
    link: tuple[str, str | None] | None = None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(style: str, value: str, link: tuple[str, str | None] | None = None) -> PreparedCell:
    """A string cell (`style`: the ` s="…"` attribute of its style, or "") as openpyxl writes it: an inline
    string, whatever the text looks like; it must be free of the characters XML forbids."""
    if not value:
        return PreparedCell(f'"{style} t="inlineStr"/>', value, link)
    space = ' xml:space="preserve"' if value != value.strip() else ""
    return PreparedCell(f'"{style} t="inlineStr"><is><t{space}>{_escape(value)}</t></is></c>', value, link)


def number(style: str, value: float | int | None) -> PreparedCell:
    """A number cell, or an empty one (None), as openpyxl writes it."""
    if value is None:
        return PreparedCell(f'"{style} t="n"/>', None)
    return PreparedCell(f'"{style} t="n"><v>{safe_string(value)}</v></c>', value)


def moment(style: str, value: datetime | date) -> PreparedCell:
    """A date cell (naive: Excel dates carry no time zone), as a serial number in the 1900 date system,
    openpyxl's default."""
    if getattr(value, "tzinfo", None) is not None:
        raise TypeError("Excel does not support timezones in datetimes")
    return PreparedCell(f'"{style} t="n"><v>{safe_string(to_excel(value))}</v></c>', value)


class PreparedRow(NamedTuple):
    """A row's XML cut where its row number goes, and its links (column letter, target, tooltip)."""

    chunks: list[str]
    links: list[tuple[str, str, str | None]]


def prepare(cells: Sequence[PreparedCell | None], height: float | None) -> PreparedRow:
    """A row of cells (None: no cell) and its height (None: the default), ready for `write_row`."""
    chunks = ['<row r="', f'" ht="{safe_string(height)}" customHeight="1">' if height is not None else '">']
    links = []
    for index, cell in enumerate(cells):
        if cell is not None:
            letter = _LETTERS[index]
            chunks[-1] += '<c r="' + letter
            chunks.append(cell.xml)
            if cell.link is not None:
                links.append((letter, *cell.link))
    chunks[-1] += "</row>"
    return PreparedRow(chunks, links)


def _as_given(values: Sequence[Any], row_idx: int) -> Sequence[Any]:
    return values


def stream_rows(ws: WriteOnlyWorksheet) -> None:
    """Makes `ws` write the rows appended from now on (each a PreparedRow) with `write_row`; call it
    after the sheet's set-up (in write-only mode, the set-up is written with the first row)."""
    ws._get_writer()
    ws._values_to_row = _as_given
    ws._writer.write_row = MethodType(write_row, ws._writer)


def write_row(writer: Any, xf: Any, row: PreparedRow, row_idx: int) -> None:
    """openpyxl's `WorksheetWriter.write_row`, for a prepared row."""
    if not isinstance(row, PreparedRow):
        raise TypeError("a streamed sheet takes prepared rows (rows.prepare)")
    index = str(row_idx)
    for letter, target, tooltip in row.links:
        writer.ws._hyperlinks.append(Hyperlink(ref=letter + index, target=target, tooltip=tooltip))
    xf.write(etree.fromstring(index.join(row.chunks).encode(), _PARSER))
