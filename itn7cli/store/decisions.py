"""The committee's decisions: recorded from its workbook, planned and sent to DS, every mutation logged."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlite_utils

from .schema import LIVE, now

COLUMNS = ("dossier_number", "session", "decision", "amount", "motivation", "source_file", "imported_at",
           "exported_modified")


def dossiers_for_import(db: sqlite_utils.Database, numbers: Iterable[int],
                        with_raw: set[int] | None = None) -> dict[int, dict[str, Any]]:
    """The stored facts an import checks, by dossier number: {number, key, session, state, deleted, live,
    modified, raw}; `raw` (the JSON) only for the numbers in `with_raw`. Unknown numbers are absent."""
    wanted = sorted(set(numbers))
    raw_for = sorted(with_raw or ())
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        cursor = db.execute(
            f"SELECT d.number, m.key, c.session, d.state, d.deletion_state IS NOT NULL AS deleted, ({LIVE}) AS live, "
            f"d.date_derniere_modification AS modified, CASE WHEN d.number IN ({','.join('?' * len(raw_for))}) "
            "THEN d.raw END AS raw FROM dossiers d LEFT JOIN checks c ON c.number = d.number "
            "LEFT JOIN demarches m ON m.number = d.demarche_number "
            f"WHERE d.number IN ({','.join('?' * len(chunk))})", [*raw_for, *chunk])
        names = [c[0] for c in cursor.description]
        for row in cursor:
            record = dict(zip(names, row, strict=True))
            found[record["number"]] = record
    return found


def recorded(db: sqlite_utils.Database, session: int | None = None) -> dict[int, dict[str, Any]]:
    """The recorded decisions (all columns), by dossier number; of one session when given."""
    sql, params = "SELECT * FROM decisions", []
    if session is not None:
        sql += " WHERE session = ?"
        params.append(session)
    cursor = db.execute(sql, params)
    names = [c[0] for c in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}


def save(db: sqlite_utils.Database, rows: Iterable[Mapping[str, Any]]) -> int:
    """Records decisions (one per dossier, replacing an earlier one); what DS was last seen to hold for
    the dossier is kept. Returns how many were written. One transaction: all or nothing."""
    items = [[row[c] for c in COLUMNS] for row in rows]
    with db.atomic():
        db.conn.executemany(
            f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
            "ON CONFLICT(dossier_number) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:]), items)
    return len(items)


def attributed_by_session(db: sqlite_utils.Database) -> dict[int, float]:
    """The amounts of the « Retenu » decisions recorded, per session."""
    return {session: total or 0.0 for session, total in db.execute(
        "SELECT k.session, sum(k.amount) FROM decisions k JOIN dossiers d ON d.number = k.dossier_number "
        "WHERE k.decision = 'retenu' AND d.deletion_state IS NULL GROUP BY k.session")}


def to_apply(db: sqlite_utils.Database, session: int | None = None) -> list[dict[str, Any]]:
    """Recorded decisions with what DS holds: the last sync's state, or DS's answer to a later mutation.
    {number, dossier_id, key, session, decision, amount, motivation, exported_modified, state, motivation_ds,
    modified, groupe, groupe_id, deleted, revision_id}, by number."""
    sql = ("SELECT k.dossier_number AS number, d.id AS dossier_id, m.key, k.session, k.decision, k.amount, "
           "k.motivation, k.exported_modified, d.state AS synced_state, d.motivation AS synced_motivation, "
           "d.date_derniere_modification AS synced_modified, d.synced_at, k.ds_state, k.ds_motivation, "
           "k.ds_modified, k.applied_at, d.groupe_instructeur_label AS groupe, d.groupe_instructeur_id AS groupe_id, "
           "d.deletion_state IS NOT NULL AS deleted, d.revision_id "
           "FROM decisions k JOIN dossiers d ON d.number = k.dossier_number "
           "LEFT JOIN demarches m ON m.number = d.demarche_number")
    params: list[Any] = []
    if session is not None:
        sql += " WHERE k.session = ?"
        params.append(session)
    cursor = db.execute(sql + " ORDER BY k.dossier_number", params)
    names = [c[0] for c in cursor.description]
    rows = []
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        newer = row["applied_at"] is not None and row["applied_at"] >= (row["synced_at"] or "")
        row["state"] = row["ds_state"] if newer else row["synced_state"]
        row["motivation_ds"] = row["ds_motivation"] if newer else row["synced_motivation"]
        row["modified"] = row["ds_modified"] if newer else row["synced_modified"]
        rows.append(row)
    return rows


def log_mutation(db: sqlite_utils.Database, number: int, operation: str, variables: Mapping[str, Any],
                 answer: Mapping[str, Any] | None, errors: list[str]) -> None:
    """Logs one mutation sent to DS with DS's answer; when it succeeded, notes the state DS now holds."""
    stamp = now()
    dossier = (answer or {}).get("dossier") or {}
    with db.atomic():
        db.execute("INSERT INTO decision_mutations (dossier_number, operation, input, sent_at, ok, errors, answer) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [number, operation, json.dumps(dict(variables), ensure_ascii=False), stamp, int(not errors),
                    json.dumps(errors, ensure_ascii=False) if errors else None,
                    json.dumps(answer, ensure_ascii=False) if answer is not None else None])
        if dossier and not errors:
            note_ds_state(db, number, dossier, stamp)


def note_ds_state(db: sqlite_utils.Database, number: int, dossier: Mapping[str, Any], stamp: str | None = None) -> None:
    """Notes what DS holds for a decided dossier (state, motivation, last change), as DS just said."""
    db.execute("UPDATE decisions SET ds_state = ?, ds_motivation = ?, ds_modified = ?, applied_at = ? "
               "WHERE dossier_number = ?",
               [dossier.get("state"), dossier.get("motivation"), dossier.get("dateDerniereModification"),
                stamp or now(), number])


def mutations_logged(db: sqlite_utils.Database, number: int | None = None) -> list[dict[str, Any]]:
    """The mutation log (oldest first), of one dossier when given."""
    sql, params = "SELECT * FROM decision_mutations", []
    if number is not None:
        sql += " WHERE dossier_number = ?"
        params.append(number)
    cursor = db.execute(sql + " ORDER BY id", params)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
