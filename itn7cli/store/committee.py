"""What the committee workbook reads: a session's dossiers with their check results, and the dates it shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils

from .schema import LIVE

BATCH = 100  # dossiers read per query: memory stays flat whatever the session's size

# A live dossier, or one the API could not serialise (its row may be a stub without raw data): the
# committee must see it, with what is known, rather than miss it.
SHOWN = (f"(({LIVE}) OR (d.deletion_state IS NULL AND d.number IN (SELECT number FROM unreadable_dossiers)))")

# Dossiers first (CROSS JOIN fixes SQLite's join order): read in number order, rows need no sort, which
# would copy every raw JSON of the session into a temporary B-tree (the checks' session index gives
# them by status).
SELECT = f"""SELECT d.number, m.key, d.demarche_number, c.session, d.state, d.archived, d.date_depot, d.siret,
       d.raison_sociale, d.prenom, d.nom, d.city_code, d.department_code, d.groupe_instructeur_label,
       CAST(d.raw AS BLOB) AS raw,
       d.date_derniere_modification, c.status, c.priority, c.score, u.message AS unreadable,
       k.decision, k.amount AS decision_amount, k.motivation AS decision_motivation
FROM dossiers d CROSS JOIN checks c ON c.number = d.number JOIN demarches m ON m.number = d.demarche_number
LEFT JOIN unreadable_dossiers u ON u.number = d.number LEFT JOIN decisions k ON k.dossier_number = d.number
WHERE {SHOWN}"""


def session_records(db: sqlite_utils.Database, *, session: int | None = None, before: int | None = None,
                    demarche: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Batches of dossier records (stored columns, raw JSON, check results, recorded decision) of one
    session (0: of every session), or of every session before `before`, by number; `raw` is None for an
    unreadable stub, else its JSON as UTF-8 bytes (`parse_raw` reads them without decoding them first)."""
    sql, params = SELECT, list[Any]()
    if session == 0:
        sql += " AND c.session IS NOT NULL"
    elif session is not None:
        sql += " AND c.session = ?"
        params.append(session)
    if before is not None:
        sql += " AND c.session < ?"
        params.append(before)
    if demarche:
        sql += " AND m.key = ?"
        params.append(demarche)
    cursor = db.execute(sql + " ORDER BY d.number", params)
    names = [c[0] for c in cursor.description]
    while batch := cursor.fetchmany(BATCH):
        yield [dict(zip(names, values, strict=True)) for values in batch]


def findings(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, list[tuple[str, str, str]]]:
    """Each dossier's check findings (rule, status, message), in the check's order."""
    marks = ",".join("?" * len(numbers))
    found: dict[int, list[tuple[str, str, str]]] = {}
    for number, rule, status, message in db.execute(
            f"SELECT dossier_number, rule, status, message FROM check_findings WHERE dossier_number IN ({marks}) "
            "ORDER BY dossier_number, position", numbers):
        found.setdefault(number, []).append((rule, status, message))
    return found


def freshness(db: sqlite_utils.Database, demarche: str | None = None) -> dict[str, Any]:
    """{synced_at, checked_at, ruleset, deleted, out_of_session}: the Synthèse's dates, and the dossiers
    no session workbook lists (deleted, filed after the last closing)."""
    synced = db.execute("SELECT max(last_success_at) FROM sync_state").fetchone()[0]
    checked, ruleset = db.execute("SELECT max(checked_at), max(ruleset_version) FROM checks").fetchone()
    scope, params = ("AND d.demarche_number IN (SELECT number FROM demarches WHERE key = ?)",
                     [demarche]) if demarche else ("", [])
    deleted = db.execute(f"SELECT count(*) FROM dossiers d WHERE d.deletion_state IS NOT NULL {scope}",
                         params).fetchone()[0]
    out = db.execute("SELECT count(*) FROM checks c JOIN dossiers d ON d.number = c.number "
                     f"WHERE c.session IS NULL AND d.deletion_state IS NULL {scope}", params).fetchone()[0]
    return {"synced_at": synced, "checked_at": checked, "ruleset": ruleset, "deleted": deleted,
            "out_of_session": out}


def check_counts(db: sqlite_utils.Database, config_hash: str) -> tuple[int, int]:
    """(stored check results, those made with another configuration hash)."""
    total, other = db.execute("SELECT count(*), count(*) FILTER (WHERE config_hash != ?) FROM checks",
                              [config_hash]).fetchone()
    return total, other or 0
