"""A faster row writer for the table sheets of a write-only openpyxl workbook.

openpyxl writes each cell through an openpyxl cell object, nested contexts of lxml's incremental
writer and a few Python calls per attribute: most of an export of 300 000 cells. Here a cell is
prepared as its XML text once (a cell shared by many rows once for all of them), a row as XML cut
where its row number goes (a dossier's row once for « Dossiers » and its département's sheet), and
a sheet's rows are written as text to a file of their own (`RowStream`). When the sheet is closed,
openpyxl writes everything else (set-up, hyperlinks, protection, validations, autofilter) around an
empty `<sheetData>`, and the rows are put inside it. The XML is openpyxl's (`test_export` compares
them); so are the styles.

This leans on private members of openpyxl 3.1's write-only worksheet: the file its writer wrote
(`_writer.out`) and the hyperlink list it writes at close (`_hyperlinks`). pyproject.toml bounds
openpyxl below 3.2; a test fails if the XML written differs from openpyxl's for the same cells, and
`RowStream.close` refuses a sheet whose XML has no empty `<sheetData>` to fill.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from openpyxl.compat import safe_string
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.hyperlink import Hyperlink

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


_EMPTY_SHEET_DATA = re.compile(rb"<sheetData\s*/>|<sheetData>\s*</sheetData>")


class RowStream:
    """The rows of one write-only sheet, written as XML text to a temporary file of their own.

    Create it once the sheet is set up (openpyxl writes the set-up then), `write` prepared rows, then
    `close`: that closes the sheet (openpyxl writes it with no rows) and puts the rows in its
    `<sheetData>`. Nothing else may append to the sheet."""

    def __init__(self, ws: WriteOnlyWorksheet) -> None:
        self.ws = ws
        self.rows = 0
        ws._get_writer()  # writes the set-up, and starts the hyperlink list the rows fill
        # Deleted when closed, even on a crash; newline="": "\n" stays "\n" on Windows too.
        self._raw = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close)
        self._file = io.TextIOWrapper(self._raw, encoding="utf-8", newline="")

    def write(self, row: PreparedRow) -> None:
        self.rows += 1
        index = str(self.rows)
        for letter, target, tooltip in row.links:
            self.ws._hyperlinks.append(Hyperlink(ref=letter + index, target=target, tooltip=tooltip))
        self._file.write(index.join(row.chunks))

    def close(self) -> None:
        """Closes the sheet and writes its rows into the XML openpyxl wrote for it."""
        links = self.ws._hyperlinks
        self.ws.close()
        if links is not self.ws._hyperlinks:  # a new writer would have started a new list
            raise RuntimeError("openpyxl started another writer for the sheet: its rows' hyperlinks are lost")
        path = self.ws._writer.out
        with open(path, "rb") as sheet:
            written = sheet.read()  # no rows: the set-up, the hyperlinks, the protection…
        found = list(_EMPTY_SHEET_DATA.finditer(written))
        if len(found) != 1:
            raise RuntimeError("openpyxl's sheet has no empty <sheetData> to put the rows in (openpyxl upgrade?)")
        start, end = found[0].span()
        self._file.flush()
        self._raw.seek(0)
        with open(path, "wb") as sheet:
            sheet.write(written[:start] + b"<sheetData>")
            shutil.copyfileobj(self._raw, sheet, 1 << 20)
            sheet.write(b"</sheetData>" + written[end:])
        self._file.close()
