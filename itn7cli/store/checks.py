"""The results of `itn7 check`: what needs checking, the dossiers to check, verdicts and findings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlite_utils

from .schema import LIVE

CHECK_COLUMNS = ("number", "demarche_number", "session", "status", "priority", "score", "ruleset_version",
                 "config_hash", "form_hash", "dossier_modified", "dossier_synced", "siren", "siren_count",
                 "checked_at")
FINDING_COLUMNS = ("dossier_number", "position", "rule", "status", "message")


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def siren_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Live dossiers per applicant SIREN, across both démarches."""
    rows = db.execute(f"SELECT d.siren, count(*) FROM dossiers d WHERE {LIVE} AND d.siren IS NOT NULL "
                      "GROUP BY d.siren")
    return {siren: count for siren, count in rows}


def forget_deleted(db: sqlite_utils.Database) -> None:
    """Results of dossiers deleted upstream since their check go away."""
    gone = "SELECT number FROM dossiers WHERE deletion_state IS NOT NULL"
    with db.atomic():
        db.execute(f"DELETE FROM check_findings WHERE dossier_number IN ({gone})")
        db.execute(f"DELETE FROM checks WHERE number IN ({gone})")


def previous_checks(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    """Every live dossier of a configured démarche with what its last check was made from (None if never),
    streamed: 10 000 of them held at once would be a tenth of the check's memory."""
    cursor = db.execute(
        "SELECT d.number, m.number AS demarche_number, d.date_derniere_modification AS modified, "
        "d.synced_at AS synced, d.siren, c.number AS checked, c.ruleset_version, c.config_hash, c.form_hash, "
        "c.dossier_modified, c.dossier_synced, c.siren_count "
        f"FROM dossiers d JOIN demarches m ON m.number = d.demarche_number LEFT JOIN checks c ON c.number = d.number "
        f"WHERE {LIVE} ORDER BY d.number")
    names = [c[0] for c in cursor.description]
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def live_numbers(db: sqlite_utils.Database) -> list[int]:
    """Every live dossier of a configured démarche, by number: what a forced check checks. (Reading
    `previous_checks` instead would read each dossier's sync time, stored after its raw JSON.)"""
    return [number for (number,) in db.execute(
        f"SELECT d.number FROM dossiers d JOIN demarches m ON m.number = d.demarche_number WHERE {LIVE} "
        "ORDER BY d.number")]


def dossiers_to_check(db: sqlite_utils.Database, numbers: Sequence[int]) -> list[dict[str, Any]]:
    """{number, demarche_number, key, modified, synced, siren, date_depot, raw} of `numbers`; raw is the
    dossier's JSON as UTF-8 bytes (or None): a JSON parser reads them as they are, where a text would be
    decoded into a str and encoded back."""
    cursor = db.execute(
        "SELECT d.number, d.demarche_number, m.key, d.date_derniere_modification AS modified, d.synced_at AS synced, "
        "d.siren, d.date_depot, CAST(d.raw AS BLOB) AS raw FROM dossiers d "
        "JOIN demarches m ON m.number = d.demarche_number "
        f"WHERE d.number IN ({_marks(numbers)}) ORDER BY d.number", list(numbers))
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def unreadable(db: sqlite_utils.Database) -> dict[int, str]:
    """Dossier number → since when the API cannot serialise it, for dossiers not deleted upstream."""
    return {number: since for number, since in db.execute(
        "SELECT u.number, u.first_seen_at FROM unreadable_dossiers u JOIN dossiers d ON d.number = u.number "
        "WHERE d.deletion_state IS NULL")}


def save_results(db: sqlite_utils.Database, numbers: Sequence[int], checks: Iterable[Sequence[Any]],
                 findings: Iterable[Sequence[Any]]) -> None:
    """Replaces the results of `numbers` by `checks` (rows of CHECK_COLUMNS) and their `findings` (rows of
    FINDING_COLUMNS), in one transaction."""
    marks = _marks(numbers)
    with db.atomic():
        db.execute(f"DELETE FROM check_findings WHERE dossier_number IN ({marks})", list(numbers))
        db.execute(f"DELETE FROM checks WHERE number IN ({marks})", list(numbers))
        db.conn.executemany(f"INSERT INTO checks ({', '.join(CHECK_COLUMNS)}) VALUES ({_marks(CHECK_COLUMNS)})",
                            checks)
        db.conn.executemany(f"INSERT INTO check_findings ({', '.join(FINDING_COLUMNS)}) "
                            f"VALUES ({_marks(FINDING_COLUMNS)})", findings)


def counts(db: sqlite_utils.Database) -> list[tuple[int | None, str, int]]:
    """(session, status, count) of the stored results of dossiers not deleted upstream."""
    return [(session, status, count) for session, status, count in db.execute(
        "SELECT c.session, c.status, count(*) FROM checks c JOIN dossiers d ON d.number = c.number "
        "WHERE d.deletion_state IS NULL GROUP BY c.session, c.status")]


def results(db: sqlite_utils.Database, session: int | None = None, demarche: str | None = None,
            status: str | None = None) -> list[dict[str, Any]]:
    """Stored results of dossiers not deleted upstream, by number: {number, demarche (key), session, status,
    priority (JSON text), findings: [{rule, status, message}]}."""
    sql = ("SELECT c.number, m.key, c.session, c.status, c.priority FROM checks c "
           "JOIN dossiers d ON d.number = c.number JOIN demarches m ON m.number = d.demarche_number "
           "WHERE d.deletion_state IS NULL")
    params: list[Any] = []
    for clause, value in (("c.session = ?", session), ("m.key = ?", demarche), ("c.status = ?", status)):
        if value is not None:
            sql += f" AND {clause}"
            params.append(value)
    rows = db.execute(sql + " ORDER BY c.number", params).fetchall()
    by_dossier: dict[int, list[dict[str, str]]] = {}
    for number, rule, status_, message in db.execute(
            "SELECT dossier_number, rule, status, message FROM check_findings ORDER BY dossier_number, position"):
        by_dossier.setdefault(number, []).append({"rule": rule, "status": status_, "message": message})
    return [{"number": number, "demarche": key, "session": session_, "status": status_, "priority": priority,
             "findings": by_dossier.get(number, [])} for number, key, session_, status_, priority in rows]


def stale(db: sqlite_utils.Database, ruleset_version: str) -> bool:
    """True when a live or unreadable dossier is new, changed or restored since its check, when results come
    from another rule set, or when a dossier deleted upstream still has results."""
    if "checks" not in db.table_names():
        return True
    changed = db.execute(
        f"""SELECT count(*) FROM dossiers d LEFT JOIN checks c ON c.number = d.number
           WHERE {LIVE} AND (c.number IS NULL OR c.ruleset_version != ? OR d.synced_at IS NOT c.dossier_synced
                 OR d.date_derniere_modification IS NOT c.dossier_modified)""", [ruleset_version]).fetchone()[0]
    unchecked = db.execute(
        "SELECT count(*) FROM unreadable_dossiers u JOIN dossiers d ON d.number = u.number "
        "LEFT JOIN checks c ON c.number = u.number WHERE d.deletion_state IS NULL AND c.number IS NULL").fetchone()[0]
    deleted = db.execute("SELECT count(*) FROM checks c JOIN dossiers d ON d.number = c.number "
                         "WHERE d.deletion_state IS NOT NULL").fetchone()[0]
    return bool(changed or unchecked or deleted)
