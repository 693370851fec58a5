"""The dispatching side of a sync: hands the plan's streams to the fetching threads, passes what comes
back to the saver, splits streams with much left as slots free up, and closes the run in order."""

from __future__ import annotations

import functools
from datetime import datetime

from ..api import Changes, ChangesTarget, DSClient, Page
from ..store import Database, syncstate
from .plan import Plan
from .pool import Pool, Work
from .ranges import Stream, iso
from .save import Saver
from .summary import AfterPage, Progress, Summary


class Writer:
    """One sync run over some démarches: the streams it runs, in the order the sync state needs."""

    def __init__(self, client: DSClient, demarches: dict[str, int], *, full: bool, concurrency: int,
                 progress: Progress | None, after_page: AfterPage | None, epoch: str, states: tuple[str, ...]) -> None:
        self.client, self.demarches = client, demarches
        self.pool = Pool(concurrency)
        self.saver = Saver(demarches, progress, after_page)
        self.plan = Plan(demarches, full=full, epoch=epoch, states=states)
        self.early: dict[int, Stream] = {}  # hand-overs asked for while their pull's last pages wait to be saved

    @property
    def db(self) -> Database | None:
        return self.saver.db

    def attach(self, db: Database) -> None:
        self.saver.db = db

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
        db, summaries = self.db, self.saver.summaries
        assert db is not None
        for number, summary in summaries.items():
            summary.title = overview[number].meta["title"]
            summary.mode = "complète" if number in self.plan.fulls else "incrémentale"
        runs = syncstate.start_runs(db, [(key, overview[number].meta, summaries[number].mode)
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
            summaries[number].supprimes += syncstate.finish_full(db, number)
        for number in numbers:
            self.saver.reread(self.client, number)
        syncstate.set_deletions_since(db, numbers, iso(deletions_since))
        syncstate.finish_runs(db, runs, {n: s.counts() for n, s in summaries.items()})
        return list(summaries.values())

    def _drain(self) -> None:
        self._split()
        while (work := self.pool.next()) is not None:
            self._hand_over_early()
            if work.page is not None and work.stream is not None:
                self._split()  # the page just fetched tells where its stream stands: split before saving
                self.saver.page(work.stream, work.page)
                continue
            if work.deletions is not None:
                self.saver.deletions(work.demarche, *work.deletions)
            elif work.ended and work.stream is not None:
                self._ended(work.stream)
            self._split()  # a slot may be free, and a hand-over may have taken it first

    def _split(self) -> None:
        """Gives free slots the second half of the streams with the most left."""
        while self.pool.free() > 0 and (half := self.plan.split(self.db)) is not None:
            self._launch(half)

    def _launch(self, stream: Stream) -> None:
        self.plan.started(stream)
        self.pool.add(functools.partial(fetch_stream, self.client, stream))

    def _ended(self, stream: Stream) -> None:
        assert self.db is not None
        syncstate.stream_done(self.db, stream.demarche, stream.name)
        if self.plan.ended(stream):
            self._hand_over(stream.demarche)

    def _hand_over_early(self) -> None:
        """Asks for what changed during a full pull as soon as its last pages are fetched, while they
        wait to be saved: the answer comes after them on the queue (`Plan.fetched`)."""
        assert self.db is not None
        for number in self.plan.fulls:
            if number not in self.early and self.plan.fetched(number):
                self.early[number] = self.plan.handover(self.db, number)
                self._launch(self.early[number])

    def _hand_over(self, number: int) -> None:
        """A full pull's streams are all saved: the incremental stream, from the pull's start, catches
        what changed meanwhile (the full run's mark stays until it has run), unless it already left."""
        assert self.db is not None
        syncstate.close_full(self.db, number)
        stream = self.plan.incremental(self.db, number)
        early = self.early.get(number)
        if early is None:
            self._launch(stream)
        elif (early.updated_since, early.cursor) != (stream.updated_since, stream.cursor):
            raise RuntimeError(f"hand-over of démarche {number} asked for from the wrong place")

    def _first_changes(self, number: int, page: Page | None) -> None:
        assert self.db is not None
        stream = self.plan.incremental(self.db, number)
        if page is not None:
            self.saver.page(stream, page)
            if stream.done:
                return
            stream.cursor = page.info["endCursor"] or stream.cursor
        self._launch(stream)

    def _first_deletions(self, number: int, first: Changes) -> None:
        if first.pending is not None and first.deleted is not None:
            for state, connection in (("masque", first.pending), ("supprime", first.deleted)):
                self.saver.deletions(number, state, [n for n in connection["nodes"] if n])
            if not (first.pending["pageInfo"]["hasNextPage"] or first.deleted["pageInfo"]["hasNextPage"]):
                return
        after = first if first.pending is not None else None
        self.pool.add(functools.partial(fetch_deletions, self.client, number, self.plan.deleted_since[number], after))


# ---------------------------------------------------------------- the fetching threads


def fetch_stream(client: DSClient, stream: Stream, pool: Pool) -> None:
    for page in client.dossier_pages(stream.demarche, stream.updated_since, after=stream.cursor, state=stream.state):
        stream.note(page)
        if not pool.put(Work(stream=stream, page=page)):
            return
        if stream.past_end():
            break
    if pool.put(Work(stream=stream, ended=True)):
        stream.fetched = True  # after the put: whatever the writer launches on seeing it queues behind


def fetch_deletions(client: DSClient, number: int, since: str | None, after: Changes | None, pool: Pool) -> None:
    for state, items in client.deletion_pages(number, since, after=after):
        if not pool.put(Work(deletions=(state, items), demarche=number)):
            return
    pool.put(Work(demarche=number, ended=True))
