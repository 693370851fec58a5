"""A faster row writer for the table sheets of a write-only openpyxl workbook.

openpyxl writes each cell through an openpyxl cell object, nested contexts of lxml's incremental
writer and a few Python calls per attribute: most of an export of 300 000 cells. Here a cell is
prepared as its XML text once (a cell shared by many rows once for all of them), a row as XML cut
where its row number goes (a dossier's row once for « Dossiers » and its département's sheet), and
a sheet's rows are written as text to a file of their own (`RowStream`). When the sheet is closed,
openpyxl writes everything else (set-up, protection, validations, autofilter, print set-up) around an
empty `<sheetData>`; the rows are put inside it, and the rows' hyperlinks where openpyxl puts them,
with their relationships. The XML is openpyxl's (`test_export` compares them); so are the styles.

This leans on private members of openpyxl 3.1's write-only worksheet: the file its writer wrote
(`_writer.out`) and the relationships its workbook writer saves beside it (`_writer._rels`).
pyproject.toml bounds openpyxl below 3.2; a test fails if the XML written differs from openpyxl's for
the same cells, and `RowStream.close` refuses a sheet whose XML has no empty `<sheetData>` to fill, or
that has relationships of its own.
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
from openpyxl.packaging.relationship import RelationshipList
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.xml.functions import fromstring

_LETTERS = [get_column_letter(index) for index in range(1, 703)]  # A … ZZ
_OPENINGS = ['<c r="' + letter for letter in _LETTERS]  # a cell's XML up to its row number


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
    """A row of cells (None: no cell) and its height (None: the default), ready for `RowStream.write`."""
    chunks = ['<row r="']
    tail = f'" ht="{safe_string(height)}" customHeight="1">' if height is not None else '">'
    links = []
    for index, cell in enumerate(cells):
        if cell is not None:
            chunks.append(tail + _OPENINGS[index])
            tail = cell.xml
            if cell.link is not None:
                links.append((_LETTERS[index], *cell.link))
    chunks.append(tail + "</row>")
    return PreparedRow(chunks, links)


_EMPTY_SHEET_DATA = re.compile(rb"<sheetData\s*/>|<sheetData>\s*</sheetData>")
# What follows <hyperlinks> in a sheet (ECMA-376 CT_Worksheet): the links go before the first one found.
_AFTER_HYPERLINKS = re.compile(rb"<(?:printOptions|pageMargins|pageSetup|headerFooter|rowBreaks|colBreaks|"
                               rb"customProperties|cellWatches|ignoredErrors|smartTags|drawing|legacyDrawing|"
                               rb"legacyDrawingHF|picture|oleObjects|controls|webPublishItems|tableParts|extLst)\b"
                               rb"|</worksheet>")
RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"


def _attribute(text: str) -> str:
    return (_escape(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
            .replace("\t", "&#9;"))


class _Relationships(RelationshipList):
    """A sheet's relationships given as their XML: openpyxl's workbook writer saves `to_tree()` beside
    the sheet, here without one object per hyperlink."""

    def __init__(self, xml: bytes) -> None:
        super().__init__()
        self._xml = xml

    def __bool__(self) -> bool:
        return True

    def to_tree(self) -> Any:
        return fromstring(self._xml)


class RowStream:
    """The rows of one write-only sheet, written as XML text to a temporary file of their own.

    Create it once the sheet is set up (openpyxl writes the set-up then), `write` prepared rows, then
    `close`: that closes the sheet (openpyxl writes it with no rows) and puts the rows in its
    `<sheetData>`, and their hyperlinks after it. Nothing else may append to the sheet."""

    def __init__(self, ws: WriteOnlyWorksheet) -> None:
        self.ws = ws
        self.rows = 0
        self._links: list[tuple[str, str, str | None]] = []  # (cell, target, tooltip)
        ws._get_writer()  # writes the set-up
        # Deleted when closed, even on a crash; newline="": "\n" stays "\n" on Windows too.
        self._raw = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close)
        self._file = io.TextIOWrapper(self._raw, encoding="utf-8", newline="")

    def write(self, row: PreparedRow) -> None:
        self.rows += 1
        index = str(self.rows)
        for letter, target, tooltip in row.links:
            self._links.append((letter + index, target, tooltip))
        self._file.write(index.join(row.chunks))

    def close(self) -> None:
        """Closes the sheet and writes its rows and their hyperlinks into the XML openpyxl wrote for it."""
        self.ws.close()
        writer = self.ws._writer
        if writer._rels:
            raise RuntimeError("openpyxl gave a streamed sheet relationships of its own: its links would clash")
        with open(writer.out, "rb") as sheet:
            written = sheet.read()  # no rows: the set-up, the protection, the print set-up…
        found = list(_EMPTY_SHEET_DATA.finditer(written))
        if len(found) != 1:
            raise RuntimeError("openpyxl's sheet has no empty <sheetData> to put the rows in (openpyxl upgrade?)")
        start, end = found[0].span()
        links = _AFTER_HYPERLINKS.search(written, end)
        if links is None:
            raise RuntimeError("openpyxl's sheet does not end as a sheet does (openpyxl upgrade?)")
        self._file.flush()
        self._raw.seek(0)
        with open(writer.out, "wb") as sheet:
            sheet.write(written[:start] + b"<sheetData>")
            shutil.copyfileobj(self._raw, sheet, 1 << 20)
            sheet.write(b"</sheetData>" + written[end:links.start()])
            if self._links:
                sheet.write(self._hyperlinks())
            sheet.write(written[links.start():])
        self._file.close()
        if self._links:
            writer._rels = _Relationships(self._relationships())
        self._links = []

    def _hyperlinks(self) -> bytes:
        """The <hyperlinks> element, as openpyxl writes it: link n refers to relationship rIdn."""
        return ("<hyperlinks>" + "".join(
            f'<hyperlink xmlns:r="{RELATIONSHIPS}" ref="{cell}"'
            + (f' tooltip="{_attribute(tooltip)}"' if tooltip is not None else "") + f' r:id="rId{n}"/>'
            for n, (cell, _, tooltip) in enumerate(self._links, start=1)) + "</hyperlinks>").encode()

    def _relationships(self) -> bytes:
        return (f'<Relationships xmlns="{PACKAGE_RELATIONSHIPS}">' + "".join(
            f'<Relationship Type="{RELATIONSHIPS}/hyperlink" Target="{_attribute(target)}" TargetMode="External" '
            f'Id="rId{n}"/>' for n, (_, target, _) in enumerate(self._links, start=1)) + "</Relationships>").encode()
