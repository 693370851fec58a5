"""The sync's bookkeeping: per-démarche state, resumable streams with their cursors, and runs.

A page of dossiers and the checkpoint describing it are written in one transaction (`save_page`):
a crash between pages loses nothing and repeats nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlite_utils

from . import unreadable
from .dossiers import (
    PageCounts,
    incomplete_demandeurs,
    mark_deleted,
    mark_vanished,
    save_demarche,
    save_dossiers,
    save_stub,
)
from .schema import now

STREAM_KEY = ("demarche_number", "name")


def state(db: sqlite_utils.Database, number: int) -> dict[str, Any]:
    """The démarche's sync state (an empty one, {demarche_number}, before its first sync)."""
    rows = list(db.query("SELECT * FROM sync_state WHERE demarche_number = ?", [number]))
    return rows[0] if rows else {"demarche_number": number}


def start_runs(db: sqlite_utils.Database, demarches: Sequence[tuple[str, Mapping[str, Any], str]]) -> dict[int, int]:
    """Saves each démarche's metadata (key, API object, mode) and opens a run for it; returns
    {démarche number: run id}."""
    runs: dict[int, int] = {}
    with db.atomic():
        for key, meta, mode in demarches:
            save_demarche(db, key, meta)
            runs[meta["number"]] = db.execute(
                "INSERT INTO sync_runs (demarche_number, mode, started_at) VALUES (?, ?, ?) RETURNING id",
                [meta["number"], mode, now()]).fetchone()[0]
    return runs


def open_full(db: sqlite_utils.Database, number: int, run_id: int, started: str,
              streams: Sequence[Mapping[str, Any]]) -> None:
    """Starts a full pull with the given streams ({name, updated_since, state, until}); `started` (server
    clock) is where the incremental stream will begin."""
    with db.atomic():
        db.table("sync_state").upsert({**state(db, number), "full_run": run_id, "full_started_at": started},
                                      pk="demarche_number")
        db.execute("DELETE FROM sync_streams WHERE demarche_number = ? AND name LIKE 'full:%'", [number])
        db.table("sync_streams").insert_all(
            [{"demarche_number": number, "name": s["name"], "updated_since": s["updated_since"], "state": s["state"],
              "until": s.get("until"), "cursor": None, "done": 0, "pages": 0} for s in streams], pk=STREAM_KEY)


def split_stream(db: sqlite_utils.Database, number: int, name: str, at: str, new_name: str) -> None:
    """Gives the end of a full pull's stream, from `at` on, to a new stream of its own: the old one now
    stops at `at`, the new one reads from `at` to where the old one stopped."""
    with db.atomic():
        row = db.execute("SELECT state, until FROM sync_streams WHERE demarche_number = ? AND name = ?",
                         [number, name]).fetchone()
        db.execute("UPDATE sync_streams SET until = ? WHERE demarche_number = ? AND name = ?", [at, number, name])
        db.table("sync_streams").insert({"demarche_number": number, "name": new_name, "updated_since": at,
                                         "state": row[0], "until": row[1], "cursor": None, "done": 0, "pages": 0},
                                        pk=STREAM_KEY)


def pending_full_streams(db: sqlite_utils.Database, number: int) -> list[dict[str, Any]]:
    """The full pull's streams not finished yet."""
    return list(db.query(
        "SELECT * FROM sync_streams WHERE demarche_number = ? AND name LIKE 'full:%' AND done = 0 ORDER BY name",
        [number]))


def full_stream_names(db: sqlite_utils.Database, number: int) -> list[str]:
    """Every stream of the démarche's full pull, finished or not."""
    return [r[0] for r in db.execute("SELECT name FROM sync_streams WHERE demarche_number = ? AND name LIKE 'full:%'",
                                     [number])]


def close_full(db: sqlite_utils.Database, number: int) -> None:
    """The full pull is over: the incremental stream starts where it started (its run mark stays until
    `finish_full`, after the incremental stream caught what changed meanwhile)."""
    with db.atomic():
        db.execute("DELETE FROM sync_streams WHERE demarche_number = ? AND name LIKE 'full:%'", [number])
        current = state(db, number)
        db.table("sync_state").upsert({**current, "incremental_since": current["full_started_at"],
                                       "next_since": None}, pk="demarche_number")


def finish_full(db: sqlite_utils.Database, number: int) -> int:
    """Marks the dossiers the full pull did not see as vanished; returns how many."""
    with db.atomic():
        vanished = mark_vanished(db, number, state(db, number)["full_run"])
        db.execute("UPDATE sync_state SET full_run = NULL WHERE demarche_number = ?", [number])
    return vanished


def incremental_stream(db: sqlite_utils.Database, number: int) -> dict[str, Any]:
    """The démarche's incremental stream: resumed where an interrupted run left it, else started afresh
    from `next_since` (the previous run's start on the server's clock, minus an overlap) or, after a
    full pull, from the full pull's start."""
    since, row = _incremental_start(db, number)
    if row is not None:
        return row  # interrupted (or from before `next_since` existed): go on from its cursor
    with db.atomic():
        db.execute("UPDATE sync_state SET incremental_since = ?, next_since = NULL WHERE demarche_number = ?",
                   [since, number])
        stream = {"demarche_number": number, "name": "incremental", "updated_since": since, "state": None,
                  "cursor": None, "done": 0, "pages": 0}
        db.table("sync_streams").upsert(stream, pk=STREAM_KEY)
    return stream


def _incremental_start(db: sqlite_utils.Database, number: int) -> tuple[str, dict[str, Any] | None]:
    """Where the incremental stream starts, and its stored row when it goes on from there."""
    current = state(db, number)
    rows = list(db.query("SELECT * FROM sync_streams WHERE demarche_number = ? AND name = 'incremental'", [number]))
    since = current["incremental_since"]
    if rows and rows[0]["done"] and current.get("next_since"):
        return current["next_since"], None
    if rows and rows[0]["updated_since"] == since:
        return since, rows[0]
    return since, None


def incremental_plan(db: sqlite_utils.Database, number: int) -> tuple[str, str | None]:
    """(updatedSince, cursor) the incremental stream will read from, without writing anything:
    `incremental_stream` later opens that very stream."""
    since, row = _incremental_start(db, number)
    return since, (row["cursor"] if row is not None else None)


def handover_plan(db: sqlite_utils.Database, number: int) -> tuple[str, str | None]:
    """(updatedSince, cursor) of the incremental stream that `close_full` then `incremental_stream` will
    open, read before the full pull is closed: the hand-over's first request may leave before its last
    page is saved."""
    since = state(db, number)["full_started_at"]
    rows = list(db.query("SELECT cursor FROM sync_streams WHERE demarche_number = ? AND name = 'incremental' "
                         "AND updated_since = ?", [number, since]))
    return since, (rows[0]["cursor"] if rows else None)


def set_next_since(db: sqlite_utils.Database, number: int, since: str) -> None:
    """Where the next incremental run starts once this one is complete."""
    with db.atomic():
        db.execute("UPDATE sync_state SET next_since = ? WHERE demarche_number = ?", [since, number])


def save_page(db: sqlite_utils.Database, demarche_number: int, stream: str, nodes: list[dict[str, Any]],
              unreadable_nodes: Iterable[tuple[Mapping[str, Any], str]], *, cursor: str | None, more: bool,
              seen_run: int | None) -> PageCounts:
    """Saves one page of a stream and its checkpoint in one transaction.

    `nodes`: the dossiers read whole; `unreadable_nodes`: (stub node, message) pairs for the dossiers DS
    could not serialise, which get a stub row and an `unreadable_dossiers` record. Dossiers read whole
    leave that table. `cursor` and `more`: the page's `endCursor` and `hasNextPage`."""
    with db.atomic():
        counts = save_dossiers(db, demarche_number, nodes, seen_run=seen_run)
        unreadable.clear(db, [n["number"] for n in nodes])
        for stub, message in unreadable_nodes:
            save_stub(db, demarche_number, stub, seen_run=seen_run)
            unreadable.record(db, demarche_number, stub["number"], message)
        checkpoint(db, demarche_number, stream, cursor, done=not more)
    return counts


def checkpoint(db: sqlite_utils.Database, demarche_number: int, stream: str, cursor: str | None, *,
               done: bool) -> None:
    """Moves a stream past a page; a null cursor (an empty last page) never replaces a stored one."""
    db.execute("UPDATE sync_streams SET cursor = coalesce(?, cursor), pages = pages + 1, done = ? "
               "WHERE demarche_number = ? AND name = ?", [cursor, int(done), demarche_number, stream])


def stream_done(db: sqlite_utils.Database, demarche_number: int, stream: str) -> None:
    """A stream ended without a last page to save."""
    with db.atomic():
        db.execute("UPDATE sync_streams SET done = 1 WHERE demarche_number = ? AND name = ?",
                   [demarche_number, stream])


def to_reread(db: sqlite_utils.Database, demarche_number: int) -> list[int]:
    """Dossiers to re-read by number: the unreadable ones, then those with incomplete company data."""
    numbers = [row["number"] for row in unreadable.listed(db, demarche_number)]
    return list(dict.fromkeys([*numbers, *incomplete_demandeurs(db, demarche_number)]))


def save_reread(db: sqlite_utils.Database, demarche_number: int, node: Mapping[str, Any]) -> PageCounts:
    """Saves a dossier re-read by number (unreadable before, or with incomplete company data)."""
    with db.atomic():
        counts = save_dossiers(db, demarche_number, [node])
        unreadable.clear(db, [node["number"]])
    return counts


def still_unreadable(db: sqlite_utils.Database, demarche_number: int, number: int, message: str) -> None:
    """A re-read failed again: one more attempt on the record."""
    with db.atomic():
        unreadable.record(db, demarche_number, number, message)


def forget_unreadable(db: sqlite_utils.Database, number: int) -> None:
    """The dossier is gone upstream: the deletions say what became of it."""
    with db.atomic():
        unreadable.clear(db, [number])


def save_deleted(db: sqlite_utils.Database, demarche_number: int, items: list[dict[str, Any]], state_: str) -> int:
    """Marks a page of hidden or purged dossiers; returns how many became deleted."""
    with db.atomic():
        return mark_deleted(db, demarche_number, items, state_)


def set_deletions_since(db: sqlite_utils.Database, numbers: Sequence[int], since: str) -> None:
    """Where the next run's deletion lists start."""
    with db.atomic():
        for number in numbers:
            db.execute("UPDATE sync_state SET deletions_since = ? WHERE demarche_number = ?", [since, number])


def finish_runs(db: sqlite_utils.Database, runs: Mapping[int, int], counts: Mapping[int, Mapping[str, int]]) -> None:
    """Closes the runs with their counts and stamps each démarche's last complete sync."""
    finished = now()
    with db.atomic():
        for number, run_id in runs.items():
            db.table("sync_runs").update(run_id, {"finished_at": finished, **counts[number]})
            db.execute("UPDATE sync_state SET last_success_at = ? WHERE demarche_number = ?", [finished, number])
