"""Reference data: the `ref_*` tables (communes, EPCI, collectivités) and where each came from (`ref_meta`).

A new set replaces the old one in a single transaction: either every table given is replaced, or none is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlite_utils

from .schema import now

# The reference tables and their primary keys, as migration m002 declares them.
KEYS = {"ref_communes": "code_insee", "ref_epci": "epci_siren", "ref_collectivites": "siren"}


def _known(table: str) -> str:
    if table not in KEYS:
        raise ValueError(f"not a reference table: {table}")
    return table


def replace(db: sqlite_utils.Database, tables: Mapping[str, tuple[Sequence[Mapping[str, Any]], str]]) -> None:
    """Replaces each named table by its rows and records its source, all in one transaction.

    `tables` is {table: (rows, source)}; a table not named keeps its rows.
    """
    stamp = now()
    with db.atomic():
        for table, (rows, source) in tables.items():
            db.execute(f"DELETE FROM {_known(table)}")
            db.table(table).insert_all([dict(row) for row in rows], pk=KEYS[table], replace=True)
            db.table("ref_meta").upsert({"name": table, "source": source, "imported_at": stamp, "rows": len(rows)},
                                        pk="name")


def rows(db: sqlite_utils.Database, table: str) -> list[dict[str, Any]]:
    """Every row of one reference table, in primary key order; empty when nothing was imported."""
    if table not in db.table_names():
        return []
    return list(db.table(_known(table)).rows_where(order_by=KEYS[table]))


def meta(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Where each reference table came from, when, and how many rows: [{name, source, imported_at, rows}]."""
    if "ref_meta" not in db.table_names():
        return []
    return list(db.table("ref_meta").rows_where(order_by="name"))
