"""The local database: the only place that writes SQL.

`schema` declares the shape and opens the database; each other module owns the reads and writes
of one concern. Callers use the names re-exported here, or `from itn7cli.store import <module>`;
they hold an open database as a `Database` and never import sqlite_utils themselves.
"""

from sqlite_utils import Database

from .dossiers import (
    PageCounts,
    applicant_name,
    ensure_synced,
    iter_dossiers,
    last_sync,
    mark_deleted,
    mark_vanished,
    parse_raw,
    save_demarche,
    save_dossiers,
    strip_volatile,
)
from .schema import BOOKKEEPING, LIVE, migrations, now, open_db, open_reader, store_path

__all__ = [
    "BOOKKEEPING", "LIVE", "Database", "PageCounts", "applicant_name", "ensure_synced", "iter_dossiers", "last_sync",
    "mark_deleted", "mark_vanished", "migrations", "now", "open_db", "open_reader", "parse_raw", "save_demarche",
    "save_dossiers", "store_path", "strip_volatile",
]
