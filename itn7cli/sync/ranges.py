"""A full pull's streams as time ranges: which part of a page a stream keeps, and where to split one.

Each stream of a full pull reads one dossier state (DS's `state` filter) from `updated_since` on, in
keyset order on (updated_at, id), and stops before `until` (none: to the end). A stream with much
left is split in two at a whole second inside what it has left: it keeps the first half, a new
stream reads the second. `dateDerniereModification` is `updated_at` cut to the second, so with
whole-second bounds "before `until`" reads the same on both sides of the cut, and every dossier
belongs to exactly one stream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..api import Page

# A split pays when the stream has more than a page left (by estimate): its two halves then need one
# round trip where the stream alone needs two, for one more request, while a slot is free anyway.
SPLIT_WORTH = 100
ONE_SECOND = timedelta(seconds=1)


@dataclass
class Stream:
    """One resumable stream of pages; `position` and `density` are its fetching thread's progress."""

    demarche: int
    name: str
    updated_since: str
    state: str | None
    cursor: str | None
    seen_run: int | None = None
    until: str | None = None
    position: datetime | None = None  # updated_at of the last dossier fetched
    density: float = 0.0  # dossiers per second of updated_at, on its last full page
    done: bool = False  # its last page is saved (the writer's own mark)
    fetched: bool = False  # its last page is on the writer's queue (the fetching thread's mark)

    @property
    def full(self) -> bool:
        return self.name.startswith("full:")

    def note(self, page: Page) -> None:
        """Called by the fetching thread with each page it gets."""
        moments = page_moments(page)
        if not moments:
            return
        self.position = moments[-1]
        if page.more and len(moments) > 1:
            self.density = len(moments) / max(1.0, (moments[-1] - moments[0]).total_seconds())

    def past_end(self) -> bool:
        """Whether the pages fetched so far reach the stream's end: no need to ask for more."""
        return self.until is not None and self.position is not None and self.position >= moment(self.until)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def page_moments(page: Page) -> list[datetime]:
    """The updated_at of each dossier of a page, read whole or only named (unreadable), in page order."""
    dates = [stamp.dateDerniereModification for stamp in page.stamps if stamp is not None]
    dates += [stub.get("dateDerniereModification") for stub, _message in page.unreadable]
    return sorted(moment(date) for date in dates if date)


def within(page: Page, until: str | None) -> Page:
    """The part of a page that belongs to a stream ending at `until`: the page itself if it lies wholly
    before it, else what does, as the stream's last page (no next page)."""
    if until is None:
        return page
    end = moment(until)

    def before(date: str | None) -> bool:
        return date is None or moment(date) < end

    kept = [(raw, stamp) for raw, stamp in zip(page.raw, page.stamps, strict=True)
            if stamp is not None and before(stamp.dateDerniereModification)]
    unreadable = [(stub, message) for stub, message in page.unreadable if before(stub.get("dateDerniereModification"))]
    if len(kept) == len(page.numbers()) and len(unreadable) == len(page.unreadable):
        return page
    return dataclasses.replace(page, info={**page.info, "hasNextPage": False}, raw=[raw for raw, _ in kept],
                               stamps=[stamp for _, stamp in kept], unreadable=unreadable)


def split_point(stream: Stream, newest: datetime | None) -> tuple[datetime, float] | None:
    """Where to split a stream so that both halves have about as much left, with the dossiers it has
    left by estimate; None when a split would not pay. An open stream (no `until`) ends, for this
    estimate, at its state's most recently updated dossier."""
    if stream.position is None or stream.density <= 0:
        return None
    end = moment(stream.until) if stream.until else (newest + ONE_SECOND if newest else None)
    if end is None or end <= stream.position:
        return None
    left = (end - stream.position).total_seconds() * stream.density
    at = (stream.position + (end - stream.position) / 2).replace(microsecond=0)
    if left < SPLIT_WORTH or not stream.position < at < end:
        return None
    return at, left
