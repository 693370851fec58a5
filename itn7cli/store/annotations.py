"""What `itn7 annotate` reads and records: annotation champs and descriptors, checks to write back,
instructeurs, and the log of the annotations it wrote."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils

from .schema import now


def findings_by_dossier(db: sqlite_utils.Database) -> dict[int, list[tuple[str, str]]]:
    """Every dossier's findings as (rule, status), in the check's order."""
    by_dossier: dict[int, list[tuple[str, str]]] = {}
    for number, rule, status in db.execute(
            "SELECT dossier_number, rule, status FROM check_findings ORDER BY dossier_number, position"):
        by_dossier.setdefault(number, []).append((rule, status))
    return by_dossier


def annotation_champs(db: sqlite_utils.Database) -> dict[int, list[dict[str, Any]]]:
    """Every dossier's top-level annotations {id, champDescriptorId, label, value}."""
    by_dossier: dict[int, list[dict[str, Any]]] = {}
    for number, champ_id, descriptor_id, label, value_text, string_value in db.execute(
            "SELECT dossier_number, id, descriptor_id, label, value_text, string_value FROM champs "
            "WHERE kind = 'annotation' AND parent_id IS NULL"):
        by_dossier.setdefault(number, []).append({
            "id": champ_id, "champDescriptorId": descriptor_id, "label": label,
            "value": value_text if value_text is not None else string_value})
    return by_dossier


def annotation_descriptors(db: sqlite_utils.Database) -> dict[str, list[dict[str, Any]]]:
    """Every revision's top-level annotation descriptors {id, champDescriptorId, label, type}, in form order."""
    by_revision: dict[str, list[dict[str, Any]]] = {}
    for revision_id, descriptor_id, label, type_ in db.execute(
            "SELECT revision_id, id, label, type FROM champ_descriptors "
            "WHERE kind = 'annotation' AND parent_id IS NULL ORDER BY position"):
        by_revision.setdefault(revision_id, []).append(
            {"id": descriptor_id, "champDescriptorId": descriptor_id, "label": label, "type": type_})
    return by_revision


def last_written(db: sqlite_utils.Database) -> dict[tuple[int, str], tuple[str, str]]:
    """(dossier, annotation) → (value, written_at) of the tool's latest write."""
    last: dict[tuple[int, str], tuple[str, str]] = {}
    for number, annotation_id, value, written_at in db.execute(
            "SELECT dossier_number, annotation_id, value, written_at FROM annotations_written "
            "ORDER BY written_at, rowid"):
        last[(number, annotation_id)] = (value, written_at)
    return last


def checked_dossiers(db: sqlite_utils.Database, *, session: int | None = None,
                     demarche: str | None = None) -> Iterator[dict[str, Any]]:
    """Checked, non-deleted dossiers {number, key, status, checked_at, dossier_id, revision_id, groupe,
    groupe_id, synced_at}, by number."""
    sql = ("SELECT c.number, m.key, c.status, c.checked_at, d.id AS dossier_id, d.revision_id, "
           "d.groupe_instructeur_label AS groupe, d.groupe_instructeur_id AS groupe_id, d.synced_at "
           "FROM checks c JOIN dossiers d ON d.number = c.number "
           "JOIN demarches m ON m.number = d.demarche_number WHERE d.deletion_state IS NULL")
    params: list[Any] = []
    for clause, value in (("c.session = ?", session), ("m.key = ?", demarche)):
        if value is not None:
            sql += f" AND {clause}"
            params.append(value)
    cursor = db.execute(sql + " ORDER BY c.number", params)
    names = [c[0] for c in cursor.description]
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def instructeurs(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every groupe instructeur of the synced démarches with its instructeurs {demarche, groupe_number,
    groupe, id, email}."""
    rows = db.execute(
        "SELECT m.key, g.number, g.label, i.id, i.email FROM groupes_instructeurs g "
        "JOIN demarches m ON m.number = g.demarche_number "
        "LEFT JOIN groupe_instructeurs gi ON gi.groupe_id = g.id LEFT JOIN instructeurs i ON i.id = gi.instructeur_id "
        "ORDER BY m.key, g.number, i.email")
    return [dict(zip(("demarche", "groupe_number", "groupe", "id", "email"), row, strict=True)) for row in rows]


def instructeur_by_email(db: sqlite_utils.Database, email: str) -> str | None:
    """The id of the synced instructeur with this e-mail (case-insensitive), or None."""
    row = db.execute("SELECT id FROM instructeurs WHERE lower(email) = lower(?)", [email]).fetchone()
    return str(row[0]) if row else None


def groupes_of(db: sqlite_utils.Database, instructeur_id: str) -> set[str]:
    """The ids of the groupes the instructeur belongs to, as of the last sync."""
    return {row[0] for row in db.execute(
        "SELECT groupe_id FROM groupe_instructeurs WHERE instructeur_id = ?", [instructeur_id])}


def record_written(db: sqlite_utils.Database, number: int, annotation_id: str | None, value: str,
                   instructeur_id: str) -> None:
    """Logs one annotation written to DS (the log is never rewritten)."""
    with db.atomic():
        db.execute("INSERT INTO annotations_written (dossier_number, annotation_id, value, instructeur_id, "
                   "written_at) VALUES (?, ?, ?, ?, ?)", [number, annotation_id, value, instructeur_id, now()])
