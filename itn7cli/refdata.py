"""Reference data: communes, EPCI, ZRR, populations 2021, SIREN of the Région and départements.

`import_csv` loads CSV files in the documented format (one file per table, recognised by its
header; see README « Données de référence »). `update` downloads the official open data:

- DGCL, « Composition communale des EPCI à fiscalité propre » au 1er janvier 2021 (epcicom2021.xlsx):
  member communes, their SIREN, EPCI, populations municipale and totale 2021 (Licence Ouverte);
- ANCT – Observatoire des territoires, « Zones de revitalisation rurale (ZRR) », classement COG 2021
  (diffusion-zonages-zrr-cog2021.xls on data.gouv.fr, Licence Ouverte 2.0);
- the SIREN of the Région and the six départements (INSEE SIRENE): stable public identifiers,
  shipped with the tool.

Rules never read the network: they read the tables `ref_*` through `load`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlite_utils

from .errors import ApiError, ConfigError
from .store import now

PACA = ("04", "05", "06", "13", "83", "84")
DGCL_URL = "https://www.collectivites-locales.gouv.fr/files/Accueil/DESL/2021/Interco/epcicom2021.xlsx"
ZRR_URL = ("https://static.data.gouv.fr/resources/zones-de-revitalisation-rurale-zrr/20210907-124104/"
           "diffusion-zonages-zrr-cog2021.xls")
COLLECTIVITES = (  # niveau, code, nom, siren, cj_attendue
    ("region", "93", "Région Provence-Alpes-Côte d'Azur", "231300021", "7230"),
    ("departement", "04", "Département des Alpes-de-Haute-Provence", "220400014", "7220"),
    ("departement", "05", "Département des Hautes-Alpes", "220500011", "7220"),
    ("departement", "06", "Département des Alpes-Maritimes", "220600019", "7220"),
    ("departement", "13", "Département des Bouches-du-Rhône", "221300015", "7220"),
    ("departement", "83", "Département du Var", "228300018", "7220"),
    ("departement", "84", "Département de Vaucluse", "228400016", "7220"),
)


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


# ---------------------------------------------------------------- import from CSV


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
    """(kind, rows) of one CSV file in the documented format; codes stay strings (2A004, 04001)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Fichier illisible : {path} ({exc}).") from None
    delimiter = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    kind = kind_of(reader.fieldnames or ())
    return kind, list(_rows(TABLES[kind], reader, path.name))


def replace_table(db: sqlite_utils.Database, kind: str, rows: list[dict[str, Any]], source: str) -> None:
    """Replaces one reference table and records where it came from. Call inside a transaction."""
    spec = TABLES[kind]
    db.execute(f"DELETE FROM {spec.table}")
    db.table(spec.table).insert_all(rows, pk=spec.key, replace=True)
    db.table("ref_meta").upsert({"name": spec.table, "source": source, "imported_at": now(), "rows": len(rows)},
                                pk="name")


def import_csv(db: sqlite_utils.Database, paths: Iterable[Path]) -> dict[str, int]:
    """Imports CSV files (or folders of them) in one transaction; returns rows per table."""
    loaded = [(path, *read_csv(path)) for path in csv_files(paths)]
    counts: dict[str, int] = {}
    with db.atomic():
        for path, kind, rows in loaded:
            replace_table(db, kind, rows, path.name)
            counts[TABLES[kind].table] = len(rows)
    return counts


# ---------------------------------------------------------------- update from the official open data


def download(client: httpx.Client, url: str) -> bytes:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise ApiError(f"Téléchargement impossible de {url} : {exc.__class__.__name__} (hors ligne ?). Importez "
                       "plutôt des fichiers CSV avec « itn7 refdata import ».") from None
    if response.status_code != 200:
        raise ApiError(f"Téléchargement impossible de {url} : réponse HTTP {response.status_code}.")
    return response.content


def sheet_rows(content: bytes, source: str, sheet_hint: str | None = None) -> list[list[Any]]:
    """The rows of a workbook's sheet (xlsx); the legacy .xls format needs the optional xlrd module."""
    if content[:2] == b"PK":
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ApiError(f"{source} : classeur illisible ({exc}).") from None
        names = [n for n in book.sheetnames if sheet_hint and sheet_hint in n] or book.sheetnames
        return [list(r) for r in book[names[0]].iter_rows(values_only=True)]
    try:
        import xlrd
    except ImportError:
        raise ConfigError(f"{source} est au format Excel 97 (.xls) : installez le module xlrd "
                          "(pip install xlrd) ou importez des CSV avec « itn7 refdata import ».") from None
    xls = xlrd.open_workbook(file_contents=content)
    names = [n for n in xls.sheet_names() if sheet_hint and sheet_hint in n] or xls.sheet_names()
    sheet = xls.sheet_by_name(names[0])
    return [sheet.row_values(i) for i in range(sheet.nrows)]


def _header_index(rows: list[list[Any]], required: set[str], source: str) -> tuple[int, dict[str, int]]:
    for i, row in enumerate(rows[:20]):
        names = {str(v).strip().lower(): j for j, v in enumerate(row) if v is not None}
        if required <= names.keys():
            return i, names
    raise ApiError(f"{source} : colonnes {', '.join(sorted(required))} introuvables (format modifié ?).")


def zrr_by_commune(rows: list[list[Any]], source: str) -> dict[str, tuple[str, str]]:
    """{code commune: (zrr simplifié C/NC/P, modalité C/M/A/D/NC/P)} from the ANCT sheet."""
    start, cols = _header_index(rows, {"codgeo", "zrr_simp"}, source)
    result = {}
    for row in rows[start + 1:]:
        code = str(row[cols["codgeo"]] or "").strip()
        simp = str(row[cols["zrr_simp"]] or "").split(" ")[0]
        detail = str(row[cols["zonage_zrr"]] or "").split(" ")[0] if "zonage_zrr" in cols else simp
        if code:
            result[code.zfill(5)] = (simp, detail or simp)
    return result


def communes_and_epci(rows: list[list[Any]], zrr: Mapping[str, tuple[str, str]],
                      source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """PACA communes and the EPCI touching PACA from the DGCL epcicom table (one row per member)."""
    start, cols = _header_index(rows, {"siren", "insee", "siren_membre", "pmun_2021", "ptot_2021"}, source)

    def cell(row: list[Any], name: str) -> str:
        return str(row[cols[name]]).strip() if name in cols and row[cols[name]] is not None else ""

    communes: list[dict[str, Any]] = []
    members: dict[str, list[str]] = {}
    epci: dict[str, dict[str, Any]] = {}
    for row in rows[start + 1:]:
        code, siren = cell(row, "insee").zfill(5), cell(row, "siren")
        if not siren or code == "00000":
            continue
        dep = code[:3] if code.startswith("97") else code[:2]
        members.setdefault(siren, []).append(dep)
        epci.setdefault(siren, {"epci_siren": siren, "epci_nom": cell(row, "raison_sociale"),
                                "epci_nature": cell(row, "nature_juridique"),
                                "mode_financement": cell(row, "mode_financ") or None,
                                "pmun_2021": 0, "ptot_2021": 0, "nb_communes": 0, "nb_communes_paca": 0,
                                "nb_communes_zrr": 0})
        entry = epci[siren]
        pmun, ptot = int(float(cell(row, "pmun_2021") or 0)), int(float(cell(row, "ptot_2021") or 0))
        entry["pmun_2021"] += pmun
        entry["ptot_2021"] += ptot
        entry["nb_communes"] += 1
        if dep not in PACA:
            continue
        simp, detail = zrr.get(code, ("NC", "NC"))
        entry["nb_communes_paca"] += 1
        entry["nb_communes_zrr"] += simp in ("C", "P")
        communes.append({"code_insee": code, "nom": cell(row, "nom_membre") or None, "dep": dep,
                         "siren": cell(row, "siren_membre"), "epci_siren": siren, "epci_nom": entry["epci_nom"],
                         "epci_nature": entry["epci_nature"], "pmun_2021": pmun, "ptot_2021": ptot,
                         "zrr": simp, "zrr_modalite": detail, "codes_postaux": None})
    kept = []
    for siren, entry in epci.items():
        if entry["nb_communes_paca"]:
            entry["departements"] = "|".join(sorted(set(members[siren])))
            kept.append(entry)
    return communes, kept


def update(db: sqlite_utils.Database, *, dgcl_url: str = DGCL_URL, zrr_url: str = ZRR_URL,
           client: httpx.Client | None = None) -> dict[str, int]:
    """Downloads the official open data and replaces the reference tables; ApiError when offline."""
    own = client is None
    client = client or httpx.Client(timeout=60.0, follow_redirects=True)
    try:
        zrr = zrr_by_commune(sheet_rows(download(client, zrr_url), zrr_url, "COG 2021"), zrr_url)
        communes, epci = communes_and_epci(sheet_rows(download(client, dgcl_url), dgcl_url), zrr, dgcl_url)
    finally:
        if own:
            client.close()
    if not communes:
        raise ApiError(f"{dgcl_url} : aucune commune de Provence-Alpes-Côte d'Azur trouvée.")
    collectivites = [dict(zip(TABLES["collectivites"].columns, c, strict=True)) for c in COLLECTIVITES]
    with db.atomic():
        replace_table(db, "communes", communes, f"{dgcl_url} + {zrr_url}")
        replace_table(db, "epci", epci, dgcl_url)
        replace_table(db, "collectivites", collectivites, "SIRENE (identifiants livrés avec itn7)")
    return {"ref_communes": len(communes), "ref_epci": len(epci), "ref_collectivites": len(collectivites)}


# ---------------------------------------------------------------- reading


@dataclass
class RefData:
    """The reference tables in memory (under 1 000 rows), with the lookups the rules need."""

    communes: dict[str, dict[str, Any]] = field(default_factory=dict)
    communes_by_siren: dict[str, dict[str, Any]] = field(default_factory=dict)
    epcis: dict[str, dict[str, Any]] = field(default_factory=dict)
    collectivites: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.communes

    def epci(self, siren: str) -> dict[str, Any] | None:
        return self.epcis.get(siren)

    def _aggregate(self, communes: list[dict[str, Any]]) -> tuple[float | None, int | None]:
        if not communes:
            return None, None
        in_zrr = sum(1 for c in communes if c.get("zrr") in ("C", "P"))
        return in_zrr / len(communes), sum(c.get("pmun_2021") or 0 for c in communes)

    def applicant(self, siren: str | None, commune_code: str | None = None) -> tuple[float | None, int | None] | None:
        """(ZRR share, population municipale 2021) of a commune, EPCI, département or the Région; None if unknown."""
        commune = self.communes_by_siren.get(siren or "") or self.communes.get(commune_code or "")
        if commune:
            return (1.0 if commune.get("zrr") in ("C", "P") else 0.0), commune.get("pmun_2021")
        if siren in self.epcis:
            epci = self.epcis[siren]
            paca = epci.get("nb_communes_paca") or 0
            return ((epci.get("nb_communes_zrr") or 0) / paca if paca else None), epci.get("pmun_2021")
        collectivite = self.collectivites.get(siren or "")
        if collectivite:
            level, code = collectivite.get("niveau"), collectivite.get("code")
            members = [c for c in self.communes.values() if level == "region" or c.get("dep") == code]
            return self._aggregate(members)
        return None


def load(db: sqlite_utils.Database) -> RefData | None:
    """The imported reference data, or None when nothing was imported."""
    if "ref_communes" not in db.table_names():
        return None
    ref = RefData()
    for row in db.table("ref_communes").rows:
        ref.communes[row["code_insee"]] = row
        if row.get("siren"):
            ref.communes_by_siren[row["siren"]] = row
    ref.epcis = {row["epci_siren"]: row for row in db.table("ref_epci").rows}
    ref.collectivites = {row["siren"]: row for row in db.table("ref_collectivites").rows}
    return None if ref.empty and not ref.epcis else ref


def meta(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Where each reference table came from and when (for display and the configuration hash)."""
    if "ref_meta" not in db.table_names():
        return []
    return list(db.table("ref_meta").rows_where(order_by="name"))
