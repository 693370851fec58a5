"""A reader of a few columns of an .xlsx workbook, for the decisions import.

openpyxl's read-only mode builds an object for every cell of every row (≈ 5 s for a 10 000-dossier
workbook, whose sheets hold 25 columns); the import needs four. This reader finds the cells of the
columns asked for in each sheet's XML and decodes only those, telling a formula, a date, an error
value, a text and a number apart. The small parts (workbook, relationships, shared strings, styles)
are parsed with lxml, which never resolves entities nor reaches the network.
"""

from __future__ import annotations

import html
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils import get_column_letter

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
MAX_SHEET_BYTES = 200 * 2**20  # a sheet's XML beyond this is not a committee workbook (or a zip bomb)
# A sheet's cells are found by pattern in its XML, not parsed into objects: a row holds 25 cells and the
# import needs 4 (an XML parse of a 10 000-dossier workbook takes seconds). Attributes in any order.
CELL = re.compile(rb'<c\b([^>]*?)\br="([A-Z]{1,3})(\d+)"([^>]*?)(/>|>(.*?)</c>)', re.S)
MERGE = re.compile(rb'<mergeCell\b[^>]*?\bref="([A-Z0-9:]+)"')
TYPE = re.compile(rb'\bt="(\w+)"')
STYLE = re.compile(rb'\bs="(\d+)"')
VALUE = re.compile(rb"<v>(.*?)</v>", re.S)
TEXT = re.compile(rb"<t(?:\s[^>]*)?>(.*?)</t>", re.S)
PHONETIC = re.compile(rb"<rPh\b.*?</rPh>", re.S)


class XlsxError(ValueError):
    """The file is not a workbook this reader understands."""


@dataclass(frozen=True)
class Value:
    """A cell's value and what kind it is: "text", "number", "bool", "date", "formula" or "error"."""

    kind: str
    value: Any
    coordinate: str


def column_index(letters: str) -> int:
    """« A » → 1, « Y » → 25, « AA » → 27."""
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index


def _parser_args() -> dict[str, Any]:
    return {"resolve_entities": False, "no_network": True, "huge_tree": False}


class Workbook:
    """An open .xlsx file: its sheets by name, its shared strings and which styles are dates."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.sheets = self._sheets()
        self.strings = self._strings()
        self.date_styles = self._date_styles()
        self.merges: dict[str, list[str]] = {}  # by sheet, filled as its rows are read

    def _xml(self, member: str) -> Any:
        with self.archive.open(member) as handle:
            return etree.parse(handle, etree.XMLParser(**_parser_args())).getroot()

    def _sheets(self) -> dict[str, str]:
        rels = {r.get("Id"): r.get("Target") for r in self._xml("xl/_rels/workbook.xml.rels").iter(
            f"{PACKAGE_REL}Relationship")}
        sheets = {}
        for sheet in self._xml("xl/workbook.xml").iter(f"{MAIN}sheet"):
            target = rels.get(sheet.get(f"{REL}id")) or ""
            member = target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
            sheets[sheet.get("name")] = member
        return sheets

    def _strings(self) -> list[str]:
        if "xl/sharedStrings.xml" not in self.archive.namelist():
            return []
        strings = []
        with self.archive.open("xl/sharedStrings.xml") as handle:
            for _, si in etree.iterparse(handle, tag=f"{MAIN}si", **_parser_args()):
                strings.append(_text(si))
                si.clear()
        return strings

    def _date_styles(self) -> set[int]:
        if "xl/styles.xml" not in self.archive.namelist():
            return set()
        root = self._xml("xl/styles.xml")
        formats = {int(f.get("numFmtId")): f.get("formatCode") or "" for f in root.iter(f"{MAIN}numFmt")}
        dates = set()
        xfs = root.find(f"{MAIN}cellXfs")
        for index, xf in enumerate(xfs if xfs is not None else ()):
            number = int(xf.get("numFmtId") or 0)
            code = formats.get(number, BUILTIN_FORMATS.get(number, ""))
            if code and is_date_format(code):
                dates.add(index)
        return dates

    def rows(self, sheet: str, columns: set[int]) -> Iterator[tuple[int, dict[int, Value]]]:
        """(row number, {column: Value}): first the header row (row 1, every column), then the non-empty
        cells of `columns`, which the caller fills from the header before asking for the next row.
        `merges[sheet]` lists the sheet's merged ranges."""
        data = self._member(sheet)
        self.merges[sheet] = [m.decode() for m in MERGE.findall(data)]
        end = data.find(b"</row>")
        header = {column_index(m.group(2).decode()): value for m in CELL.finditer(data, 0, max(end, 0))
                  if m.group(3) == b"1" and (value := self._value(m)) is not None}
        yield 1, header
        if not columns:
            return
        letters = b"|".join(get_column_letter(c).encode() for c in sorted(columns))
        wanted = re.compile(rb'<c\b([^>]*?)\br="(' + letters + rb')(\d+)"([^>]*?)(/>|>(.*?)</c>)', re.S)
        number, found = 0, dict[int, Value]()
        for match in wanted.finditer(data, max(end, 0)):
            row = int(match.group(3))
            if row != number:
                if found:
                    yield number, found
                number, found = row, {}
            value = self._value(match)
            if value is not None:
                found[column_index(match.group(2).decode())] = value
        if found:
            yield number, found

    def _member(self, sheet: str) -> bytes:
        member = self.sheets[sheet]
        if self.archive.getinfo(member).file_size > MAX_SHEET_BYTES:
            raise XlsxError(f"feuille « {sheet} » trop volumineuse")
        with self.archive.open(member) as handle:
            return handle.read(MAX_SHEET_BYTES + 1)

    def _value(self, match: re.Match[bytes]) -> Value | None:
        attributes = match.group(1) + b" " + match.group(4)
        coordinate = (match.group(2) + match.group(3)).decode()
        content = match.group(6) or b""
        kind_match = TYPE.search(attributes)
        kind = kind_match.group(1).decode() if kind_match else "n"
        if b"<f" in content:
            return Value("formula", None, coordinate)
        if kind == "inlineStr":
            return Value("text", _unescape(b"".join(TEXT.findall(PHONETIC.sub(b"", content)))), coordinate)
        raw_match = VALUE.search(content)
        if raw_match is None:
            return None
        raw = _unescape(raw_match.group(1))
        if kind == "s":
            return Value("text", self.strings[int(raw)], coordinate)
        if kind == "str":
            return Value("text", raw, coordinate)
        if kind == "b":
            return Value("bool", raw == "1", coordinate)
        if kind == "e":
            return Value("error", raw, coordinate)
        number = float(raw)
        style = STYLE.search(attributes)
        if style is not None and int(style.group(1)) in self.date_styles:
            return Value("date", number, coordinate)
        return Value("number", int(number) if number.is_integer() else number, coordinate)


def _unescape(raw: bytes) -> str:
    return html.unescape(raw.decode("utf-8"))


def _text(element: Any) -> str:
    """A string item's text: its <t> runs, without phonetic hints."""
    return "".join(t.text or "" for t in element.iter(f"{MAIN}t") if t.getparent().tag != f"{MAIN}rPh")


def open_workbook(archive: zipfile.ZipFile) -> Workbook:
    """The workbook of an open zip archive; XlsxError when it is not one."""
    try:
        return Workbook(archive)
    except (KeyError, etree.XMLSyntaxError, ValueError) as exc:
        raise XlsxError(str(exc)) from None
