"""What `sync --files` put on disk (`file_downloads`), and the files of a committee session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlite_utils

from .schema import LIVE, now

Slot = tuple[int, str, int]  # dossier number, champ id, position in the champ
Records = dict[int, dict[tuple[str, int], dict[str, Any]]]  # by dossier, then (champ id, position)


def records(db: sqlite_utils.Database, demarche_numbers: Sequence[int]) -> Records:
    """Every download record of the démarches, by dossier then (champ id, position)."""
    if not demarche_numbers:
        return {}
    marks = ",".join("?" * len(demarche_numbers))
    found: Records = {}
    for row in db.query(f"SELECT * FROM file_downloads WHERE demarche_number IN ({marks})", list(demarche_numbers)):
        found.setdefault(row["dossier_number"], {})[(row["champ_id"], row["position"])] = row
    return found


def record(db: sqlite_utils.Database, rows: Iterable[dict[str, Any]]) -> None:
    """Writes outcomes {dossier_number, champ_id, position, demarche_number, path, filename, size, checksum,
    status, message} in one transaction, stamped now."""
    stamp = now()
    batch = [{**row, "downloaded_at": stamp} for row in rows]
    if batch:
        with db.atomic():
            db.table("file_downloads").upsert_all(batch, pk=("dossier_number", "champ_id", "position"))


def forget(db: sqlite_utils.Database, slots: Iterable[Slot]) -> None:
    """Deletes the records of files their dossier no longer holds."""
    with db.atomic():
        for slot in slots:
            db.execute("DELETE FROM file_downloads WHERE dossier_number = ? AND champ_id = ? AND position = ?",
                       list(slot))


def file_states(db: sqlite_utils.Database, demarche_numbers: Sequence[int]) -> list[tuple[Any, ...]]:
    """For every file of the live dossiers of the démarches, as the API last listed it, and its download record:
    (demarche_number, dossier_number, checksum, byte_size, status, done_checksum, path, size), by dossier."""
    if not demarche_numbers:
        return []
    marks = ",".join("?" * len(demarche_numbers))
    return [tuple(row) for row in db.execute(
        "SELECT d.demarche_number, f.dossier_number, f.checksum, f.byte_size, g.status, g.checksum, g.path, g.size "
        "FROM files f JOIN dossiers d ON d.number = f.dossier_number "
        "LEFT JOIN file_downloads g ON g.dossier_number = f.dossier_number AND g.champ_id = f.champ_id "
        f"AND g.position = f.position WHERE {LIVE} AND d.demarche_number IN ({marks}) "
        "ORDER BY f.dossier_number", list(demarche_numbers))]


def session_candidates(db: sqlite_utils.Database, demarche_key: str | None) -> list[tuple[int, str | None, int | None,
                                                                                             bool]]:
    """Live dossiers (of one démarche, by key, if given) with what decides their session:
    (number, date_depot, session written by the check or None, whether the check saw it)."""
    has_checks = "checks" in db.table_names()
    sql = ("SELECT d.number, d.date_depot, " + ("c.session, c.number IS NOT NULL" if has_checks else "NULL, 0") +
           " FROM dossiers d JOIN demarches m ON m.number = d.demarche_number" +
           (" LEFT JOIN checks c ON c.number = d.number" if has_checks else "") +
           f" WHERE {LIVE}" + (" AND m.key = ?" if demarche_key else "") + " ORDER BY d.number")
    return [(n, date, session, bool(checked))
            for n, date, session, checked in db.execute(sql, [demarche_key] if demarche_key else [])]


def verified(db: sqlite_utils.Database, dossier_number: int) -> list[tuple[str, int]]:
    """(path, size) of the dossier's verified files, in champ order."""
    return [(path, size) for path, size in db.execute(
        "SELECT path, size FROM file_downloads WHERE dossier_number = ? AND status = 'ok' "
        "ORDER BY champ_id, position", [dossier_number])]
