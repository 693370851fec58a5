"""A faster row writer for the table sheets of a write-only openpyxl workbook.

openpyxl writes each cell through nested contexts of lxml's incremental writer and a few Python
calls per attribute: most of an export of 300 000 cells. Here a row is prepared once as XML text
cut where its row number goes (a cell shared by many rows is formatted once; a dossier's row is
prepared once for « Dossiers » and its département's sheet), then each sheet parses it with lxml
(in C) and hands it to its stream as one element. The XML is openpyxl's (`test_export` compares the
two); the rest of the sheet (set-up, hyperlinks, protection, validations, autofilter) is openpyxl's.

This replaces two private members of openpyxl 3.1's write-only worksheet (`_values_to_row` and its
writer's `write_row`) and fills its list `_hyperlinks` as openpyxl's cell writer does: pyproject.toml
bounds openpyxl below 3.2, and a test fails if the hook stops being called.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MethodType
from typing import Any, NamedTuple

from lxml import etree
from openpyxl.cell import Cell
from openpyxl.compat import safe_string
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.hyperlink import Hyperlink

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
_LETTERS = [get_column_letter(index) for index in range(1, 703)]  # A … ZZ


class PreparedCell(Cell):
    """A cell that keeps its XML once prepared: it must not change afterwards (its style never does)."""

    __slots__ = ("xml",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.xml: str | None = None


class PreparedRow(NamedTuple):
    """A row's XML cut where its row number goes, and its links (column letter, target, tooltip)."""

    chunks: list[str]
    links: list[tuple[str, str, str | None]]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cell_xml(cell: Cell) -> str:
    """A cell's XML after its reference, as openpyxl writes it: ` s="4" t="inlineStr"><is>…</is></c>`."""
    kind, value = cell.data_type, cell._value
    style = f' s="{cell.style_id}"' if cell.has_style else ""
    if value is None or value == "":
        return f'{style} t="{"inlineStr" if kind == "s" else kind}"/>'
    if kind == "s" and isinstance(value, str):
        space = ' xml:space="preserve"' if value != value.strip() else ""
        return f'{style} t="inlineStr"><is><t{space}>{_escape(value)}</t></is></c>'
    if kind == "d":
        if getattr(value, "tzinfo", None) is not None:
            raise TypeError("Excel dates carry no time zone")
        return f'{style} t="n"><v>{safe_string(to_excel(value, cell.parent.parent.epoch))}</v></c>'
    if kind in ("n", "b"):
        return f'{style} t="{kind}"><v>{safe_string(value)}</v></c>'
    raise TypeError(f"data type {kind!r} (formula, error value, rich text) is not written by this row writer")


def prepare(cells: Sequence[Cell | None], height: float | None) -> PreparedRow:
    """A row of cells (None: no cell) and its height (None: the default), ready for `write_row`."""
    chunks = ['<row r="', f'" ht="{safe_string(height)}" customHeight="1">' if height is not None else '">']
    links = []
    for index, cell in enumerate(cells):
        if cell is None:
            continue
        letter = _LETTERS[index]
        if cell.hyperlink is not None:
            links.append((letter, cell.hyperlink.target, cell.hyperlink.tooltip))
        if isinstance(cell, PreparedCell):
            if cell.xml is None:
                cell.xml = cell_xml(cell)
            xml = cell.xml
        else:
            xml = cell_xml(cell)
        chunks[-1] += f'<c r="{letter}'
        chunks.append(f'"{xml}')
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
    number = str(row_idx)
    for letter, target, tooltip in row.links:
        writer.ws._hyperlinks.append(Hyperlink(ref=letter + number, target=target, tooltip=tooltip))
    xf.write(etree.fromstring(number.join(row.chunks).encode(), _PARSER))
