"""Reference data: communes, EPCI, ZRR, populations 2021, SIREN of the Région and départements.

- `csvfiles`: `import_csv`, CSV files in the documented format (README « Données de référence »);
- `opendata`: `update`, the DGCL and ANCT tables from an address or a local file, checked before use;
- `workbook`: fetching a spreadsheet and recognising it before reading it;
- here: `load`, the tables in memory with the lookups the rules need, and `meta`.

Rules never read the network: they read the tables `ref_*` through `load`. Every SQL statement is in
`store.refdata`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..store import Database
from ..store import refdata as ref_store
from .csvfiles import TABLES, TableSpec, csv_files, import_csv, kind_of, read_csv
from .opendata import COLLECTIVITES, DEFAULT_CHECKS, DGCL_URL, PACA, ZRR_URL, Checks, update

__all__ = [
    "COLLECTIVITES", "DEFAULT_CHECKS", "DGCL_URL", "PACA", "TABLES", "ZRR_URL", "Checks", "RefData", "TableSpec",
    "csv_files", "import_csv", "kind_of", "load", "meta", "read_csv", "update",
]


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


def load(db: Database) -> RefData | None:
    """The imported reference data, or None when nothing was imported."""
    ref = RefData()
    for row in ref_store.rows(db, "ref_communes"):
        ref.communes[row["code_insee"]] = row
        if row.get("siren"):
            ref.communes_by_siren[row["siren"]] = row
    ref.epcis = {row["epci_siren"]: row for row in ref_store.rows(db, "ref_epci")}
    ref.collectivites = {row["siren"]: row for row in ref_store.rows(db, "ref_collectivites")}
    return None if ref.empty and not ref.epcis else ref


def meta(db: Database) -> list[dict[str, Any]]:
    """Where each reference table came from and when (for display and the configuration hash)."""
    return ref_store.meta(db)
