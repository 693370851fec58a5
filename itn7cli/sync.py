"""Pulls both démarches into the store: streams of pages, checkpoints, deletions, summary.

The documented DS pattern: a fixed `updatedSince` (which also fixes the keyset order on
(updated_at, id)) plus the stored `endCursor`, written in the same transaction as the page
it describes and never replaced by a null cursor. The first pull (and `--full`) runs one
stream per dossier state, concurrently; afterwards one incremental stream per démarche
starting at the full pull's start (server clock, minus a margin) picks up every change. Each
later run starts its stream again a little before the previous run started (server clock):
DS stamps `updated_at` at save, not at commit, so a dossier committed late sorts behind a
cursor that has already passed it.

A dossier DS cannot serialise does not stop the sync: it is stored as a stub, named, recorded
as unreadable and re-read by number at every run until it reads (`store.unreadable`).

Threads fetch, the calling thread writes: SQLite has one writer, the network many waits.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils
from filelock import FileLock, Timeout

from . import store
from .api import Changes, ChangesTarget, DSClient, NotFoundError, PageError
from .config import Settings
from .errors import ApiError, ConfigError, Itn7Error, StoreError
from .store import syncstate

EPOCH = "2000-01-01T00:00:00+00:00"
STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")
# Rows committed late and clock skew: the incremental stream starts this long before the full pull,
# and each later run this long before the previous run started (both on the server's clock).
CLOCK_MARGIN = timedelta(minutes=10)
# Exit code of a sync that completed except for dossiers DS could not serialise (see the README).
EXIT_INCOMPLETE = 1
# Purges are backdated to the hide date (up to two weeks earlier): re-read them with room to spare.
DELETION_OVERLAP = timedelta(days=28)


@dataclass
class Summary:
    """What one sync did to one démarche."""

    key: str
    number: int
    title: str = ""
    mode: str = "incremental"
    pages: int = 0
    nouveaux: int = 0
    modifies: int = 0
    supprimes: int = 0
    restaures: int = 0
    inchanges: int = 0
    # Dossiers DS could not serialise this run, still unreadable at its end (numbers).
    illisibles: list[int] = field(default_factory=list)
    # Values kept as text because they did not fit their column: (dossier number, champ label).
    hors_limites: list[tuple[int, str]] = field(default_factory=list)
    # Fields DS hid from the token below a dossier (a linked dossier of another démarche…).
    avertissements: list[str] = field(default_factory=list)

    def add(self, counts: store.PageCounts, *, page: bool = True) -> None:
        self.pages += page
        self.nouveaux += counts.nouveaux
        self.modifies += counts.modifies
        self.restaures += counts.restaures
        self.inchanges += counts.inchanges
        self.hors_limites.extend(counts.hors_limites)

    def counts(self) -> dict[str, int]:
        """The figures a run record keeps."""
        return {"pages": self.pages, "nouveaux": self.nouveaux, "modifies": self.modifies,
                "supprimes": self.supprimes, "restaures": self.restaures, "inchanges": self.inchanges}

    @property
    def dossiers(self) -> int:
        return self.nouveaux + self.modifies + self.restaures + self.inchanges


@dataclass
class Stream:
    demarche: int
    name: str
    updated_since: str
    state: str | None
    cursor: str | None
    seen_run: int | None


Progress = Callable[[Summary], None]
# Called in the writing thread after a page is committed, with the démarche number and the page's
# nodes as the API returned them (file URLs included: they expire within the hour, use them now).
AfterPage = Callable[[int, list[dict[str, Any]]], None]


@dataclass
class _Work:
    """Message from a fetching thread to the writer: a page, a stream's end, or a failure."""

    stream: Stream | None = None
    page: dict[str, Any] | None = None
    error: BaseException | None = None
    done: bool = False
    deletions: tuple[str, list[dict[str, Any]]] | None = None
    demarche: int = 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _server_now(client: DSClient) -> datetime:
    return client.server_date or datetime.now(UTC)


class Syncer:
    """One sync run over some démarches; `run()` returns a summary per démarche."""

    def __init__(self, db: sqlite_utils.Database, client: DSClient, demarches: dict[str, int], *,
                 full: bool = False, concurrency: int = 4, progress: Progress | None = None,
                 after_page: AfterPage | None = None) -> None:
        self.db, self.client, self.demarches, self.full = db, client, demarches, full
        self.after_page = after_page
        self.concurrency = max(1, concurrency)
        self.progress = progress or (lambda summary: None)
        self.stop = threading.Event()
        self.summaries = {number: Summary(key, number) for key, number in demarches.items()}
        self.seen: set[int] = set()  # dossiers read whole by this run's pages

    # ------------------------------------------------------------ planning

    def _plan_full(self, number: int, run_id: int) -> list[Stream]:
        """The full pull's streams: resumed if one was interrupted, else started afresh."""
        run = syncstate.state(self.db, number).get("full_run")
        if run is None:
            run = run_id
            syncstate.open_full(self.db, number, run, _iso(_server_now(self.client) - CLOCK_MARGIN), EPOCH, STATES)
        return [Stream(number, r["name"], r["updated_since"], r["state"], r["cursor"], run)
                for r in syncstate.pending_full_streams(self.db, number)]

    def _plan_incremental(self, number: int) -> Stream:
        row = syncstate.incremental_stream(self.db, number)
        return Stream(number, "incremental", row["updated_since"], None, row["cursor"],
                      syncstate.state(self.db, number).get("full_run"))

    def _needs_full(self, number: int) -> bool:
        state = syncstate.state(self.db, number)
        return self.full or not state.get("incremental_since") or state.get("full_run") is not None

    # ------------------------------------------------------------ fetching threads

    def _fetch_stream(self, stream: Stream, out: queue.Queue[_Work]) -> None:
        try:
            for page in self.client.dossier_pages(stream.demarche, stream.updated_since,
                                                  after=stream.cursor, state=stream.state):
                if self.stop.is_set():
                    return
                out.put(_Work(stream=stream, page=page))
            out.put(_Work(stream=stream, done=True))
        except BaseException as exc:  # handed to the writer, which stops everything
            out.put(_Work(stream=stream, error=exc))

    def _fetch_deletions(self, number: int, since: str | None, out: queue.Queue[_Work], *,
                         after: Changes | None = None) -> None:
        try:
            for state, items in self.client.deletion_pages(number, since, after=after):
                if self.stop.is_set():
                    return
                out.put(_Work(deletions=(state, items), demarche=number))
            out.put(_Work(done=True, demarche=number))
        except BaseException as exc:
            out.put(_Work(error=exc))

    def _run_threads(self, jobs: Sequence[Callable[[queue.Queue[_Work]], None]],
                     handle: Callable[[_Work], None]) -> None:
        """Runs fetch jobs (at most `concurrency` at once) and hands their results to `handle` here."""
        # Pages wait here for the one writer, which is the slower side: a deeper queue would only hold
        # more parsed pages in memory (a sync of 10 000 dossiers peaked at 205 MB with 12, 138 MB with 2).
        results: queue.Queue[_Work] = queue.Queue(maxsize=2)
        pending = list(jobs)
        running = 0

        def start_next() -> None:
            nonlocal running
            job = pending.pop(0)
            threading.Thread(target=job, args=(results,), daemon=True).start()
            running += 1

        while pending and running < self.concurrency:
            start_next()
        try:
            while running:
                try:
                    work = results.get(timeout=0.2)
                except queue.Empty:
                    continue
                if work.error is not None:
                    raise work.error
                if work.done:
                    running -= 1
                    if pending:
                        start_next()
                handle(work)
        finally:
            self.stop.set()
            # Unblock threads waiting on a full queue so they can see the stop flag.
            while not results.empty():
                results.get_nowait()

    # ------------------------------------------------------------ writing (this thread only)

    def _save_page(self, work: _Work) -> None:
        stream, page = work.stream, work.page
        if stream is None:
            return
        summary = self.summaries[stream.demarche]
        if page is not None:
            counts = syncstate.save_page(self.db, stream.demarche, stream.name, page, seen_run=stream.seen_run)
            read = {n["number"] for n in page["nodes"] if n}
            self.seen.update(read)
            summary.illisibles[:] = [n for n in summary.illisibles if n not in read]
            summary.add(counts)
            summary.avertissements.extend(page.get("warnings") or ())
            for stub, _message in page.get("unreadable") or ():
                if stub["number"] not in summary.illisibles:
                    summary.illisibles.append(stub["number"])
            if self.after_page is not None:
                self.after_page(stream.demarche, [n for n in page["nodes"] if n])
        elif work.done:
            syncstate.stream_done(self.db, stream.demarche, stream.name)
        self.progress(summary)

    def _save_deletions(self, work: _Work) -> None:
        if work.deletions is None:
            return
        number = work.demarche
        state, items = work.deletions
        self.summaries[number].supprimes += syncstate.save_deleted(self.db, number, items, state)
        self.progress(self.summaries[number])

    def _reread(self, number: int) -> None:
        """Re-reads by number the dossiers a page could not give whole: the unreadable ones (until DS can
        serialise them) and those whose company data DS had not fetched (until it has)."""
        summary = self.summaries[number]
        # Named or read by a page of this very run: a second read now would tell nothing new.
        for dossier in [n for n in syncstate.to_reread(self.db, number)
                        if n not in self.seen and n not in summary.illisibles]:
            try:
                answer = self.client.read_dossier(dossier)
            except NotFoundError:
                syncstate.forget_unreadable(self.db, dossier)
                continue
            except PageError as exc:
                syncstate.still_unreadable(self.db, number, dossier, str(exc))
            else:
                node = (answer.data or {}).get("dossier")
                summary.avertissements.extend(answer.warnings)
                if node is not None:
                    summary.add(syncstate.save_reread(self.db, number, node), page=False)
                    if dossier in summary.illisibles:
                        summary.illisibles.remove(dossier)
                    continue
                syncstate.still_unreadable(self.db, number, dossier,
                                           "; ".join(str(e.get("message")) for e in answer.bad))
            if dossier not in summary.illisibles:
                summary.illisibles.append(dossier)
            self.progress(summary)

    # ------------------------------------------------------------ the run

    def run(self, metas: dict[int, dict[str, Any]], changes: dict[int, Changes] | None = None,
            changes_date: datetime | None = None) -> list[Summary]:
        """Saves the démarches' metadata, then pulls dossiers and deletions of each.

        `changes`: the first pages of the incremental streams and deletion lists, already fetched
        in one request (`fetch_changes`) at `changes_date` on the server's clock."""
        changes = changes or {}
        fulls = [n for n in self.demarches.values() if self._needs_full(n)]
        for number, summary in self.summaries.items():
            summary.title = metas[number]["title"]
            summary.mode = "complète" if number in fulls else "incrémentale"
        runs = syncstate.start_runs(self.db, [(key, metas[number], self.summaries[number].mode)
                                              for key, number in self.demarches.items()])
        # Interleave the démarches' streams so a small démarche's short streams fill the slots
        # while the big one's long streams run, instead of queueing behind them.
        plans = [self._plan_full(n, runs[n]) for n in fulls]
        # The deletions of a full pull are read alongside its streams, not after them.
        deletions_date = _server_now(self.client)
        self._run_streams([s for group in itertools.zip_longest(*plans) for s in group if s is not None],
                          [self._deletions_job(n) for n in fulls])
        for number in fulls:
            # Hand over to the incremental stream, keeping the full run's mark until it has run:
            # it catches what changed while the full pull was going on.
            syncstate.close_full(self.db, number)
        # The next run starts a little before this one, on the server's clock: late commits.
        next_since = _iso(_server_now(self.client) - CLOCK_MARGIN)
        incremental = []
        for number in self.demarches.values():
            stream = self._plan_incremental(number)
            first = changes.get(number)
            if first is not None:
                self._save_page(_Work(stream=stream, page=first.page))
                info = first.page["pageInfo"]
                if not info["hasNextPage"]:
                    continue
                stream.cursor = info["endCursor"] or stream.cursor
            incremental.append(stream)
        self._run_streams(incremental)
        for number in self.demarches.values():
            syncstate.set_next_since(self.db, number, next_since)
        for number in fulls:
            self.summaries[number].supprimes += syncstate.finish_full(self.db, number)
        for number in self.demarches.values():
            self._reread(number)
        self._run_deletions(changes, changes_date, done=fulls)
        syncstate.set_deletions_since(self.db, fulls, _iso(deletions_date - DELETION_OVERLAP))
        syncstate.finish_runs(self.db, runs, {n: s.counts() for n, s in self.summaries.items()})
        return list(self.summaries.values())

    def _run_streams(self, streams: list[Stream],
                     others: Sequence[Callable[[queue.Queue[_Work]], None]] = ()) -> None:
        if not streams and not others:
            return
        self.stop.clear()
        # Streams first: the deletions take a slot once one of them is done.
        jobs: list[Callable[[queue.Queue[_Work]], None]] = [functools.partial(self._fetch_stream, s) for s in streams]
        jobs.extend(others)
        self._run_threads(jobs, self._save_work)

    def _save_work(self, work: _Work) -> None:
        if work.deletions is not None:
            self._save_deletions(work)
        else:
            self._save_page(work)

    def _deletions_job(self, number: int) -> Callable[[queue.Queue[_Work]], None]:
        return functools.partial(self._fetch_deletions, number, syncstate.state(self.db, number).get("deletions_since"))

    def _run_deletions(self, changes: dict[int, Changes], changes_date: datetime | None, *,
                       done: Sequence[int] = ()) -> None:
        self.stop.clear()
        server_now = changes_date if changes and changes_date else _server_now(self.client)
        sinces = {n: syncstate.state(self.db, n).get("deletions_since") for n in self.demarches.values()}
        jobs = []
        for number in [n for n in self.demarches.values() if n not in done]:
            first = changes.get(number)
            if first is None:
                jobs.append(functools.partial(self._fetch_deletions, number, sinces[number]))
                continue
            for state, connection in (("masque", first.pending), ("supprime", first.deleted)):
                self._save_deletions(_Work(deletions=(state, [n for n in connection["nodes"] if n]),
                                           demarche=number))
            if first.pending["pageInfo"]["hasNextPage"] or first.deleted["pageInfo"]["hasNextPage"]:
                jobs.append(functools.partial(self._fetch_deletions, number, sinces[number], after=first))
        if jobs:
            self._run_threads(jobs, self._save_deletions)
        syncstate.set_deletions_since(self.db, [n for n in self.demarches.values() if n not in done],
                                      _iso(server_now - DELETION_OVERLAP))


def fetch_metas(client: DSClient, demarches: dict[str, int]) -> dict[int, dict[str, Any]]:
    """Every démarche's metadata, before anything is written: a refused token writes nothing."""
    def fetch(key: str) -> dict[str, Any]:
        try:
            return client.demarche(demarches[key])
        except NotFoundError:
            raise ConfigError(f"Démarche n° {demarches[key]} introuvable : "
                              f"vérifiez ITN7_DEMARCHE_{key.upper()}.") from None

    keys = list(demarches)
    with ThreadPoolExecutor(max_workers=len(keys) or 1) as pool:
        return {demarches[k]: meta for k, meta in zip(keys, pool.map(fetch, keys), strict=True)}


def fetch_changes(db: sqlite_utils.Database, client: DSClient, demarches: dict[str, int], *,
                  full: bool = False) -> dict[int, Changes] | None:
    """When every démarche is synced incrementally: its metadata and the first page of its changes and
    deletions, two démarches per request, before anything is written. None when a démarche needs a full
    pull or an answer is not whole (a dossier DS cannot serialise, an unknown démarche): then the sync
    reads the usual way, which names the dossier or the démarche at fault."""
    if full:
        return None
    targets = []
    for number in demarches.values():
        current = syncstate.state(db, number)
        if not current.get("incremental_since") or current.get("full_run") is not None:
            return None
        since, cursor = syncstate.incremental_plan(db, number)
        targets.append(ChangesTarget(number, since, cursor, current.get("deletions_since")))
    out: dict[int, Changes] = {}
    for start in range(0, len(targets), 2):
        try:
            answer = client.changes(targets[start:start + 2])
        except NotFoundError:
            return None
        if answer is None:
            return None
        out.update(answer)
    return out


def run(db: sqlite_utils.Database, client: DSClient, demarches: dict[str, int], *, full: bool = False,
        concurrency: int = 4, progress: Progress | None = None, after_page: AfterPage | None = None,
        metas: dict[int, dict[str, Any]] | None = None) -> list[Summary]:
    """Syncs the given démarches ({key: number}) into `db`; returns a summary per démarche.

    An incremental run starts with one request for both démarches (`fetch_changes`): when nothing
    changed, that is the whole sync but for the re-reads by number."""
    changes = fetch_changes(db, client, demarches, full=full)
    changes_date = client.server_date
    if metas is None:
        metas = {n: c.meta for n, c in changes.items()} if changes else fetch_metas(client, demarches)
    try:
        return Syncer(db, client, demarches, full=full, concurrency=concurrency, progress=progress,
                      after_page=after_page).run(metas, changes, changes_date)
    except Itn7Error:
        raise
    except OSError as exc:
        raise ApiError(f"Erreur réseau pendant la synchronisation : {exc}") from None


def sync_settings(settings: Settings, demarches: dict[str, int], *, full: bool = False,
                  progress: Progress | None = None, after_page: AfterPage | None = None,
                  metas: dict[int, dict[str, Any]] | None = None,
                  server_date: datetime | None = None) -> list[Summary]:
    """The whole `itn7 sync`: lock the database, check the token on every démarche, then pull.

    `metas`, when a caller already fetched them (and so checked the token), saves two requests;
    `server_date` is then the server's clock at that moment, which the incremental stream starts from.
    """
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
            client.server_date = server_date
            if metas is None and not settings.db_path.exists():
                # A first sync checks the token before it creates the database: a refused token writes nothing.
                metas = fetch_metas(client, demarches)
            db = store.open_db(settings.db_path)
            try:
                return run(db, client, demarches, full=full, concurrency=settings.concurrency,
                           progress=progress, after_page=after_page, metas=metas)
            finally:
                db.close()
    finally:
        lock.release()
