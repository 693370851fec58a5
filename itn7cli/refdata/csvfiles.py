"""Reference data from CSV files in the documented format: one file per table, recognised by its header.

See README « Données de référence ». Codes stay strings (2A004, 04001); integers are checked.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..store import Database
from ..store import refdata as ref_store


@dataclass(frozen=True)
class TableSpec:
    table: str
    key: str
    columns: tuple[str, ...]
    integers: tuple[str, ...] = ()


TABLES = {
    "communes": TableSpec("ref_communes", "code_insee", (
        "code_insee", "nom", "dep", "siren", "epci_siren", "epci_nom", "epci_nature", "pmun_2021", "ptot_2021",
        "zrr", "zrr_modalite", "codes_postaux"), ("pmun_2021", "ptot_2021")),
    "epci": TableSpec("ref_epci", "epci_siren", (
        "epci_siren", "epci_nom", "epci_nature", "mode_financement", "pmun_2021", "ptot_2021", "nb_communes",
        "nb_communes_paca", "nb_communes_zrr", "departements"),
        ("pmun_2021", "ptot_2021", "nb_communes", "nb_communes_paca", "nb_communes_zrr")),
    "collectivites": TableSpec("ref_collectivites", "siren", ("niveau", "code", "nom", "siren", "cj_attendue")),
}


def csv_files(paths: Iterable[Path]) -> list[Path]:
    """The CSV files named, or found in the folders named."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.csv"))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"Fichier ou dossier introuvable : {path}.")
    if not files:
        raise ConfigError("Aucun fichier CSV à importer.")
    return files


def kind_of(header: Iterable[str]) -> str:
    """Which table a CSV feeds, from its header (all the documented columns must be there)."""
    names = {h.strip() for h in header}
    for kind, spec in TABLES.items():
        if set(spec.columns) <= names:
            return kind
    raise ConfigError("Colonnes non reconnues : " + ", ".join(sorted(names)) + ". Attendu l'un des formats "
                      "communes, epci ou collectivites (voir README, « Données de référence »).")


def _rows(spec: TableSpec, records: Iterable[Mapping[str, Any]], source: str) -> Iterator[dict[str, Any]]:
    for line, record in enumerate(records, start=2):
        row: dict[str, Any] = {c: (str(record.get(c) or "").strip() or None) for c in spec.columns}
        if not row[spec.key]:
            raise ConfigError(f"{source}, ligne {line} : colonne {spec.key} vide.")
        for column in spec.integers:
            if row[column] is not None:
                try:
                    row[column] = int(str(row[column]).replace(" ", ""))
                except ValueError:
                    raise ConfigError(f"{source}, ligne {line} : {column} n'est pas un entier "
                                      f"(« {row[column]} »).") from None
        yield row


def read_csv(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(kind, rows) of one CSV file in the documented format."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Fichier illisible : {path} ({exc}).") from None
    delimiter = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    kind = kind_of(reader.fieldnames or ())
    return kind, list(_rows(TABLES[kind], reader, path.name))


def import_csv(db: Database, paths: Iterable[Path]) -> dict[str, int]:
    """Imports CSV files (or folders of them) in one transaction; returns rows per table.

    Every file is read and checked before anything is written; a later file of a kind replaces an earlier one.
    """
    tables: dict[str, tuple[list[dict[str, Any]], str]] = {}
    for path in csv_files(paths):
        kind, rows = read_csv(path)
        tables[TABLES[kind].table] = (rows, path.name)
    ref_store.replace(db, tables)
    return {table: len(rows) for table, (rows, _) in tables.items()}
