"""`itn7 export`: the committee's workbook for one session, written from the database only.

Sheets: Synthèse, Dossiers, one sheet per département (the groupe instructeur's, so that each
departmental referent finds the dossiers DS routes to them), Dépenses, Contrôles. The workbook is
streamed (openpyxl write-only mode): memory stays flat whatever the number of dossiers.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath, PurePosixPath
from zipfile import ZIP_DEFLATED, ZipFile

from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from .. import check as check_mod
from .. import refdata as refdata_mod
from .. import store
from ..config import PARIS, Settings
from ..errors import ConfigError, Itn7Error
from ..store import Database, committee
from .data import DEPARTEMENTS, earlier_totals, freshness, session_rows
from .sheets import (
    OTHER_DEPARTEMENTS,
    Context,
    DossierTable,
    ExpenseTable,
    FindingTable,
    Summary,
    departement_sheet_title,
    write_synthese,
)

ALL_SESSIONS = 0  # `--session 0`: one workbook of every session's dossiers

__all__ = ["ALL_SESSIONS", "ExportResult", "default_path", "export_session", "gather_pieces", "pieces_folder",
           "refresh_checks", "session_closing"]


@dataclass
class ExportResult:
    """What was written: where, how many dossiers, and their statuses."""

    path: Path
    dossiers: int = 0
    by_status: Counter[str] = field(default_factory=Counter)


def default_path(session: int, demarche: str | None = None, today: datetime | None = None) -> Path:
    """« itn7-comite-session-2-2026-11-28.xlsx » (« …-session-2-labo-… » for one démarche), Paris date."""
    day = (today or datetime.now(PARIS)).strftime("%Y-%m-%d")
    scope = f"-{demarche}" if demarche else ""
    sessions = "toutes-sessions" if session == ALL_SESSIONS else f"session-{session}"
    return Path(f"itn7-comite-{sessions}{scope}-{day}.xlsx")


def pieces_folder(output: Path) -> Path:
    """Where `--files` gathers the attachments: beside the workbook, named after it."""
    return output.with_name(f"{output.stem}-pieces")


def gather_pieces(db: Database, settings: Settings, session: int, output: Path,
                  demarche: str | None = None) -> dict[int, PurePath]:
    """Gathers the session's verified attachments beside the workbook; returns each dossier's folder
    relative to the workbook's folder, for the « Pièces » links."""
    from .pieces import gather_session

    folder = pieces_folder(output)
    gathered = gather_session(db, settings, session, folder, demarche)
    return {number: PurePath(folder.name, relative) for number, relative in gathered.items()}


def refresh_checks(db: Database, settings: Settings) -> str | None:
    """Runs the check when its stored results are missing or out of date; returns why it ran, or None."""
    store.ensure_synced(db)
    total, other_config = committee.check_counts(db, check_mod.config_hash(settings, refdata_mod.meta(db)))
    if not total:
        reason = "Aucun contrôle enregistré"
    elif check_mod.stale(db):
        reason = "Contrôles antérieurs à la dernière synchronisation"
    elif other_config:
        reason = "Configuration ou données de référence modifiées depuis le dernier contrôle"
    else:
        return None
    summary = check_mod.run(db, settings)
    return f"{reason} : contrôle relancé ({summary.checked} dossier(s) contrôlé(s))."


def session_closing(settings: Settings, session: int) -> datetime:
    """The closing of `session` (naive Paris time), the last one for ALL_SESSIONS; ConfigError for a
    session the call does not have."""
    closings = sorted(settings.sessions)
    if session == ALL_SESSIONS and closings:
        session = len(closings)
    if not 1 <= session <= len(closings):
        raise ConfigError(f"Session inconnue : {session} (sessions de l'appel : 1 à {len(closings)} ; "
                          "0 pour toutes).")
    return closings[session - 1].astimezone(PARIS).replace(tzinfo=None)


def _footer(session: int, generated: datetime) -> str:
    which = "toutes sessions" if session == ALL_SESSIONS else f"comité de la session {session}"
    return f"ITN7 Axe 3 — {which} — classeur du {generated:%d/%m/%Y %H:%M}"


def _relative(path: PurePath | None) -> PurePosixPath | None:
    return PurePosixPath(*path.parts) if path is not None else None


def export_session(db: Database, settings: Settings, session: int, output: Path, *,
                   demarche: str | None = None, pieces: Mapping[int, PurePath] | None = None) -> ExportResult:
    """Writes the session's workbook to `output` (atomically: a reader never sees half a file); with
    `session` ALL_SESSIONS, one workbook of the dossiers of every session.

    Expects fresh check results (see `refresh_checks`). `pieces` maps dossier numbers to their
    attachments folder, relative to the workbook's folder, for the « Pièces » column.
    """
    store.ensure_synced(db)
    closing = session_closing(settings, session)
    generated = datetime.now(PARIS).replace(tzinfo=None)
    footer = _footer(session, generated)
    wb = Workbook(write_only=True)
    synthese = wb.create_sheet("Synthèse")
    dossiers = DossierTable(wb.create_sheet("Dossiers"), settings, footer, pieces=pieces is not None)
    by_departement = {code: DossierTable(wb.create_sheet(departement_sheet_title(code)), settings, footer,
                                         pieces=pieces is not None) for code in DEPARTEMENTS}
    expenses = ExpenseTable(wb.create_sheet("Dépenses"), footer)
    findings = FindingTable(wb.create_sheet("Contrôles"), footer)
    others: DossierTable | None = None
    summary = Summary()
    result = ExportResult(output)
    for row in session_rows(db, settings, session, demarche):
        folder = _relative(pieces.get(row.number)) if pieces else None
        table = by_departement.get(row.groupe_departement)
        if table is None:
            if others is None:  # only when a dossier is routed outside PACA's six groupes
                others = DossierTable(wb.create_sheet(OTHER_DEPARTEMENTS), settings, footer, pieces=pieces is not None)
                # after the six; by title: move_sheet only takes a (non write-only) Worksheet object
                wb.move_sheet(others.ws.title, 2 + len(DEPARTEMENTS) - wb.index(others.ws))
            table = others
        dossiers.add(row, folder, also=table)
        expenses.add(row)
        findings.add(row)
        summary.add(row)
        result.dossiers += 1
        result.by_status[row.status] += 1
    for sheet in (dossiers, *by_departement.values(), *([others] if others else []), expenses, findings):
        sheet.finish()
    ctx = Context(session, closing, demarche, freshness(db, session, demarche), generated, settings)
    earlier = {} if session == ALL_SESSIONS else earlier_totals(db, settings, session, demarche)
    write_synthese(synthese, summary, earlier, ctx)
    _save(wb, output)
    return result


COMPRESSION = 3  # zlib's level: twice as fast as openpyxl's default (6), a file about 1/6 larger


def _write(wb: Workbook, path: str) -> None:
    """`Workbook.save` (openpyxl's `save_workbook`, through its public ExcelWriter), with a faster
    compression: deflating the sheets at the default level took a fifth of an export."""
    wb.properties.modified = datetime.now(UTC).replace(tzinfo=None)
    with ZipFile(path, "w", ZIP_DEFLATED, allowZip64=True, compresslevel=COMPRESSION) as archive:
        ExcelWriter(wb, archive).save()


def _save(wb: Workbook, output: Path) -> None:
    """Saves next to the target then renames, so a failed export never leaves a truncated workbook."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".itn7-", suffix=".xlsx", dir=output.parent)
    os.close(handle)
    try:
        _write(wb, temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; colleagues must be able to open it
        os.replace(temporary, output)
    except PermissionError:
        raise Itn7Error(f"Impossible d'écrire {output} : le fichier est-il ouvert dans Excel ou LibreOffice ? "
                        "Fermez-le puis relancez.") from None
    except OSError as exc:
        raise Itn7Error(f"Impossible d'écrire {output} : {exc.strerror}.") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
