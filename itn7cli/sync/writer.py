"""The writing side of a sync: hands the plan's streams to the fetching threads, saves what comes
back, splits streams with much left as slots free up, and closes the run."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlite_utils

from ..api import Changes, ChangesTarget, DSClient, NotFoundError, Page, PageError
from ..store import syncstate
from .plan import Plan
from .pool import Pool, Work
from .ranges import Stream, iso, within
from .summary import AfterPage, Progress, Summary


class Writer:
    """One sync run over some démarches. Only the thread that calls `run` writes to the database."""

    def __init__(self, client: DSClient, demarches: dict[str, int], *, full: bool, concurrency: int,
                 progress: Progress | None, after_page: AfterPage | None, epoch: str, states: tuple[str, ...]) -> None:
        self.client, self.demarches, self.full, self.epoch, self.states = client, demarches, full, epoch, states
        self.progress = progress or (lambda summary: None)
        self.after_page = after_page
        self.pool = Pool(concurrency)
        self.db: sqlite_utils.Database | None = None
        self.summaries = {number: Summary(key, number) for key, number in demarches.items()}
        self.seen: set[int] = set()  # dossiers read whole by this run's pages
        self.plan = Plan(demarches, full=full, epoch=epoch, states=states)

    def attach(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def close(self) -> None:
        self.pool.close()
        if self.db is not None:
            self.db.close()

    # ------------------------------------------------------------ before the first answer

    def start(self) -> None:
        """Starts the full pulls' streams at once, before the run's first answer."""
        for stream in self.plan.first_streams(self.db):
            self._launch(stream)

    def targets(self) -> list[ChangesTarget]:
        return self.plan.targets(self.db)

    # ------------------------------------------------------------ the run

    def run(self, overview: dict[int, Changes], next_since: datetime, deletions_since: datetime) -> list[Summary]:
        db = self.db
        assert db is not None
        for number, summary in self.summaries.items():
            summary.title = overview[number].meta["title"]
            summary.mode = "complète" if number in self.plan.fulls else "incrémentale"
        runs = syncstate.start_runs(db, [(key, overview[number].meta, self.summaries[number].mode)
                                         for key, number in self.demarches.items()])
        for number in self.plan.open(db, runs, overview, next_since):
            self._hand_over(number)
        for number in self.demarches.values():
            self._first_deletions(number, overview[number])
            if number not in self.plan.fulls:
                self._first_changes(number, overview[number].page)
        self._drain()
        numbers = list(self.demarches.values())
        for number in numbers:
            syncstate.set_next_since(db, number, iso(next_since))
        for number in self.plan.fulls:
            self.summaries[number].supprimes += syncstate.finish_full(db, number)
        for number in numbers:
            reread(db, self.client, self.summaries[number], self.seen, self.progress)
        syncstate.set_deletions_since(db, numbers, iso(deletions_since))
        syncstate.finish_runs(db, runs, {n: s.counts() for n, s in self.summaries.items()})
        return list(self.summaries.values())

    def _drain(self) -> None:
        self._split()
        while (work := self.pool.next()) is not None:
            if work.page is not None and work.stream is not None:
                self._split()  # the page just fetched tells where its stream stands: split before saving
                self._save(work.stream, work.page)
                continue
            if work.deletions is not None:
                self._save_deletions(work.demarche, *work.deletions)
            elif work.ended and work.stream is not None:
                self._ended(work.stream)
            self._split()  # a slot may be free, and a hand-over may have taken it first

    def _split(self) -> None:
        """Gives free slots the second half of the streams with the most left."""
        assert self.db is not None
        while self.pool.free() > 0 and (widest := self.plan.widest()) is not None:
            at, stream = widest
            name = f"{stream.name.split('@')[0]}@{iso(at)}"
            syncstate.split_stream(self.db, stream.demarche, stream.name, iso(at), name)
            self._launch(Stream(stream.demarche, name, iso(at), stream.state, None, stream.seen_run, stream.until))
            stream.until = iso(at)

    def _launch(self, stream: Stream) -> None:
        self.plan.started(stream)
        self.pool.add(functools.partial(fetch_stream, self.client, stream))

    def _ended(self, stream: Stream) -> None:
        assert self.db is not None
        syncstate.stream_done(self.db, stream.demarche, stream.name)
        if self.plan.ended(stream):
            self._hand_over(stream.demarche)

    def _hand_over(self, number: int) -> None:
        """A full pull's streams are all read: the incremental stream, from the pull's start, catches
        what changed meanwhile (the full run's mark stays until it has run)."""
        assert self.db is not None
        syncstate.close_full(self.db, number)
        self._launch(self._incremental(number))

    def _incremental(self, number: int) -> Stream:
        assert self.db is not None
        row = syncstate.incremental_stream(self.db, number)
        return Stream(number, "incremental", row["updated_since"], None, row["cursor"],
                      syncstate.state(self.db, number).get("full_run"))

    def _first_changes(self, number: int, page: Page | None) -> None:
        stream = self._incremental(number)
        if page is not None:
            self._save(stream, page)
            if stream.done:
                return
            stream.cursor = page.info["endCursor"] or stream.cursor
        self._launch(stream)

    def _first_deletions(self, number: int, first: Changes) -> None:
        if first.pending is not None and first.deleted is not None:
            for state, connection in (("masque", first.pending), ("supprime", first.deleted)):
                self._save_deletions(number, state, [n for n in connection["nodes"] if n])
            if not (first.pending["pageInfo"]["hasNextPage"] or first.deleted["pageInfo"]["hasNextPage"]):
                return
        after = first if first.pending is not None else None
        self.pool.add(functools.partial(fetch_deletions, self.client, number, self.plan.deleted_since[number], after))

    # ------------------------------------------------------------ saving (the calling thread only)

    def _save(self, stream: Stream, page: Page) -> None:
        assert self.db is not None
        if stream.done:  # fetched before the stream's end was known
            return
        page = within(page, stream.until)
        summary = self.summaries[stream.demarche]
        counts = syncstate.save_page(self.db, stream.demarche, stream.name, page.nodes, page.unreadable,
                                     cursor=page.info["endCursor"], more=page.more, seen_run=stream.seen_run)
        stream.done = not page.more
        read = page.numbers()
        self.seen.update(read)
        summary.page_saved(counts, read, [stub["number"] for stub, _message in page.unreadable], page.warnings)
        if self.after_page is not None:
            self.after_page(stream.demarche, page.nodes)
        self.progress(summary)

    def _save_deletions(self, number: int, state: str, items: list[dict[str, Any]]) -> None:
        assert self.db is not None
        self.summaries[number].supprimes += syncstate.save_deleted(self.db, number, items, state)
        self.progress(self.summaries[number])


# ---------------------------------------------------------------- the fetching threads


def fetch_stream(client: DSClient, stream: Stream, pool: Pool) -> None:
    for page in client.dossier_pages(stream.demarche, stream.updated_since, after=stream.cursor, state=stream.state):
        stream.note(page)
        if not pool.put(Work(stream=stream, page=page)):
            return
        if stream.past_end():
            break
    pool.put(Work(stream=stream, ended=True))


def fetch_deletions(client: DSClient, number: int, since: str | None, after: Changes | None, pool: Pool) -> None:
    for state, items in client.deletion_pages(number, since, after=after):
        if not pool.put(Work(deletions=(state, items), demarche=number)):
            return
    pool.put(Work(demarche=number, ended=True))


# ---------------------------------------------------------------- after the pages


def reread(db: sqlite_utils.Database, client: DSClient, summary: Summary, seen: set[int], progress: Progress) -> None:
    """Re-reads by number the dossiers a page could not give whole: the unreadable ones (until DS can
    serialise them) and those whose company data DS had not fetched (until it has)."""
    number = summary.number
    # Named or read by a page of this very run: a second read now would tell nothing new.
    for dossier in [n for n in syncstate.to_reread(db, number) if n not in seen and n not in summary.illisibles]:
        try:
            answer = client.read_dossier(dossier)
        except NotFoundError:
            syncstate.forget_unreadable(db, dossier)
            continue
        except PageError as exc:
            syncstate.still_unreadable(db, number, dossier, str(exc))
        else:
            node = (answer.data or {}).get("dossier")
            summary.avertissements.extend(answer.warnings)
            if node is not None:
                summary.add(syncstate.save_reread(db, number, node), page=False)
                if dossier in summary.illisibles:
                    summary.illisibles.remove(dossier)
                continue
            syncstate.still_unreadable(db, number, dossier, "; ".join(str(e.get("message")) for e in answer.bad))
        summary.unreadable(dossier)
        progress(summary)
