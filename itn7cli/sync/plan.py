"""What one sync run pulls: which démarches need a full pull, the streams each pull has in flight,
what the run's first look told of every state, and which stream to split when a slot is free, and how."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from ..api import Changes, ChangesTarget
from ..store import Database, syncstate
from .ranges import Stream, iso, moment, split_point


class Plan:
    """The full pulls of one run. It reads the sync state and writes a pull's plan; it fetches nothing."""

    def __init__(self, demarches: dict[str, int], *, full: bool, epoch: str, states: tuple[str, ...]) -> None:
        self.demarches, self.full, self.epoch, self.states = demarches, full, epoch, states
        self.fulls: list[int] = []
        self.active: dict[int, list[Stream]] = {}  # full pulls' streams started and not ended
        self.fresh: dict[int, list[Stream]] = {}  # full pulls started before their plan could be written
        self.newest: dict[int, dict[str, datetime]] = {}  # each state's most recently updated dossier
        self.deleted_since: dict[int, str | None] = {}

    def first_streams(self, db: Database | None) -> list[Stream]:
        """The full pulls' streams to start at once (without a database yet: a first sync's fresh plan),
        interleaved, so that a small démarche's streams fill slots while the big one's run."""
        plans = []
        for number in self.demarches.values():
            current = syncstate.state(db, number) if db is not None else {}
            self.deleted_since[number] = current.get("deletions_since")
            if self.full or not current.get("incremental_since") or current.get("full_run") is not None:
                self.fulls.append(number)
                self.active[number] = []
                plans.append(self._full(db, number, current))
        return [stream for stream in itertools.chain(*itertools.zip_longest(*plans)) if stream is not None]

    def _full(self, db: Database | None, number: int, current: dict[str, Any]) -> list[Stream]:
        if db is not None and current.get("full_run") is not None:  # interrupted: go on where it stopped
            return [Stream(number, r["name"], r["updated_since"], r["state"], r["cursor"], current["full_run"],
                           r["until"]) for r in syncstate.pending_full_streams(db, number)]
        self.fresh[number] = [Stream(number, f"full:{s}", self.epoch, s, None) for s in self.states]
        return list(self.fresh[number])

    def targets(self, db: Database | None) -> list[ChangesTarget]:
        """What the run's first request asks of each démarche."""
        out = []
        for number in self.demarches.values():
            if number in self.fulls:
                out.append(ChangesTarget(number, self.epoch, None, self.deleted_since[number], changes=False,
                                         newest=True))
            else:
                assert db is not None
                since, cursor = syncstate.incremental_plan(db, number)
                out.append(ChangesTarget(number, since, cursor, self.deleted_since[number]))
        return out

    def open(self, db: Database, runs: dict[int, int], overview: dict[int, Changes],
             next_since: datetime) -> list[int]:
        """Writes the fresh pulls' plans under this run; returns the full pulls with no stream left."""
        for number in self.fulls:
            self.newest[number] = {state: moment(at) for state, at in overview[number].newest.items()}
            if number in self.fresh:
                syncstate.open_full(db, number, runs[number], iso(next_since), [
                    {"name": s.name, "updated_since": s.updated_since, "state": s.state} for s in self.fresh[number]])
                for stream in self.fresh[number]:
                    stream.seen_run = runs[number]
        return [number for number in self.fulls if not self.active[number]]

    def started(self, stream: Stream) -> None:
        if stream.full:
            self.active[stream.demarche].append(stream)

    def ended(self, stream: Stream) -> bool:
        """Takes a stream out; true when it was its full pull's last one."""
        if not stream.full:
            return False
        self.active[stream.demarche].remove(stream)
        return not self.active[stream.demarche]

    def split(self, db: Database | None) -> Stream | None:
        """Cuts the stream with the most left to read in two, in the sync state too; returns the second
        half, to start. None when no stream would pay to split."""
        candidates = [(point, s) for n in self.fulls for s in self.active[n]
                      if not (s.done or s.fetched)
                      and (point := split_point(s, self.newest[n].get(s.state or ""))) is not None]
        if not candidates:
            return None
        assert db is not None
        (at, _left), stream = max(candidates, key=lambda c: c[0][1])
        name = f"{stream.name.split('@')[0]}@{iso(at)}"
        syncstate.split_stream(db, stream.demarche, stream.name, iso(at), name)
        half = Stream(stream.demarche, name, iso(at), stream.state, None, stream.seen_run, stream.until)
        stream.until = iso(at)
        return half

    def fetched(self, number: int) -> bool:
        """Whether every stream of a full pull has its last page on the writer's queue: what changed
        meanwhile can be asked for, the pages are saved before the answer (one queue, in order)."""
        return bool(self.active.get(number)) and all(s.fetched for s in self.active[number])

    def handover(self, db: Database, number: int) -> Stream:
        """The incremental stream a full pull will hand over to, before the pull is closed (see `fetched`)."""
        since, cursor = syncstate.handover_plan(db, number)
        return Stream(number, "incremental", since, None, cursor, syncstate.state(db, number).get("full_run"))

    def incremental(self, db: Database, number: int) -> Stream:
        """A démarche's incremental stream, where the sync state left it."""
        row = syncstate.incremental_stream(db, number)
        return Stream(number, "incremental", row["updated_since"], None, row["cursor"],
                      syncstate.state(db, number).get("full_run"))
