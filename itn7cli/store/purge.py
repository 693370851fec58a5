"""Erasing a dossier's personal data: every row that hangs off it, its columns, then its files on disk.

Each dossier is erased in its own transaction, which also queues its attachments' paths in
`purge_files`; the files are deleted after the commit and their queue rows removed one by one, so a
run killed at any point leaves a consistent database and the next run finishes the job.
What to erase and when is decided by `itn7cli.donnees`; this module only runs the SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils

from .schema import now

# What a tombstone keeps: enough to keep syncs exact (mark_deleted, mark_vanished) and the history honest.
TOMBSTONE = {"number", "id", "demarche_number", "state", "deletion_state", "deleted_at", "deleted_reason",
             "seen_run", "synced_at", "erased_at"}
# Deletion states of a dossier DS deleted for good or no longer lists; `masque` is still restorable in DS.
DELETED_UPSTREAM = ("supprime", "disparu")
# Set here: past the démarche's retention (`expire`), erased on request while DS still lists it (`efface`).
EXPIRED, ERASED_ON_REQUEST = "expire", "efface"
PROCESSED = ("accepte", "refuse", "sans_suite")

# A dossier still holds personal data here while any of these is true.
_HOLDS_DATA = ("(d.raw IS NOT NULL OR EXISTS (SELECT 1 FROM champs c WHERE c.dossier_number = d.number) "
               "OR EXISTS (SELECT 1 FROM file_downloads f WHERE f.dossier_number = d.number))")


def candidates(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Dossiers holding personal data that a rule may erase: deleted upstream, erased on request, or processed.

    Each is {number, demarche_number, demarche_key, state, deletion_state, deleted_at, deleted_reason,
    date_traitement, date_expiration, duree_conservation_dossiers, requested_at}.
    """
    sql = f"""
        SELECT d.number, d.demarche_number, m.key AS demarche_key, d.state, d.deletion_state, d.deleted_at,
               d.deleted_reason, d.date_traitement, d.date_expiration, m.duree_conservation_dossiers,
               r.requested_at
        FROM dossiers d LEFT JOIN demarches m ON m.number = d.demarche_number
        LEFT JOIN erasure_requests r ON r.number = d.number
        WHERE {_HOLDS_DATA} AND (d.deletion_state IN ({", ".join("?" * len(DELETED_UPSTREAM))}, ?, ?)
              OR r.number IS NOT NULL OR (d.state IN ({", ".join("?" * len(PROCESSED))})
                                          AND d.date_traitement IS NOT NULL))
        ORDER BY d.number"""
    params = [*DELETED_UPSTREAM, EXPIRED, ERASED_ON_REQUEST, *PROCESSED]
    return [dict(row) for row in db.query(sql, params)]


def dossier(db: sqlite_utils.Database, number: int) -> dict[str, Any] | None:
    """{number, demarche_key, state, deletion_state, holds_data} of one stored dossier, or None."""
    rows = list(db.query(
        f"SELECT d.number, m.key AS demarche_key, d.state, d.deletion_state, {_HOLDS_DATA} AS holds_data "
        "FROM dossiers d LEFT JOIN demarches m ON m.number = d.demarche_number WHERE d.number = ?", [number]))
    return rows[0] if rows else None


def _children(db: sqlite_utils.Database, parent: str) -> Iterator[tuple[str, str]]:
    """(table, column) of every table whose foreign key points at `parent`(number), deepest first.

    Every such key holds the dossier number (checks.number is the dossier's), so one value finds
    every row that hangs off a dossier, in tables other modules may add later too.
    """
    for name in db.table_names():
        for fk in db.table(name).foreign_keys:
            if fk.other_table == parent and fk.other_column == "number" and fk.column and name != parent:
                yield from _children(db, name)
                yield name, fk.column


def erase(db: sqlite_utils.Database, number: int, *, mark: tuple[str, str, str] | None = None,
          requested: bool = False) -> None:
    """Erases dossier `number`'s personal data in one transaction, keeping its tombstone row.

    `mark` (deletion_state, deleted_at, deleted_reason) is set when DS still lists the dossier as live;
    `requested` records an erasure on request, which the next purges repeat if a sync brings it back.
    Its attachments are queued in `purge_files`: delete them after this returns (`pending_files`).
    """
    stamp = now()
    columns = [c for c in db.table("dossiers").columns_dict if c not in TOMBSTONE]
    with db.atomic():
        db.execute("INSERT OR IGNORE INTO purge_files (path, dossier_number, queued_at) "
                   "SELECT path, dossier_number, ? FROM file_downloads WHERE dossier_number = ? AND path IS NOT NULL",
                   [stamp, number])
        for table, column in _children(db, "dossiers"):
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", [number])
        db.execute(f"UPDATE dossiers SET {', '.join(f'{c} = NULL' for c in columns)}, erased_at = ? WHERE number = ?",
                   [stamp, number])
        if mark is not None:
            db.execute("UPDATE dossiers SET deletion_state = ?, deleted_at = ?, deleted_reason = ? "
                       "WHERE number = ? AND deletion_state IS NULL", [*mark, number])
        if requested:
            db.execute("INSERT OR IGNORE INTO erasure_requests (number, requested_at) VALUES (?, ?)", [number, stamp])


def pending_files(db: sqlite_utils.Database) -> list[str]:
    """Attachments (paths relative to the files folder) of erased dossiers, not yet deleted from disk."""
    return [row[0] for row in db.execute("SELECT path FROM purge_files ORDER BY path").fetchall()]


def file_deleted(db: sqlite_utils.Database, path: str) -> None:
    """Forgets a queued attachment once it is gone from disk."""
    with db.atomic():
        db.execute("DELETE FROM purge_files WHERE path = ?", [path])


def compact(db: sqlite_utils.Database) -> None:
    """Rewrites the database without free pages, then empties the WAL: erased text lingers in neither."""
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def secure_delete(db: sqlite_utils.Database) -> None:
    """Deleted content is overwritten with zeros on this connection (belt and braces before VACUUM)."""
    db.execute("PRAGMA secure_delete = ON")
