"""The writing side of a sync: plans the streams, hands them to the fetching threads, saves what
comes back, splits streams with much left as slots free up, and closes the run."""

from __future__ import annotations

import functools
import itertools
from datetime import datetime
from typing import Any

import sqlite_utils

from ..api import Changes, ChangesTarget, DSClient, NotFoundError, Page, PageError
from ..store import syncstate
from .pool import Pool, Work
from .ranges import Stream, iso, moment, split_point, within
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
        self.fulls: list[int] = []
        self.active: dict[int, list[Stream]] = {}  # full pulls' streams started and not ended
        self.fresh: dict[int, list[Stream]] = {}  # full pulls started before their plan could be written
        self.newest: dict[int, dict[str, datetime]] = {}  # each state's most recently updated dossier
        self.deleted_since: dict[int, str | None] = {}

    def attach(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def close(self) -> None:
        self.pool.close()
        if self.db is not None:
            self.db.close()

    # ------------------------------------------------------------ before the first answer

    def start(self) -> None:
        """Starts the full pulls' streams at once (without a database yet: a first sync's fresh plan)."""
        plans = []
        for number in self.demarches.values():
            current = syncstate.state(self.db, number) if self.db is not None else {}
            self.deleted_since[number] = current.get("deletions_since")
            if self.full or not current.get("incremental_since") or current.get("full_run") is not None:
                self.fulls.append(number)
                self.active[number] = []
                plans.append(self._plan_full(number, current))
        # Interleaved, so a small démarche's streams fill slots while the big one's run.
        for stream in itertools.chain(*itertools.zip_longest(*plans)):
            if stream is not None:
                self._launch(stream)

    def _plan_full(self, number: int, current: dict[str, Any]) -> list[Stream]:
        if self.db is not None and current.get("full_run") is not None:  # interrupted: go on where it stopped
            return [Stream(number, r["name"], r["updated_since"], r["state"], r["cursor"], current["full_run"],
                           r["until"]) for r in syncstate.pending_full_streams(self.db, number)]
        self.fresh[number] = [Stream(number, f"full:{s}", self.epoch, s, None) for s in self.states]
        return list(self.fresh[number])

    def targets(self) -> list[ChangesTarget]:
        """What the run's first request asks of each démarche."""
        out = []
        for number in self.demarches.values():
            if number in self.fulls:
                out.append(ChangesTarget(number, self.epoch, None, self.deleted_since[number], changes=False,
                                         newest=True))
            else:
                assert self.db is not None
                since, cursor = syncstate.incremental_plan(self.db, number)
                out.append(ChangesTarget(number, since, cursor, self.deleted_since[number]))
        return out

    # ------------------------------------------------------------ the run

    def run(self, overview: dict[int, Changes], next_since: datetime, deletions_since: datetime) -> list[Summary]:
        db = self.db
        assert db is not None
        for number, summary in self.summaries.items():
            summary.title = overview[number].meta["title"]
            summary.mode = "complète" if number in self.fulls else "incrémentale"
        runs = syncstate.start_runs(db, [(key, overview[number].meta, self.summaries[number].mode)
                                         for key, number in self.demarches.items()])
        for number in self.fulls:
            self.newest[number] = {state: moment(at) for state, at in overview[number].newest.items()}
            if number in self.fresh:
                syncstate.open_full(db, number, runs[number], iso(next_since), [
                    {"name": s.name, "updated_since": s.updated_since, "state": s.state} for s in self.fresh[number]])
                for stream in self.fresh[number]:
                    stream.seen_run = runs[number]
            if not self.active[number]:
                self._hand_over(number)
        for number in self.demarches.values():
            self._first_deletions(number, overview[number])
            if number not in self.fulls:
                self._first_changes(number, overview[number].page)
        self._drain()
        numbers = list(self.demarches.values())
        for number in numbers:
            syncstate.set_next_since(db, number, iso(next_since))
        for number in self.fulls:
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
        while self.pool.free() > 0:
            candidates = [(point, s) for n in self.fulls for s in self.active[n]
                          if not s.done and (point := split_point(s, self.newest[n].get(s.state or ""))) is not None]
            if not candidates:
                return
            (at, _left), stream = max(candidates, key=lambda c: c[0][1])
            name = f"{stream.name.split('@')[0]}@{iso(at)}"
            syncstate.split_stream(self.db, stream.demarche, stream.name, iso(at), name)
            self._launch(Stream(stream.demarche, name, iso(at), stream.state, None, stream.seen_run, stream.until))
            stream.until = iso(at)

    def _launch(self, stream: Stream) -> None:
        if stream.full:
            self.active[stream.demarche].append(stream)
        self.pool.add(functools.partial(self._fetch, stream))

    def _ended(self, stream: Stream) -> None:
        assert self.db is not None
        syncstate.stream_done(self.db, stream.demarche, stream.name)
        if stream.full:
            self.active[stream.demarche].remove(stream)
            if not self.active[stream.demarche]:
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
        self.pool.add(functools.partial(self._fetch_deletions, number, self.deleted_since[number], after))

    # ------------------------------------------------------------ fetching threads

    def _fetch(self, stream: Stream, pool: Pool) -> None:
        for page in self.client.dossier_pages(stream.demarche, stream.updated_since, after=stream.cursor,
                                              state=stream.state):
            stream.note(page)
            if not pool.put(Work(stream=stream, page=page)):
                return
            if stream.past_end():
                break
        pool.put(Work(stream=stream, ended=True))

    def _fetch_deletions(self, number: int, since: str | None, after: Changes | None, pool: Pool) -> None:
        for state, items in self.client.deletion_pages(number, since, after=after):
            if not pool.put(Work(deletions=(state, items), demarche=number)):
                return
        pool.put(Work(demarche=number, ended=True))

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
        read = set(page.numbers())
        self.seen.update(read)
        summary.illisibles[:] = [n for n in summary.illisibles if n not in read]
        summary.add(counts)
        summary.avertissements.extend(page.warnings)
        for stub, _message in page.unreadable:
            if stub["number"] not in summary.illisibles:
                summary.illisibles.append(stub["number"])
        if self.after_page is not None:
            self.after_page(stream.demarche, page.nodes)
        self.progress(summary)

    def _save_deletions(self, number: int, state: str, items: list[dict[str, Any]]) -> None:
        assert self.db is not None
        self.summaries[number].supprimes += syncstate.save_deleted(self.db, number, items, state)
        self.progress(self.summaries[number])


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
        if dossier not in summary.illisibles:
            summary.illisibles.append(dossier)
        progress(summary)
