"""`itn7 decisions import`: the decision columns of a committee workbook, validated, then recorded.

Nothing is refused silently: every problem names its sheet, row and dossier. A file with problems
records nothing, unless the caller asks for a partial import (the rows without problems). Reading
is streamed (decisions/xlsx.py reads only the four columns): ten thousand rows stay quick and small.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import Itn7Error
from ..export.data import grant_limits, paris_naive, reading_forms
from ..export.sheets import AMOUNT_HEADER, DECISION_HEADER, KEY_HEADER, MOTIVATION_HEADER
from ..rules import RoleMap
from ..rules.mapping import FormMap
from ..store import Database, now
from ..store import decisions as decision_store
from .labels import DECISION_CODES, DECISION_LABELS, parse_key
from .xlsx import Value, XlsxError, open_workbook

AMOUNT_TEXT = re.compile(r"^-?\d+(?:[.,]\d+)?$")
CHOICES = ", ".join(DECISION_LABELS.values())
BATCH = 500


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


def import_workbook(db: Database, settings: Settings, path: Path, *,
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
    result.problems.sort(key=lambda p: p.row is not None)  # what concerns a whole sheet or the file first
    if result.problems and not partial:
        return result
    if any(p.row is None for p in result.problems):  # a problem of the whole file: nothing is safe
        return result
    _record(db, result, keep)
    return result


# ---------------------------------------------------------------- reading


def _read(path: Path, result: ImportResult) -> list[Entry]:
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise WorkbookError(f"Classeur introuvable : {path}.") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise WorkbookError(f"Classeur illisible : {path} ({type(exc).__name__}). Donnez le fichier .xlsx "
                            "produit par « itn7 export ».") from None
    sheets = 0
    by_number: dict[int, Entry] = {}
    seen: dict[int, int] = {}  # dossier → session, of every row with a key
    try:
        wb = open_workbook(archive)
        for name in wb.sheets:
            wanted: set[int] = set()  # filled from the header row, which is read first
            rows = wb.rows(name, wanted)
            first = next(rows, None)
            header = {cell.value: column for column, cell in (first[1] if first and first[0] == 1 else {}).items()
                      if cell.kind == "text"}
            if KEY_HEADER not in header:
                continue
            sheets += 1
            columns = tuple(header.get(h) for h in (DECISION_HEADER, AMOUNT_HEADER, MOTIVATION_HEADER, KEY_HEADER))
            if None in columns:
                result.problems.append(Problem(name, 1, None, "colonnes de décision absentes ou renommées"))
                continue
            wanted.update(c for c in columns if c is not None)
            for entry in _sheet_entries(name, rows, columns, result, seen):  # type: ignore[arg-type]
                _merge(by_number, entry, result)
            for merged in wb.merges.get(name, []):
                result.problems.append(Problem(name, None, None, f"cellules fusionnées ({merged}) : défusionnez-"
                                                                 "les, l'import lit une valeur par cellule"))
    except (XlsxError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise WorkbookError(f"Classeur illisible : {path} ({type(exc).__name__}). Donnez le fichier .xlsx "
                            "produit par « itn7 export ».") from None
    finally:
        archive.close()
    if not sheets:
        raise WorkbookError(f"{path} n'a pas de colonne « {KEY_HEADER} » : ce n'est pas un classeur du comité "
                            "produit par « itn7 export ».")
    sessions = set(seen.values())
    result.empty = len(seen.keys() - by_number.keys() - {p.number for p in result.problems})
    if len(sessions) > 1:
        result.problems.append(Problem("", None, None, "le classeur mêle plusieurs sessions ("
                                       + ", ".join(map(str, sorted(sessions))) + ")"))
    result.session = min(sessions) if sessions else None
    result.entries = sorted(by_number.values(), key=lambda e: e.number)
    return result.entries


def _sheet_entries(sheet: str, rows: Iterator[tuple[int, dict[int, Value]]], columns: tuple[int, int, int, int],
                   result: ImportResult, seen: dict[int, int]) -> Iterator[Entry]:
    """The decisions of one sheet's rows; `seen` collects every keyed row's dossier and session."""
    for index, found in rows:
        cells = [found.get(c) for c in columns]
        if all(c is None or (c.kind == "text" and not str(c.value).strip()) for c in cells):
            continue
        values = [c.value if c is not None else None for c in cells]
        key = parse_key(str(values[3])) if cells[3] is not None and cells[3].kind == "text" else None
        number = key[1] if key else None

        def problem(message: str, index: int = index, number: int | None = number) -> None:
            result.problems.append(Problem(sheet, index, number, message))

        odd = next((c for c in cells if c is not None and c.kind in ("formula", "error")), None)
        if odd is not None:
            problem(f"formule dans la cellule {odd.coordinate} : saisissez une valeur, pas une formule"
                    if odd.kind == "formula" else f"valeur d'erreur {odd.value} dans la cellule {odd.coordinate}")
            continue
        if key is None:
            problem("ligne sans clé itn7 (colonne masquée) : une ligne ajoutée ou modifiée à la main ? "
                    "Saisissez les décisions sur les lignes du classeur exporté")
            continue
        seen[key[1]] = key[0]
        decision = _decision(values[0], problem)
        if decision is None:
            if values[0] is None and (values[1] is not None or values[2] is not None):
                problem("montant ou motivation sans décision")
            continue
        amount = _amount(cells[1], problem)
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


def _amount(cell: Value | None, problem: Any) -> float | Invalid | None:
    value = cell.value if cell is not None else None
    if cell is None or (cell.kind == "text" and not str(value).strip()):
        return None
    if cell.kind in ("bool", "date"):
        problem(f"montant attribué en cellule {cell.coordinate} : un nombre est attendu, pas "
                + ("une date" if cell.kind == "date" else "une case à cocher"))
        return INVALID
    if cell.kind == "number":
        return float(cell.value)
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


def _validate(db: Database, settings: Settings, entries: list[Entry], result: ImportResult) -> None:
    mappings = reading_forms(db, settings)
    for start in range(0, len(entries), BATCH):  # a batch of dossiers' raw JSON at a time: memory stays flat
        batch = entries[start:start + BATCH]
        retained = {e.number for e in batch if e.decision == "retenu"}  # only these need the amounts requested
        _validate_batch(settings, mappings, batch,
                        decision_store.dossiers_for_import(db, (e.number for e in batch), retained), result)


def _validate_batch(settings: Settings, mappings: dict[str, FormMap | RoleMap], entries: list[Entry],
                    stored: dict[int, dict[str, Any]], result: ImportResult) -> None:
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


def _envelope(db: Database, result: ImportResult, keep: list[Entry]) -> None:
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


def _record(db: Database, result: ImportResult, keep: list[Entry]) -> None:
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
