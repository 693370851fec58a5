"""`itn7 sync --files`: the sync, each page's attachments queued as soon as the page is saved, then the
stored dossiers whose files are still missing, their links read afresh through `getDossier`.

DS file URLs are signed for one hour, so files are fetched right after the page that lists them.
The download records are read before the sync and written after it, through `store.downloads`, so
that the sync's connection is the only one open while it runs; a run killed in between loses only
records, and the next run finds the verified files on disk and keeps them without downloading.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock, Timeout

from .. import store
from .. import sync as sync_mod
from ..api import DSClient, RetryPolicy
from ..config import Settings
from ..errors import StoreError
from ..private import FILE_MODE, private_dir
from ..store import Database, downloads
from .download import DEFAULT_MAX_BYTES, size_of, sweep, too_big_message
from .names import FileRef, demarche_folder, dossier_files
from .pool import DownloadPool, Job, LinkRenewer, Outcome

STATUSES = ("ok", "manquant", "somme_invalide", "trop_gros", "erreur")


@dataclass
class FilesSummary:
    """Counts of one `sync --files` run; `octets` are bytes downloaded, `attendus` bytes queued."""

    fichiers: int = 0
    telecharges: int = 0
    deja_presents: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    octets: int = 0
    attendus: int = 0
    en_cours: int = 0

    @property
    def problemes(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "ok")


FilesProgress = Callable[[FilesSummary], None]


class Ledger:
    """The run's download records: the ones read before the sync, changed as outcomes come, written to the
    database given to `attach` (kept until then, so that the sync's connection is the only one open)."""

    def __init__(self, known: downloads.Records) -> None:
        self.known = known
        self.db: Database | None = None
        self._pending: dict[downloads.Slot, dict[str, Any]] = {}
        self._forgotten: set[downloads.Slot] = set()

    def of(self, number: int) -> dict[tuple[str, int], dict[str, Any]]:
        """The records of one dossier, by slot."""
        return self.known.setdefault(number, {})

    def keep(self, number: int, slot: tuple[str, int], row: dict[str, Any]) -> None:
        """A file's new record."""
        self.of(number)[slot] = row
        self._pending[(number, *slot)] = row
        self._forgotten.discard((number, *slot))

    def forget(self, number: int, slot: tuple[str, int]) -> None:
        """A file the dossier no longer lists."""
        del self.of(number)[slot]
        self._pending.pop((number, *slot), None)
        self._forgotten.add((number, *slot))

    def attach(self, db: Database) -> None:
        """From now on, `flush` writes to `db`; the records kept so far are written now."""
        self.db = db
        self.flush()

    def flush(self) -> None:
        """Writes the changed records, once a database is attached."""
        if self.db is None:
            return
        downloads.record(self.db, self._pending.values())
        downloads.forget(self.db, self._forgotten)
        self._pending.clear()
        self._forgotten.clear()


class FilesRun:
    """The writer's side: decides what each dossier needs, queues it, counts, and keeps the records in
    its `ledger`."""

    def __init__(self, root: Path, keys: Mapping[int, str], known: downloads.Records, renewer: LinkRenewer, *,
                 workers: int = 4, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 60.0,
                 retry: RetryPolicy | None = None, progress: FilesProgress | None = None) -> None:
        self.root, self.keys, self.renewer, self.max_bytes = root, dict(keys), renewer, max_bytes
        self.ledger = Ledger(known)
        self.progress = progress or (lambda summary: None)
        self.summary = FilesSummary()
        self.seen: set[int] = set()
        self._lock = threading.Lock()
        self.pool = DownloadPool(root, renewer, workers=workers, max_bytes=max_bytes, timeout=timeout,
                                 retry=retry, on_bytes=self._advance)

    def after_page(self, demarche_number: int, nodes: list[dict[str, Any]]) -> None:
        """The sync's `after_page` hook: queue the page's files while their URLs are fresh."""
        for node in nodes:
            self.submit(demarche_number, node)

    def submit(self, demarche_number: int, node: Mapping[str, Any]) -> None:
        """Queues what a dossier needs: new or changed files; forgets files it no longer has.
        Blocks while the queue is full, which slows the sync down to the downloads' pace."""
        self.collect()
        number = int(node["number"])
        self.seen.add(number)
        refs = dossier_files(demarche_number, self.keys.get(demarche_number, str(demarche_number)), node)
        known = self.ledger.of(number)
        self._forget(number, known, refs)
        for ref in refs:
            self._plan(ref, known.get(ref.slot))
        self.progress(self.summary)

    def _plan(self, ref: FileRef, record: Mapping[str, Any] | None) -> None:
        with self._lock:
            self.summary.fichiers += 1
        if record and record["status"] == "ok" and record["checksum"] == ref.checksum \
                and record["path"] == str(ref.path) and size_of(self.root / record["path"]) == record["size"]:
            self.count_kept({"ok": 1}, counted=True)
            return
        if ref.byte_size is not None and ref.byte_size > self.max_bytes:
            self._record(Outcome(ref, "trop_gros", ref.byte_size, message=too_big_message(ref.byte_size,
                                                                                          self.max_bytes)))
            return
        if not ref.checksum or not ref.url:
            self._record(Outcome(ref, "manquant", message="Pièce sans adresse ou sans somme de contrôle dans l'API."))
            return
        with self._lock:
            self.summary.attendus += ref.byte_size or 0
            self.summary.en_cours += 1
        previous = PurePosixPath(record["path"]) if record and record["path"] else None
        self.pool.put(Job(ref, previous))

    def _forget(self, number: int, known: dict[tuple[str, int], dict[str, Any]], refs: list[FileRef]) -> None:
        """Files the dossier no longer lists leave the disk and the records (the dossier was edited)."""
        slots = {r.slot for r in refs}
        paths = {str(r.path) for r in refs}
        for slot, record in list(known.items()):
            if slot in slots:
                continue
            if record["path"] and record["path"] not in paths:
                self.pool.remove(PurePosixPath(record["path"]))
            self.ledger.forget(number, slot)

    def count_kept(self, statuses: Mapping[str, int], *, counted: bool = False) -> None:
        """Adds files checked without being queued (already verified, or known too big) to the summary."""
        with self._lock:
            for status, n in statuses.items():
                self.summary.fichiers += 0 if counted else n
                self.summary.statuses[status] += n
                self.summary.deja_presents += n if status == "ok" else 0
        self.progress(self.summary)

    def collect(self) -> None:
        """Takes the outcomes the workers produced so far (raising what a worker met, if anything)."""
        for outcome in self.pool.results():
            with self._lock:
                self.summary.en_cours -= 1
                self.summary.telecharges += outcome.status == "ok" and outcome.fetched > 0
                self.summary.deja_presents += outcome.status == "ok" and outcome.fetched == 0
            self._record(outcome)
            self.progress(self.summary)
        self.ledger.flush()

    def _record(self, outcome: Outcome) -> None:
        ref = outcome.ref
        row = {"dossier_number": ref.dossier_number, "champ_id": ref.champ_id, "position": ref.position,
               "demarche_number": ref.demarche_number, "path": str(ref.path) if outcome.status == "ok" else None,
               "filename": ref.filename, "size": outcome.size, "checksum": ref.checksum, "status": outcome.status,
               "message": outcome.message}
        with self._lock:
            self.summary.statuses[outcome.status] += 1
        self.ledger.keep(ref.dossier_number, ref.slot, row)

    def _advance(self, amount: int) -> None:
        with self._lock:
            self.summary.octets += amount
        self.progress(self.summary)

    def finish(self, *, abort: bool = False) -> None:
        """Waits for the queued files and takes their outcomes; with `abort`, drops them and records nothing more."""
        dropped = self.pool.close(abort=abort)
        with self._lock:
            self.summary.en_cours -= dropped
        if not abort:
            self.collect()


def catch_up(db: Database, run: FilesRun, demarche_numbers: list[int]) -> None:
    """Queues the stored dossiers, outside those the sync just handed over, whose files are not all on
    disk and verified (a sync run without --files, a killed run, a transient failure, a file deleted by
    hand), with links read afresh; counts the files left as they are."""
    wanted: dict[int, int] = {}
    kept: dict[int, list[str]] = {}
    for demarche, number, checksum, byte_size, status, done, path, size in downloads.file_states(db, demarche_numbers):
        if number in run.seen or number in wanted:
            continue
        if (status == "trop_gros" and done == checksum and (byte_size or 0) > run.max_bytes) or \
                (status == "ok" and done == checksum and path and size_of(run.root / path) == size):
            kept.setdefault(number, []).append(status)
            continue
        wanted[number] = demarche
    run.count_kept(Counter(status for number, statuses in kept.items() if number not in wanted
                           for status in statuses))
    for number, demarche in wanted.items():
        node = run.renewer.dossier(demarche, number)
        if node:
            run.submit(demarche, node)


def sync_with_files(settings: Settings, demarches: dict[str, int], *, full: bool = False,
                    progress: sync_mod.Progress | None = None, file_progress: FilesProgress | None = None,
                    max_bytes: int = DEFAULT_MAX_BYTES,
                    retry: RetryPolicy | None = None) -> tuple[list[sync_mod.Summary], FilesSummary]:
    """`itn7 sync --files`: the sync, downloading each page's attachments as soon as it is saved, then
    the stored dossiers whose files are still missing (their URLs re-read through getDossier)."""
    token = settings.require_token()
    lock = FileLock(f"{settings.db_path}.files.lock", timeout=0, mode=FILE_MODE)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError("Un téléchargement de pièces jointes est déjà en cours sur cette base : "
                         "attendez qu'il se termine puis relancez.") from None
    with ExitStack() as stack:
        stack.callback(lock.release)
        client = stack.enter_context(DSClient(settings.api_url, token, timeout=settings.timeout_seconds,
                                              requests_per_minute=settings.requests_per_minute, max_connections=2))
        # The token is checked on every démarche before the database is even created.
        metas = sync_mod.fetch_metas(client, demarches)
        numbers = list(demarches.values())
        with closing(store.open_db(settings.db_path)) as db:
            known = downloads.records(db, numbers)
        root = private_dir(settings.files_dir).resolve()
        sweep(root, [demarche_folder(key) for key in demarches])
        keys = {number: key for key, number in demarches.items()}
        run = FilesRun(root, keys, known, LinkRenewer(client, keys), workers=settings.concurrency,
                       max_bytes=max_bytes, timeout=settings.timeout_seconds, retry=retry, progress=file_progress)
        try:
            summaries = sync_mod.sync_settings(settings, demarches, full=full, progress=progress,
                                               after_page=run.after_page, metas=metas,
                                               server_date=client.server_date)
            db = stack.enter_context(closing(store.open_db(settings.db_path)))
            run.ledger.attach(db)
            catch_up(db, run, numbers)
        except BaseException:
            run.finish(abort=True)
            raise
        run.finish()
        return summaries, run.summary

