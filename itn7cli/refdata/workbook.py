"""A spreadsheet from a source (an http(s) address or a local file): fetched, recognised, then read.

The content is recognised before any parser sees it: an .xlsx is a zip holding `xl/workbook.xml`, an .xls
an OLE2 compound file. An HTML page (a moved address, a portal, a captive proxy), an empty answer or
anything else gets a one-line French message naming the source and what came back, never a traceback.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import xlrd
import xlrd.compdoc
from openpyxl import load_workbook

from ..errors import ApiError, ConfigError

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
MOVED = "l'adresse a peut-être changé (voir README, « Données de référence »)"
# What xlrd, zipfile and openpyxl raise on a damaged or truncated file, as found by cutting and overwriting
# bytes of the test fixtures (SyntaxError: the XML parsers' errors): the file is the user's to replace, and
# these calls run no code of itn7, so no bug of ours hides behind them.
DAMAGED = (xlrd.XLRDError, xlrd.compdoc.CompDocError, zipfile.BadZipFile, zlib.error, SyntaxError, struct.error,
           KeyError, ValueError, IndexError, AssertionError, EOFError, RuntimeError)


@dataclass(frozen=True)
class Source:
    """Where a file comes from, as the user wrote it: an http(s) address, or a local path read as is."""

    text: str

    @property
    def is_url(self) -> bool:
        return self.text.startswith(("http://", "https://"))

    @property
    def what(self) -> str:
        return "la page reçue" if self.is_url else "le fichier"

    def __str__(self) -> str:
        return self.text


def fetch(source: Source, client: Callable[[], httpx.Client]) -> bytes:
    """The bytes of a source; a local path is read as is, an address downloaded (redirects followed)."""
    if not source.is_url:
        if "://" in source.text:
            raise ConfigError(f"{source} : adresse non prise en charge (http:// ou https://, ou un fichier local).")
        path = Path(source.text).expanduser()
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"Fichier introuvable : {path}.") from None
        except OSError as exc:
            raise ConfigError(f"Fichier illisible : {path} ({exc.strerror or exc}).") from None
    try:
        response = client().get(source.text)
    except httpx.HTTPError as exc:
        raise ApiError(f"Téléchargement impossible de {source} : {exc.__class__.__name__} (hors ligne ?). Donnez "
                       "plutôt un fichier déjà téléchargé, ou importez des CSV avec « itn7 refdata import ».") from None
    if response.status_code != 200:
        moved = f" : {MOVED}" if response.status_code in (301, 302, 303, 307, 308, 404, 410) else ""
        raise ApiError(f"Téléchargement impossible de {source} : réponse HTTP {response.status_code}{moved}.")
    return response.content


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) and b"html" in text


def _glimpse(head: bytes) -> str:
    """The first printable characters of unknown content, to show what came back."""
    text = head[:200].decode("utf-8", errors="replace")
    text = re.sub(r"\s+", " ", "".join(c if c.isprintable() or c.isspace() else "·" for c in text)).strip()
    return text[:60] + ("…" if len(text) > 60 else "")


def recognise(content: bytes, source: Source) -> str:
    """'xlsx' or 'xls'; anything else is refused with a message saying what came back."""
    if not content.strip():
        raise ConfigError(f"{source} : {source.what} est vide, pas un classeur.")
    head = content[:1024]
    if head.startswith(OLE2_MAGIC):
        return "xls"
    if head.startswith(ZIP_MAGIC):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(content)).namelist())
        except DAMAGED as exc:
            raise ConfigError(f"{source} : classeur .xlsx abîmé ou tronqué ({_reason(exc)}) ; "
                              "téléchargez-le à nouveau.") from None
        if "xl/workbook.xml" not in names:
            raise ConfigError(f"{source} : archive zip qui n'est pas un classeur .xlsx ; décompressez-la et donnez "
                              "le classeur qu'elle contient.")
        return "xlsx"
    if _looks_like_html(head):
        if source.is_url:
            raise ConfigError(f"{source} : la page reçue est du HTML, pas un classeur : {MOVED}.")
        raise ConfigError(f"{source} : ce fichier est une page HTML, pas un classeur (page web enregistrée à la "
                          "place du fichier ?).")
    if head.startswith(b"%PDF"):
        raise ConfigError(f"{source} : {source.what} est un document PDF, pas un classeur.")
    raise ConfigError(f"{source} : {source.what} n'est pas un classeur .xlsx ou .xls (début : « {_glimpse(head)} »).")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:120]
    return f"{exc.__class__.__name__} : {text}" if text else exc.__class__.__name__


class Workbook:
    """The sheets of an .xlsx or .xls workbook, each read as a list of rows of cell values."""

    def __init__(self, content: bytes, source: Source) -> None:
        self.source = source
        self.kind = recognise(content, source)
        try:
            if self.kind == "xlsx":
                self._xlsx = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
                self.names = list(self._xlsx.sheetnames)
            else:
                # xlrd writes its warnings to stdout unless given a log file; stdout carries data only.
                self._xls = xlrd.open_workbook(file_contents=content, on_demand=True, logfile=io.StringIO())
                self.names = list(self._xls.sheet_names())
        except DAMAGED as exc:
            raise self._damaged(exc) from None
        if not self.names:
            raise ConfigError(f"{source} : classeur sans aucune feuille.")

    def _damaged(self, exc: BaseException) -> ConfigError:
        return ConfigError(f"{self.source} : classeur .{self.kind} abîmé ou tronqué, illisible ({_reason(exc)}) ; "
                           "téléchargez-le à nouveau.")

    def rows(self, name: str) -> list[list[Any]]:
        """Every row of the sheet `name`, as cell values (text, numbers, None or '' for an empty cell)."""
        try:
            if self.kind == "xlsx":
                return [list(row) for row in self._xlsx[name].iter_rows(values_only=True)]
            sheet = self._xls.sheet_by_name(name)
            return [sheet.row_values(i) for i in range(sheet.nrows)]
        except DAMAGED as exc:
            raise self._damaged(exc) from None
