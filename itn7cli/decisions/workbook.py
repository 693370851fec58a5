"""`itn7 decisions import`: the decision columns of a committee workbook, validated, then recorded.

Nothing is refused silently: every problem names its sheet, row and dossier. A file with problems
records nothing, unless the caller asks for a partial import (the rows without problems). Reading
is streamed (openpyxl read-only mode): a workbook of ten thousand rows stays quick and small.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import sqlite_utils
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from ..config import Settings
from ..errors import Itn7Error
from ..export.data import grant_limits, paris_naive
from ..export.sheets import AMOUNT_HEADER, DECISION_HEADER, KEY_HEADER, MOTIVATION_HEADER
from ..rules import mappings_from_settings
from ..store import decisions as decision_store
from ..store import now
from .labels import DECISION_CODES, DECISION_LABELS, parse_key

MERGE = re.compile(rb'<mergeCell ref="([A-Z]+\d+(?::[A-Z]+\d+)?)"')
AMOUNT_TEXT = re.compile(r"^-?\d+(?:[.,]\d+)?$")
CHOICES = ", ".join(DECISION_LABELS.values())


class WorkbookError(Itn7Error):
    """The file is not a committee workbook itn7 can read."""


@dataclass(frozen=True)
class Problem:
    """Something wrong in the workbook, where it is."""

    sheet: str
    row: int | None
    number: int | None
    message: str

    def __str__(self) -> str:
        where = f"feuille « {self.sheet} »" if self.sheet else "classeur"
        if self.row is not None:
            where += f", ligne {self.row}"
        if self.number is not None:
            where += f", dossier {self.number}"
        return f"{where} : {self.message}"


@dataclass
class Entry:
    """One decision read from the workbook."""

    sheet: str
    row: int
    number: int
    session: int
    modified: str | None
    decision: str
    amount: float | None
    motivation: str | None

    def same(self, other: Entry) -> bool:
        return (self.decision, self.amount, self.motivation) == (other.decision, other.amount, other.motivation)


@dataclass
class ImportResult:
    """What an import found and did."""

    path: Path
    session: int | None = None
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # accepted, but the committee should know
    empty: int = 0  # dossier rows without a decision
    recorded: int = 0
    unchanged: int = 0
    attributed: float = 0.0  # the session's « Retenu » amounts once recorded
    earlier: float = 0.0  # what the other sessions attributed
    enveloppe: float = 0.0


def import_workbook(db: sqlite_utils.Database, settings: Settings, path: Path, *,
                    partial: bool = False) -> ImportResult:
    """Reads, validates and (if clean, or `partial`) records the decisions of a committee workbook."""
    result = ImportResult(path, enveloppe=settings.enveloppe)
    entries = _read(path, result)
    if entries:
        _validate(db, settings, entries, result)
    bad = {p.number for p in result.problems if p.number is not None}
    keep = [e for e in result.entries if e.number not in bad]
    if result.session is not None:
        _envelope(db, result, keep)
    if result.problems and not partial:
        return result
    if any(p.row is None for p in result.problems):  # a problem of the whole file: nothing is safe
        return result
    _record(db, result, keep)
    return result


# ---------------------------------------------------------------- reading


def _read(path: Path, result: ImportResult) -> list[Entry]:
    try:
        wb = load_workbook(path, read_only=True, data_only=False)
    except FileNotFoundError:
        raise WorkbookError(f"Classeur introuvable : {path}.") from None
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise WorkbookError(f"Classeur illisible : {path} ({type(exc).__name__}). Donnez le fichier .xlsx "
                            "produit par « itn7 export ».") from None
    try:
        by_number: dict[int, Entry] = {}
        sheets = 0
        for ws in wb.worksheets:
            rows = ws.iter_rows(min_row=1)
            header = next(rows, None)
            names = [c.value if isinstance(c.value, str) else None for c in header or ()]
            if KEY_HEADER not in names:
                continue
            sheets += 1
            for merged in _merged_ranges(path, ws):
                result.problems.append(Problem(ws.title, None, None, f"cellules fusionnées ({merged}) : défusionnez-"
                                                                     "les, l'import lit une valeur par cellule"))
            columns = tuple(names.index(h) if h in names else None
                            for h in (DECISION_HEADER, AMOUNT_HEADER, MOTIVATION_HEADER, KEY_HEADER))
            if None in columns:
                result.problems.append(Problem(ws.title, 1, None, "colonnes de décision absentes ou renommées"))
                continue
            for entry in _sheet_entries(ws.title, rows, columns, result):  # type: ignore[arg-type]
                _merge(by_number, entry, result)
        if not sheets:
            raise WorkbookError(f"{path} n'a pas de colonne « {KEY_HEADER} » : ce n'est pas un classeur du comité "
                                "produit par « itn7 export ».")
    finally:
        wb.close()
    sessions = sorted({e.session for e in by_number.values()})
    if len(sessions) > 1:
        result.problems.append(Problem("", None, None, "le classeur mêle plusieurs sessions ("
                                       + ", ".join(map(str, sessions)) + ")"))
    result.session = sessions[0] if sessions else None
    result.entries = sorted(by_number.values(), key=lambda e: e.number)
    return result.entries


def _merged_ranges(path: Path, ws: Any) -> list[str]:
    """The merged ranges of a sheet; read-only mode does not report them, the sheet's XML does."""
    member = getattr(ws, "_worksheet_path", None)
    if not member:
        return []
    with zipfile.ZipFile(path) as archive, archive.open(member.lstrip("/")) as handle:
        tail = handle.read()
    start = tail.rfind(b"<mergeCells")
    return [m.decode() for m in MERGE.findall(tail, start)] if start >= 0 else []


def _sheet_entries(sheet: str, rows: Iterator[tuple[Any, ...]], columns: tuple[int, int, int, int],
                   result: ImportResult) -> Iterator[Entry]:
    for index, row in enumerate(rows, start=2):
        cells = [row[i] if i < len(row) else None for i in columns]
        values = [getattr(c, "value", None) for c in cells]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        formulas = [c.coordinate for c in cells if c is not None and getattr(c, "data_type", None) == "f"]
        key = parse_key(values[3]) if isinstance(values[3], str) else None
        number = key[1] if key else None

        def problem(message: str, index: int = index, number: int | None = number) -> None:
            result.problems.append(Problem(sheet, index, number, message))

        if formulas:
            problem(f"formule dans la cellule {formulas[0]} : saisissez une valeur, pas une formule")
            continue
        if key is None:
            problem("ligne sans clé itn7 (colonne masquée) : une ligne ajoutée ou modifiée à la main ? "
                    "Saisissez les décisions sur les lignes du classeur exporté")
            continue
        decision = _decision(values[0], problem)
        if decision is None:
            if values[0] is None and (values[1] is not None or values[2] is not None):
                problem("montant ou motivation sans décision")
            elif values[0] is None:
                result.empty += 1
            continue
        amount = _amount(values[1], problem)
        motivation = _motivation(values[2], problem)
        if isinstance(amount, Invalid) or isinstance(motivation, Invalid):
            continue
        yield Entry(sheet, index, key[1], key[0], key[2], decision, amount, motivation)


def _decision(value: Any, problem: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    code = DECISION_CODES.get(value.strip().casefold()) if isinstance(value, str) else None
    if code is None:
        problem(f"décision « {value} » inconnue : choisissez {CHOICES}")
    return code


class Invalid:
    """A cell whose value has the wrong type (its problem is already noted)."""


INVALID = Invalid()


def _amount(value: Any, problem: Any) -> float | Invalid | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool | datetime | date | time):
        problem(f"montant attribué « {value} » : un nombre est attendu")
        return INVALID
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace("\u202f", "").replace("\xa0", "").replace(" ", "").removesuffix("€")
    if AMOUNT_TEXT.match(text):
        return float(text.replace(",", "."))
    problem(f"montant attribué « {value} » : un nombre est attendu")
    return INVALID


def _motivation(value: Any, problem: Any) -> str | Invalid | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problem(f"motivation « {value} » : un texte est attendu")
        return INVALID
    return value.strip() or None


def _merge(by_number: dict[int, Entry], entry: Entry, result: ImportResult) -> None:
    """The same dossier appears on « Dossiers » and on its département's sheet: one decision, or a problem."""
    seen = by_number.get(entry.number)
    if seen is None:
        by_number[entry.number] = entry
    elif not seen.same(entry):
        result.problems.append(Problem(entry.sheet, entry.row, entry.number,
                                       f"décision différente de celle de la feuille « {seen.sheet} », ligne "
                                       f"{seen.row} : une seule décision par dossier"))


# ---------------------------------------------------------------- validating


def _euros(amount: float) -> str:
    return f"{amount:,.2f} €".replace(",", "\u202f").replace(".", ",")


def _validate(db: sqlite_utils.Database, settings: Settings, entries: list[Entry], result: ImportResult) -> None:
    stored = decision_store.dossiers_for_import(db, (e.number for e in entries))
    mappings = mappings_from_settings(settings.mapping)
    for e in entries:
        def problem(message: str, e: Entry = e) -> None:
            result.problems.append(Problem(e.sheet, e.row, e.number, message))

        record = stored.get(e.number)
        if record is None:
            problem("dossier inconnu de la base : le classeur vient-il d'une autre base ?")
            continue
        if record["deleted"]:
            problem("dossier supprimé dans Démarche Numérique depuis l'export")
            continue
        if record["session"] != e.session:
            where = f"de la session {record['session']}" if record["session"] else "hors session"
            problem(f"dossier {where}, pas de la session {e.session} du classeur")
            continue
        if (record["modified"] or None) != e.modified:
            when = paris_naive(record["modified"])
            problem("dossier modifié dans Démarche Numérique depuis l'export du classeur"
                    + (f" (le {when:%d/%m/%Y à %H:%M})" if when else "")
                    + " : relisez-le, puis exportez un nouveau classeur et reportez-y la décision")
            continue
        if e.amount is not None and e.amount < 0:
            problem(f"montant attribué négatif ({_euros(e.amount)})")
            continue
        if e.decision != "retenu":
            if e.amount:
                problem(f"montant attribué pour une décision « {DECISION_LABELS[e.decision]} » : seul un dossier "
                        "retenu reçoit un montant")
            elif e.decision in ("refuse", "sans_suite") and not e.motivation:
                problem(f"« {DECISION_LABELS[e.decision]} » sans motivation : le demandeur doit lire la raison "
                        "(Démarche Numérique l'exige)")
            continue
        if e.amount is None or e.amount == 0:
            problem("« Retenu » sans montant attribué")
            continue
        limits = grant_limits(record["raw"], record["key"] or "general",
                              mappings.get(record["key"] or "general") or mappings["general"])
        if limits.requested is not None and e.amount > limits.requested + 0.005:
            problem(f"montant attribué ({_euros(e.amount)}) supérieur à la subvention sollicitée "
                    f"({_euros(limits.requested)})")
        elif e.amount > settings.plafond_commune + 0.005:
            if limits.single_commune:
                problem(f"montant attribué ({_euros(e.amount)}) supérieur au plafond d'une commune seule "
                        f"({_euros(settings.plafond_commune)})")
            else:
                kind = "EPCI" if limits.epci else "porteur groupé ou non communal"
                result.notes.append(Problem(e.sheet, e.row, e.number,
                                            f"règle assouplie appliquée ({kind}) : {_euros(e.amount)} au-delà du "
                                            f"plafond communal de {_euros(settings.plafond_commune)}, sur décision "
                                            "du comité"))


def _envelope(db: sqlite_utils.Database, result: ImportResult, keep: list[Entry]) -> None:
    """The session's total once recorded, against the envelope less what the other sessions attributed."""
    recorded = decision_store.recorded(db)
    by_number = {n: r for n, r in recorded.items()}
    for e in keep:
        by_number[e.number] = {"session": e.session, "decision": e.decision, "amount": e.amount}
    session = result.session
    result.attributed = sum(r["amount"] or 0.0 for r in by_number.values()
                            if r["session"] == session and r["decision"] == "retenu")
    result.earlier = sum(r["amount"] or 0.0 for r in by_number.values()
                         if r["session"] != session and r["decision"] == "retenu")
    excess = result.attributed + result.earlier - result.enveloppe
    if excess > 0.005:
        result.problems.append(Problem("", None, None,
                                       f"enveloppe régionale dépassée de {_euros(excess)} : la session {session} "
                                       f"attribuerait {_euros(result.attributed)}, les autres sessions "
                                       f"{_euros(result.earlier)}, pour {_euros(result.enveloppe)}"))


def _record(db: sqlite_utils.Database, result: ImportResult, keep: list[Entry]) -> None:
    recorded = decision_store.recorded(db)
    stamp = now()
    rows = []
    for e in keep:
        before = recorded.get(e.number)
        if before is not None and (before["decision"], before["amount"], before["motivation"], before["session"],
                                   before["exported_modified"]) == (e.decision, e.amount, e.motivation, e.session,
                                                                    e.modified):
            result.unchanged += 1
            continue
        rows.append({"dossier_number": e.number, "session": e.session, "decision": e.decision, "amount": e.amount,
                     "motivation": e.motivation, "source_file": result.path.name, "imported_at": stamp,
                     "exported_modified": e.modified})
    result.recorded = decision_store.save(db, rows)


__all__ = ["Entry", "ImportResult", "Problem", "WorkbookError", "import_workbook"]
