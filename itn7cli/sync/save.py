"""The saving side of a sync: what the fetching threads bring is written by one thread, and counted
in the run's summaries; at the end, the dossiers no page could give whole are read again by number."""

from __future__ import annotations

from typing import Any

from ..api import DSClient, NotFoundError, Page, PageError
from ..store import Database, syncstate
from .ranges import Stream, within
from .summary import AfterPage, Progress, Summary


class Saver:
    """Writes a run's pages and deletions. Only the thread that calls `run` writes to the database."""

    def __init__(self, demarches: dict[str, int], progress: Progress | None, after_page: AfterPage | None) -> None:
        self.db: Database | None = None
        self.summaries = {number: Summary(key, number) for key, number in demarches.items()}
        self.seen: set[int] = set()  # dossiers read whole by this run's pages
        self.progress = progress or (lambda summary: None)
        self.after_page = after_page

    def page(self, stream: Stream, page: Page) -> None:
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

    def deletions(self, number: int, state: str, items: list[dict[str, Any]]) -> None:
        assert self.db is not None
        self.summaries[number].supprimes += syncstate.save_deleted(self.db, number, items, state)
        self.progress(self.summaries[number])

    def reread(self, client: DSClient, number: int) -> None:
        """Re-reads by number the dossiers a page could not give whole: the unreadable ones (until DS can
        serialise them) and those whose company data DS had not fetched (until it has)."""
        db, summary = self.db, self.summaries[number]
        assert db is not None
        # Named or read by a page of this very run: a second read now would tell nothing new.
        wanted = [n for n in syncstate.to_reread(db, number) if n not in self.seen and n not in summary.illisibles]
        for dossier in wanted:
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
                    continue
                syncstate.still_unreadable(db, number, dossier, "; ".join(str(e.get("message")) for e in answer.bad))
            summary.unreadable(dossier)
            self.progress(summary)
