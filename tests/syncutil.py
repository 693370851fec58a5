"""Helpers shared by the sync tests: a fake server, settings for it, and the database's DS content."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlite_utils

from itn7cli import config, store, sync
from itn7cli.fakeds import FakeDS

TOKEN = "TEST-TOKEN-e3b1c9f2-reconnaissable"


def early_in_a_window(window: int, at_most: float) -> None:
    """Waits, if need be, until at most `at_most` seconds of the current fixed rate-limit window have gone:
    the fake's windows are aligned on the epoch, and a test that must stay in one window cannot
    start just before a window ends."""
    while time.time() % window > at_most:
        time.sleep(0.05)


def settings_for(server: FakeDS, db_path: Path, numbers: dict[str, int]) -> config.Settings:
    return config.Settings(token=config.Secret(TOKEN), api_url=server.url, demarches=dict(numbers), db_path=db_path)


def run_sync(server: FakeDS, db_path: Path, numbers: dict[str, int], **kwargs: Any) -> list[sync.Summary]:
    return sync.sync_settings(settings_for(server, db_path, numbers), dict(numbers), **kwargs)


def env_for(server: FakeDS, db_path: Path, numbers: dict[str, int]) -> dict[str, str]:
    return {"DS_API_TOKEN": TOKEN, "DS_API_URL": server.url, "ITN7_DB": str(db_path),
            "ITN7_DEMARCHE_GENERAL": str(numbers["general"]), "ITN7_DEMARCHE_LABO": str(numbers["labo"])}


def _rows(db: sqlite_utils.Database, sql: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in db.execute(sql).fetchall())


def content(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the database holds from DS, without bookkeeping (when and by which run rows were written).

    Live dossiers are compared whole, with their champs, files and traitements; deleted ones by
    number and deletion state, since a fresh pull never saw the data of a dossier already gone.
    """
    db = store.open_db(path, must_exist=True)
    columns = [c for c in db.table("dossiers").columns_dict if c not in store.BOOKKEEPING]
    live = "SELECT number FROM dossiers WHERE deletion_state IS NULL"
    out = {
        "dossiers": _rows(db, f"SELECT {', '.join(columns)} FROM dossiers WHERE deletion_state IS NULL"),
        "deleted": _rows(db, "SELECT number, deletion_state, deleted_reason FROM dossiers "
                             "WHERE deletion_state IS NOT NULL"),
        "champs": _rows(db, f"SELECT * FROM champs WHERE dossier_number IN ({live})"),
        "files": _rows(db, f"SELECT * FROM files WHERE dossier_number IN ({live})"),
        "traitements": _rows(db, f"SELECT * FROM traitements WHERE dossier_number IN ({live})"),
        "demarches": _rows(db, "SELECT number, key, id, title, state, active_revision_id FROM demarches"),
        "revisions": _rows(db, "SELECT * FROM revisions"),
        "descriptors": _rows(db, "SELECT * FROM champ_descriptors"),
        "groupes": _rows(db, "SELECT * FROM groupes_instructeurs"),
        "instructeurs": _rows(db, "SELECT * FROM groupe_instructeurs"),
    }
    db.close()
    return out
