"""Dossiers the API could not serialise: recorded by the sync, re-read at every sync, shown by check and export."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .schema import now


def record(db: sqlite_utils.Database, demarche_number: int, number: int, message: str) -> None:
    """Notes (or notes again) that dossier `number` could not be read. Call inside a transaction, after the
    dossier has a row in `dossiers` (a stub when it was never read whole)."""
    stamp = now()
    db.execute(
        "INSERT INTO unreadable_dossiers (number, demarche_number, message, first_seen_at, last_tried_at, attempts) "
        "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(number) DO UPDATE SET message = excluded.message, "
        "last_tried_at = excluded.last_tried_at, attempts = attempts + 1",
        [number, demarche_number, message, stamp, stamp])


def clear(db: sqlite_utils.Database, numbers: list[int]) -> None:
    """Forgets dossiers that were read whole at last."""
    if numbers:
        db.execute(f"DELETE FROM unreadable_dossiers WHERE number IN ({','.join('?' * len(numbers))})", numbers)


def listed(db: sqlite_utils.Database, demarche_number: int | None = None) -> list[dict[str, Any]]:
    """Every unreadable dossier {number, demarche_number, message, first_seen_at, last_tried_at, attempts}."""
    sql = "SELECT * FROM unreadable_dossiers"
    params: list[Any] = []
    if demarche_number is not None:
        sql += " WHERE demarche_number = ?"
        params.append(demarche_number)
    return [dict(row) for row in db.query(sql + " ORDER BY number", params)]
