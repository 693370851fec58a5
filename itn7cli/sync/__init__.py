"""Pulls both démarches into the store: streams of pages, checkpoints, deletions, summary.

The documented DS pattern: a fixed `updatedSince` (which also fixes the keyset order on
(updated_at, id)) plus the stored `endCursor`, written in the same transaction as the page
it describes and never replaced by a null cursor.

A run starts with one request for both démarches (`getChanges`): their metadata, the first page
of each deletion list and, for an incremental run, the first page of changes, so that a run when
nothing changed is that one request. A first pull (and `--full`) does not wait for it: it starts
one stream per dossier state at once, and splits any stream with much left into time ranges read
side by side as slots free up (`ranges`), so the pull keeps every slot busy to its end. When a
démarche's streams are all read, one incremental stream starting at the pull's start (server
clock, minus a margin) picks up what changed meanwhile. Each later run starts its incremental
stream a little before the previous run started (server clock): DS stamps `updated_at` at save,
not at commit, so a dossier committed late sorts behind a cursor that has already passed it.

A dossier DS cannot serialise does not stop the sync: it is stored as a stub, named, recorded
as unreadable and re-read by number at every run until it reads (`store.unreadable`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .. import store
from ..api import DOSSIER_STATES, Changes, ChangesTarget, DSClient, NotFoundError
from ..config import Settings
from ..errors import ApiError, ConfigError, Itn7Error, StoreError
from ..store import Database
from .ranges import Stream
from .summary import AfterPage, Progress, Summary
from .writer import Writer

EPOCH = "2000-01-01T00:00:00+00:00"
STATES = DOSSIER_STATES
# Rows committed late and clock skew: the incremental stream starts this long before the full pull,
# and each later run this long before the previous run started (both on the server's clock).
CLOCK_MARGIN = timedelta(minutes=10)
# Exit code of a sync that completed except for dossiers DS could not serialise (see the README).
EXIT_INCOMPLETE = 1
# Purges are backdated to the hide date (up to two weeks earlier): re-read them with room to spare.
DELETION_OVERLAP = timedelta(days=28)

__all__ = ["EPOCH", "EXIT_INCOMPLETE", "STATES", "AfterPage", "Progress", "Stream", "Summary", "fetch_metas",
           "sync_settings"]


def fetch_metas(client: DSClient, demarches: dict[str, int]) -> dict[int, dict[str, Any]]:
    """Every démarche's metadata; an unknown démarche is named by the setting to fix."""
    def fetch(key: str) -> dict[str, Any]:
        try:
            return client.demarche(demarches[key])
        except NotFoundError:
            raise ConfigError(f"Démarche n° {demarches[key]} introuvable : "
                              f"vérifiez ITN7_DEMARCHE_{key.upper()}.") from None

    keys = list(demarches)
    with ThreadPoolExecutor(max_workers=len(keys) or 1) as pool:
        return {demarches[k]: meta for k, meta in zip(keys, pool.map(fetch, keys), strict=True)}


def fetch_overview(client: DSClient, demarches: dict[str, int], targets: list[ChangesTarget]) -> dict[int, Changes]:
    """The run's first request (`getChanges`, two démarches a request). When it cannot be read whole (an
    unknown démarche, a request that keeps failing), the metadata are read one démarche at a time, which
    names the démarche at fault, and everything else the usual way."""
    out: dict[int, Changes] = {}
    for start in range(0, len(targets), 2):
        try:
            answer = client.changes(targets[start:start + 2])
        except NotFoundError:
            answer = None
        if answer is None:
            metas = fetch_metas(client, {k: n for k, n in demarches.items()
                                         if n in {t.number for t in targets[start:start + 2]}})
            answer = {n: Changes(meta, None, None, None) for n, meta in metas.items()}
        out.update(answer)
    return out


def _server_now(client: DSClient) -> datetime:
    return client.server_date or datetime.now(UTC)


def run(open_db: Callable[[], Database], client: DSClient, demarches: dict[str, int], *,
        exists: bool, full: bool = False, concurrency: int = 4, progress: Progress | None = None,
        after_page: AfterPage | None = None, started: datetime | None = None) -> list[Summary]:
    """Syncs the given démarches ({key: number}); returns a summary per démarche.

    `exists`: whether the database may be opened before the API has answered (else a refused token or
    an unknown démarche writes nothing); `started`: the server's clock when the caller checked the token,
    where this run's incremental streams and deletions will start (else the first answer's)."""
    writer = Writer(client, demarches, full=full, concurrency=concurrency, progress=progress,
                    after_page=after_page, epoch=EPOCH, states=STATES)
    try:
        if exists:
            writer.attach(open_db())
        writer.start()
        targets = writer.targets()
        overview = fetch_overview(client, demarches, targets)
        moment = started or _server_now(client)
        if writer.db is None:
            writer.attach(open_db())
        return writer.run(overview, moment - CLOCK_MARGIN, moment - DELETION_OVERLAP)
    except Itn7Error:
        raise
    except OSError as exc:
        raise ApiError(f"Erreur réseau pendant la synchronisation : {exc}") from None
    finally:
        writer.close()


def sync_settings(settings: Settings, demarches: dict[str, int], *, full: bool = False,
                  progress: Progress | None = None, after_page: AfterPage | None = None,
                  metas: dict[int, dict[str, Any]] | None = None,
                  server_date: datetime | None = None) -> list[Summary]:
    """The whole `itn7 sync`: lock the database, then pull.

    `metas`, when a caller already fetched them (and so checked the token), lets a first sync create the
    database at once; `server_date` is then the server's clock at that moment, which the incremental
    stream starts from."""
    token = settings.require_token()
    lock = FileLock(f"{settings.db_path}.lock", timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(f"Une autre synchronisation est en cours sur {settings.db_path} : "
                         "attendez qu'elle se termine puis relancez.") from None
    try:
        with DSClient(settings.api_url, token, timeout=settings.timeout_seconds,
                      requests_per_minute=settings.requests_per_minute,
                      max_connections=settings.concurrency * 2) as client:
            path: Path = settings.db_path
            return run(lambda: store.open_db(path), client, demarches, exists=metas is not None or path.exists(),
                       full=full, concurrency=settings.concurrency, progress=progress, after_page=after_page,
                       started=server_date)
    finally:
        lock.release()
