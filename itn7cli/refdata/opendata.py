"""Reference data from the official open data: the DGCL's EPCI table and the ANCT's ZRR table.

- DGCL, « Composition communale des EPCI à fiscalité propre » au 1er janvier 2021 (epcicom2021.xlsx):
  one row per member commune, with its SIREN, its EPCI, populations municipale and totale 2021, and the
  EPCI's own totals (Licence Ouverte);
- ANCT – Observatoire des territoires, « Zones de revitalisation rurale (ZRR) », sheet « Classement ZRR
  (COG 2021) » of diffusion-zonages-zrr-cog2021.xls: 4 lines of notes, French labels, then the codes row
  CODGEO, LIBGEO, ZRR_SIMP, ZONAGE_ZRR (Licence Ouverte 2.0);
- the SIREN of the Région and the six départements (INSEE SIRENE), stable public identifiers shipped here.

A new set is checked whole before anything is written (`Checks`), then replaces the old one in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import ConfigError
from ..store import Database
from ..store import refdata as ref_store
from .csvfiles import TABLES
from .workbook import Source, Workbook, fetch

PACA = ("04", "05", "06", "13", "83", "84")
DGCL_URL = "https://www.collectivites-locales.gouv.fr/files/Accueil/DESL/2021/Interco/epcicom2021.xlsx"
ZRR_URL = ("https://static.data.gouv.fr/resources/zones-de-revitalisation-rurale-zrr/20210907-124104/"
           "diffusion-zonages-zrr-cog2021.xls")
ZRR_SHEET = "COG 2021"
COLLECTIVITES = (  # niveau, code, nom, siren, cj_attendue
    ("region", "93", "Région Provence-Alpes-Côte d'Azur", "231300021", "7230"),
    ("departement", "04", "Département des Alpes-de-Haute-Provence", "220400014", "7220"),
    ("departement", "05", "Département des Hautes-Alpes", "220500011", "7220"),
    ("departement", "06", "Département des Alpes-Maritimes", "220600019", "7220"),
    ("departement", "13", "Département des Bouches-du-Rhône", "221300015", "7220"),
    ("departement", "83", "Département du Var", "228300018", "7220"),
    ("departement", "84", "Département de Vaucluse", "228400016", "7220"),
)
ZRR_SIMP = {"C", "NC", "P"}
ZONAGE_ZRR = {"C", "NC", "P", "A", "M", "D"}
DGCL_COLUMNS = {"siren", "raison_sociale", "nature_juridique", "insee", "siren_membre", "nom_membre", "nb_membres",
                "total_pop_mun", "total_pop_tot", "pmun_2021", "ptot_2021"}


@dataclass(frozen=True)
class Checks:
    """What a new set must show before it replaces anything. The defaults are the real figures: the COG 2021
    ZRR table lists 34 965 communes, PACA has 946, all in the ZRR table, and six départements."""

    zrr_min_communes: int = 30_000
    paca_min_share_in_zrr: float = 0.99
    departements: tuple[str, ...] = PACA


DEFAULT_CHECKS = Checks()


@dataclass
class Epci:
    siren: str
    nom: str
    nature: str
    mode_financement: str | None
    announced: tuple[int, int, int]  # the file's own nb_membres, total_pop_mun, total_pop_tot
    members: list[dict[str, Any]] = field(default_factory=list)

    @property
    def recomputed(self) -> tuple[int, int, int]:
        return (len(self.members), sum(m["pmun_2021"] for m in self.members),
                sum(m["ptot_2021"] for m in self.members))


# ---------------------------------------------------------------- reading the two tables


def _text(value: Any) -> str:
    """A cell as text: 200067437.0 (an .xls number) is 200067437, None and '' are ''."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def _header(rows: list[list[Any]], required: set[str], source: Source, what: str) -> tuple[int, dict[str, int]]:
    for i, row in enumerate(rows[:20]):
        names = {_text(v).lower(): j for j, v in enumerate(row) if _text(v)}
        if required <= names.keys():
            return i, names
        years = sorted({m.group(1) for n in names if (m := re.fullmatch(r"pmun_(\d{4})", n))} - {"2021"})
        if years and "siren_membre" in names:
            raise ConfigError(f"{source} : table DGCL du millésime {', '.join(years)} ; il faut celle de 2021 "
                              "(epcicom2021), dont les populations sont celles en vigueur en 2021.")
    raise ConfigError(f"{source} : {what} : colonnes {', '.join(sorted(required))} introuvables dans les 20 "
                      "premières lignes (format modifié ?).")


def read_zrr(book: Workbook) -> dict[str, tuple[str, str]]:
    """{code commune: (ZRR simplifié C/NC/P, modalité C/M/A/D/NC/P)} from the sheet « Classement ZRR (COG 2021) »."""
    sheets = [n for n in book.names if ZRR_SHEET in n]
    if not sheets:
        raise ConfigError(f"{book.source} : aucune feuille « Classement ZRR ({ZRR_SHEET}) » (feuilles : "
                          f"{', '.join(book.names)}).")
    rows = book.rows(sheets[0])
    start, cols = _header(rows, {"codgeo", "zrr_simp"}, book.source, f"feuille « {sheets[0]} »")
    result = {}
    for line, row in enumerate(rows[start + 1:], start=start + 2):
        cells = row + [None] * (max(cols.values()) + 1 - len(row))
        code, simp = _text(cells[cols["codgeo"]]), _text(cells[cols["zrr_simp"]]).split(" ")[0]
        detail = _text(cells[cols["zonage_zrr"]]).split(" ")[0] if "zonage_zrr" in cols else simp
        if not code and not simp:
            continue
        if simp not in ZRR_SIMP or (detail or simp) not in ZONAGE_ZRR:
            raise ConfigError(f"{book.source}, feuille « {sheets[0]} », ligne {line} : classement ZRR non reconnu "
                              f"(« {_text(cells[cols['zrr_simp']])} » pour la commune « {code} »).")
        result[code.zfill(5)] = (simp, detail or simp)
    return result


def read_dgcl(book: Workbook) -> dict[str, Epci]:
    """Every EPCI of the DGCL table with its member communes (all regions) and its announced totals."""
    rows = book.rows(book.names[0])
    start, cols = _header(rows, DGCL_COLUMNS, book.source, f"feuille « {book.names[0]} »")
    width = max(cols.values()) + 1
    epcis: dict[str, Epci] = {}
    for line, row in enumerate(rows[start + 1:], start=start + 2):
        cells = row + [None] * (width - len(row))

        def cell(name: str, cells: list[Any] = cells) -> str:
            return _text(cells[cols[name]]) if name in cols else ""

        def number(name: str, cells: list[Any] = cells, line: int = line) -> int:
            text = cell(name, cells).replace(" ", "").replace("\u00a0", "")
            try:
                return int(float(text or 0))
            except ValueError:
                raise ConfigError(f"{book.source}, ligne {line} : {name} n'est pas un nombre (« {text} »).") from None

        siren, code = cell("siren"), cell("insee").zfill(5)
        if not siren or code == "00000":
            continue
        epci = epcis.get(siren)
        if epci is None:
            epci = epcis[siren] = Epci(siren, cell("raison_sociale"), cell("nature_juridique"),
                                       cell("mode_financ") or None, (number("nb_membres"), number("total_pop_mun"),
                                                                    number("total_pop_tot")))
        dep = cell("dep_com").zfill(2) if cell("dep_com") else (code[:3] if code.startswith("97") else code[:2])
        epci.members.append({"code_insee": code, "nom": cell("nom_membre") or None, "dep": dep,
                             "siren": cell("siren_membre"), "pmun_2021": number("pmun_2021"),
                             "ptot_2021": number("ptot_2021")})
    return epcis


# ---------------------------------------------------------------- checks, then the tables


def _n(number: int) -> str:
    return f"{number:,}".replace(",", " ")


def _percent(share: float) -> str:
    return f"{share * 100:.1f} %".replace(".0 %", " %").replace(".", ",")


def failed_checks(epcis: Mapping[str, Epci], zrr: Mapping[str, tuple[str, str]], checks: Checks) -> list[str]:
    """Each failed check, named with its figures; empty when the set may replace the current one."""
    failures = []
    covered = {m["dep"] for e in epcis.values() for m in e.members}
    if missing := [d for d in checks.departements if d not in covered]:
        failures.append(f"la table DGCL ne couvre pas tous les départements de PACA : aucune commune en "
                        f"{', '.join(missing)} ({len(checks.departements) - len(missing)} sur "
                        f"{len(checks.departements)} couverts)")
    wrong = [e for e in epcis.values() if e.recomputed != e.announced]
    if wrong:
        e = wrong[0]
        failures.append(f"{len(wrong)} EPCI sur {len(epcis)} dont les communes ne font pas le total annoncé par la "
                        f"table DGCL, dont {e.siren} {e.nom} : {e.recomputed[0]} communes, population municipale "
                        f"{_n(e.recomputed[1])} et totale {_n(e.recomputed[2])} recalculées, pour {e.announced[0]}, "
                        f"{_n(e.announced[1])} et {_n(e.announced[2])} annoncées (fichier tronqué ?)")
    if len(zrr) < checks.zrr_min_communes:
        failures.append(f"la table ZRR ne compte que {_n(len(zrr))} communes, au moins "
                        f"{_n(checks.zrr_min_communes)} attendues (feuille tronquée ?)")
    paca = sorted({m["code_insee"] for e in epcis.values() for m in e.members if m["dep"] in checks.departements})
    absent = [code for code in paca if code not in zrr]
    if paca and (share := 1 - len(absent) / len(paca)) < checks.paca_min_share_in_zrr:
        failures.append(f"{_n(len(paca) - len(absent))} communes de PACA sur {_n(len(paca))} trouvées dans la "
                        f"table ZRR ({_percent(share)}), au moins {_percent(checks.paca_min_share_in_zrr)} attendues "
                        f"(absentes, par exemple : {', '.join(absent[:5])})")
    return failures


def tables(epcis: Mapping[str, Epci], zrr: Mapping[str, tuple[str, str]],
           departements: tuple[str, ...] = PACA) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(communes, epci) rows: the communes of PACA and every EPCI with at least one of them."""
    communes: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for e in epcis.values():
        paca = [m for m in e.members if m["dep"] in departements]
        if not paca:
            continue
        for m in paca:
            simp, detail = zrr.get(m["code_insee"], ("NC", "NC"))
            communes.append({**m, "epci_siren": e.siren, "epci_nom": e.nom, "epci_nature": e.nature,
                             "zrr": simp, "zrr_modalite": detail, "codes_postaux": None})
        kept.append({"epci_siren": e.siren, "epci_nom": e.nom, "epci_nature": e.nature,
                     "mode_financement": e.mode_financement, "pmun_2021": e.announced[1],
                     "ptot_2021": e.announced[2], "nb_communes": len(e.members), "nb_communes_paca": len(paca),
                     "nb_communes_zrr": sum(zrr.get(m["code_insee"], ("NC",))[0] in ("C", "P") for m in paca),
                     "departements": "|".join(sorted({m["dep"] for m in e.members}))})
    return communes, kept


def update(db: Database, *, dgcl: str = DGCL_URL, zrr: str = ZRR_URL,
           client: httpx.Client | None = None, checks: Checks | None = None) -> dict[str, int]:
    """Reads both tables (addresses or local files), checks them, then replaces the reference tables at once.

    ConfigError names the source and what is wrong with it, ApiError a failed download; either way the
    reference data already in the base stays whole.
    """
    owned: list[httpx.Client] = []

    def http() -> httpx.Client:
        if client is not None:
            return client
        if not owned:
            owned.append(httpx.Client(timeout=60.0, follow_redirects=True))
        return owned[0]

    zrr_source, dgcl_source = Source(zrr), Source(dgcl)
    try:
        zrr_book = Workbook(fetch(zrr_source, http), zrr_source)
        dgcl_book = Workbook(fetch(dgcl_source, http), dgcl_source)
    finally:
        for own in owned:
            own.close()
    zrr_table, epcis = read_zrr(zrr_book), read_dgcl(dgcl_book)
    failures = failed_checks(epcis, zrr_table, checks or DEFAULT_CHECKS)
    if failures:
        raise ConfigError("Données de référence refusées, rien n'a été remplacé : " + " ; ".join(failures) + ".")
    communes, epci = tables(epcis, zrr_table, (checks or DEFAULT_CHECKS).departements)
    collectivites = [dict(zip(TABLES["collectivites"].columns, c, strict=True)) for c in COLLECTIVITES]
    ref_store.replace(db, {
        "ref_communes": (communes, f"{dgcl} + {zrr}"),
        "ref_epci": (epci, dgcl),
        "ref_collectivites": (collectivites, "SIRENE (identifiants livrés avec itn7)"),
    })
    return {"ref_communes": len(communes), "ref_epci": len(epci), "ref_collectivites": len(collectivites)}
