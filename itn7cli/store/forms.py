"""The démarches' forms as synced: revisions, their champ descriptors, and the champ types stored."""

from __future__ import annotations

from typing import Any

import sqlite_utils


def demarches(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every configured démarche {number, key, title}, by key (démarches replaced in the settings left out)."""
    return [dict(zip(("number", "key", "title"), row, strict=True)) for row in db.execute(
        "SELECT number, key, title FROM demarches WHERE key IS NOT NULL ORDER BY key")]


def revisions(db: sqlite_utils.Database, demarche_number: int) -> list[dict[str, Any]]:
    """The démarche's revisions, oldest first: {id, published, active, descriptors: [{id, kind, parent_id,
    type, label}]} with descriptors in form order (champs, then annotations; children after their block)."""
    found: list[dict[str, Any]] = []
    for revision_id, published, active in db.execute(
            "SELECT id, coalesce(date_publication, date_creation), is_active FROM revisions "
            "WHERE demarche_number = ? ORDER BY coalesce(date_publication, date_creation), id", [demarche_number]):
        descriptors = [dict(zip(("id", "kind", "parent_id", "type", "label"), row, strict=True)) for row in db.execute(
            "SELECT id, kind, parent_id, type, label FROM champ_descriptors WHERE revision_id = ? "
            "ORDER BY kind = 'annotation', parent_id IS NOT NULL, position", [revision_id])]
        found.append({"id": revision_id, "published": published, "active": bool(active), "descriptors": descriptors})
    return found


def revision_ids(db: sqlite_utils.Database) -> set[str]:
    """The ids of every stored revision, to tell after a sync which ones it brought."""
    if "revisions" not in db.table_names():
        return set()
    return {revision_id for (revision_id,) in db.execute("SELECT id FROM revisions")}


def champ_types(db: sqlite_utils.Database, demarche_number: int) -> dict[str, set[str]]:
    """Descriptor id → the champ types (GraphQL `__typename`) its stored champs arrived with."""
    types: dict[str, set[str]] = {}
    for descriptor_id, type_ in db.execute(
            "SELECT DISTINCT c.descriptor_id, c.type FROM champs c JOIN dossiers d ON d.number = c.dossier_number "
            "WHERE d.demarche_number = ? AND c.descriptor_id IS NOT NULL", [demarche_number]):
        types.setdefault(descriptor_id, set()).add(type_)
    return types
