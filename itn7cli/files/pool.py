"""A few worker threads that turn queued attachments into verified files: network and disk only.

Jobs come from a bounded queue: when the workers lag, whoever submits waits instead of piling up
URLs that will expire. Each outcome goes back through a result queue to the thread that owns the
database. An expired link is renewed through `LinkRenewer`, one `getDossier` per dossier shared by
its files; a bug or an `Itn7Error` in a worker is handed back too, and raised there.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from ..api import USER_AGENT, DSClient, NotFoundError, RetryPolicy
from .download import (
    DEFAULT_MAX_BYTES,
    ChecksumMismatch,
    FileGone,
    Interrupted,
    LinkExpired,
    Refused,
    Retryable,
    TooBig,
    download_verified,
    md5_base64,
    private_folders,
    size_of,
)
from .names import FileRef, dossier_files, inside

# Per file, network failures and checksum mismatches together; a renewed link is not a failed attempt.
RETRY = RetryPolicy(attempts=3, base=1.0, cap=10.0)
# Per dossier: renewed links refused in a row. More means something else is wrong (clock skew).
RENEWALS = 3


@dataclass
class Job:
    ref: FileRef
    previous: PurePosixPath | None = None  # where the file was put by an earlier run, if elsewhere


@dataclass
class Outcome:
    """What became of one file; `fetched` is the number of bytes taken from the network."""

    ref: FileRef
    status: str
    size: int | None = None
    fetched: int = 0
    message: str | None = None


@dataclass
class Crash:
    """A worker met an exception that is not a download problem: the writer raises it."""

    error: BaseException


class RenewalsExhausted(Exception):
    """The dossier's renewed links keep being refused: something else is wrong (this machine's clock?)."""


class LinkRenewer:
    """Fresh signed URLs from `getDossier`: one request renews every link of a dossier, and the other
    files of that dossier take theirs from it. Thread-safe; the client's limiter is the token's.

    A dossier whose renewed links are refused `RENEWALS` times with no download of it succeeding in
    between gets no more requests: a run whose links all expire goes on, one that can never download ends."""

    def __init__(self, client: DSClient | None, keys: Mapping[int, str]) -> None:
        self.client, self.keys = client, dict(keys)
        self._links: dict[int, dict[tuple[str, int, str | None], str | None]] = {}
        self._failures: dict[int, int] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()

    def dossier(self, demarche_number: int, number: int) -> dict[str, Any] | None:
        """The dossier as the API shows it now (None if gone); its links are remembered."""
        if self.client is None:
            return None
        try:
            node: dict[str, Any] | None = self.client.execute("getDossier", {"number": number})["dossier"]
        except NotFoundError:
            node = None
        key = self.keys.get(demarche_number, str(demarche_number))
        refs = dossier_files(demarche_number, key, node) if node else []
        with self._lock:
            self._links[number] = {(r.champ_id, r.position, r.checksum): r.url for r in refs}
        return node

    def renew(self, ref: FileRef, refused: str | None) -> str | None:
        """A link for `ref` other than `refused`; None when the dossier no longer holds this file. Raises
        RenewalsExhausted when the dossier's renewed links keep being refused."""
        number = ref.dossier_number
        with self._lock:
            lock = self._locks.setdefault(number, threading.Lock())
        with lock:  # the files of one dossier wait for one request
            with self._lock:
                known = self._links.get(number, {}).get((ref.champ_id, ref.position, ref.checksum))
                if known is not None and known != refused:
                    return known
                if known is not None:  # a link fresh from the API, refused
                    self._failures[number] = self._failures.get(number, 0) + 1
                if self._failures.get(number, 0) >= RENEWALS:
                    raise RenewalsExhausted()
            self.dossier(ref.demarche_number, number)
            with self._lock:
                return self._links[number].get((ref.champ_id, ref.position, ref.checksum))

    def worked(self, ref: FileRef) -> None:
        """A download of the dossier succeeded: its links are not refused for good."""
        with self._lock:
            self._failures.pop(ref.dossier_number, None)


class Fetcher:
    """What a worker does with one job: keep a good copy already on disk, or download the file, retrying
    what `retry` retries and renewing an expired link. One file at a time per path."""

    def __init__(self, root: Path, renewer: LinkRenewer, http: httpx.Client, stop: threading.Event, *,
                 max_bytes: int = DEFAULT_MAX_BYTES, retry: RetryPolicy | None = None,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.root, self.renewer, self.http, self.stop, self.max_bytes = root, renewer, http, stop, max_bytes
        self.retry = retry or RETRY
        self.on_bytes = on_bytes
        self._lock = threading.Lock()
        self._path_locks: dict[Path, threading.Lock] = {}

    @contextmanager
    def path_lock(self, relative: PurePosixPath) -> Iterator[Path]:
        """The file's absolute path, held against every other worker."""
        target = inside(self.root, relative)
        with self._lock:
            lock = self._path_locks.setdefault(target, threading.Lock())
        with lock:
            yield target

    def fetch(self, job: Job) -> Outcome:
        ref = job.ref
        with self.path_lock(ref.path) as target:
            reused = self._reuse(ref, target, job.previous)
            if reused:
                return reused
            private_folders(self.root, target.parent)
            outcome = self._download(ref, target)
            if outcome.status != "ok":
                # Whatever sits there is not this file any more (the dossier changed): never leave it
                # looking like the current piece.
                target.unlink(missing_ok=True)
            return outcome

    def _reuse(self, ref: FileRef, target: Path, previous: PurePosixPath | None) -> Outcome | None:
        """A good copy already on disk (at its place, or where the dossier's old name put it) is kept."""
        if size_of(target) == ref.byte_size and md5_base64(target) == ref.checksum:
            return Outcome(ref, "ok", ref.byte_size)
        if previous is not None and previous != ref.path:
            old = inside(self.root, previous)
            if size_of(old) == ref.byte_size and md5_base64(old) == ref.checksum:
                private_folders(self.root, target.parent)
                os.replace(old, target)
                return Outcome(ref, "ok", ref.byte_size)
        return None

    def _download(self, ref: FileRef, target: Path) -> Outcome:
        attempt = fetched = 0
        failure = Outcome(ref, "erreur", message="Téléchargement impossible.")
        while attempt < self.retry.attempts and not self.stop.is_set():
            attempt += 1
            try:
                size = download_verified(self.http, ref, target, max_bytes=self.max_bytes, on_chunk=self.on_bytes,
                                         stop=self.stop)
                self.renewer.worked(ref)
                return Outcome(ref, "ok", size, fetched=fetched + size)
            except LinkExpired:
                try:
                    url = self.renewer.renew(ref, ref.url)
                except RenewalsExhausted:
                    return Outcome(ref, "erreur", fetched=fetched, message="Lien de téléchargement refusé même "
                                   "renouvelé : vérifiez l'heure de ce poste, puis relancez « itn7 sync --files ».")
                if url is None:
                    return Outcome(ref, "manquant", message="Lien expiré et pièce absente du dossier relu : "
                                   "relancez « itn7 sync --files ».")
                ref, attempt = replace(ref, url=url), attempt - 1
                continue
            except FileGone as exc:
                return Outcome(ref, "manquant", message=str(exc))
            except TooBig as exc:
                return Outcome(ref, "trop_gros", message=str(exc))
            except Refused as exc:
                return Outcome(ref, "erreur", message=str(exc))
            except Interrupted:
                break
            except ChecksumMismatch as exc:
                fetched += exc.fetched
                failure = Outcome(ref, "somme_invalide", message=(
                    f"Somme de contrôle différente de celle annoncée par l'API après {attempt} essai(s) : "
                    "pièce non conservée."))
            except Retryable as exc:
                failure = Outcome(ref, "erreur", message=f"Téléchargement impossible ({exc}).")
            except OSError as exc:  # the disk: full, read-only, permissions
                failure = Outcome(ref, "erreur", message=f"Écriture impossible sur le disque ({exc.strerror}).")
            if attempt < self.retry.attempts:
                self.stop.wait(self.retry.backoff(attempt))
        failure.fetched = fetched
        return failure


class DownloadPool:
    """Worker threads downloading into `root`. `put()` and `results()` run in the writer's thread;
    `close()` waits for the queued files (or, with `abort`, drops them)."""

    def __init__(self, root: Path, renewer: LinkRenewer, *, workers: int = 4, max_bytes: int = DEFAULT_MAX_BYTES,
                 timeout: float = 60.0, retry: RetryPolicy | None = None,
                 on_bytes: Callable[[int], None] | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.stop = threading.Event()
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max(1, workers) * 2)
        self._results: queue.Queue[Outcome | Crash] = queue.Queue()
        # No Authorization header: file URLs are pre-signed and may point to another host, which must
        # never see the API token.
        self.http = httpx.Client(
            headers={"User-Agent": USER_AGENT}, follow_redirects=True,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers), transport=transport)
        self.fetcher = Fetcher(root, renewer, self.http, self.stop, max_bytes=max_bytes, retry=retry,
                               on_bytes=on_bytes)
        self._threads = [threading.Thread(target=self._work, name=f"itn7-files-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------ writer side

    def put(self, job: Job) -> None:
        """Queues a job; blocks while the queue is full. Raises what a worker met, if anything."""
        while True:  # a timeout so that a worker's failure is seen even while the queue is full
            try:
                self._jobs.put(job, timeout=0.5)
                return
            except queue.Full:
                if self.stop.is_set():
                    self.results()  # raises the worker's exception
                    raise RuntimeError("download pool stopped") from None

    def results(self) -> list[Outcome]:
        """The outcomes produced so far; raises the exception a worker met, if any."""
        done: list[Outcome] = []
        while True:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return done
            if isinstance(item, Crash):
                self.stop.set()
                raise item.error
            done.append(item)

    def remove(self, relative: PurePosixPath) -> None:
        """Deletes a file no dossier holds any more, once no worker is writing it."""
        with self.fetcher.path_lock(relative) as target:
            target.unlink(missing_ok=True)

    def close(self, *, abort: bool = False) -> int:
        """Stops the workers after the queued jobs (all dropped with `abort`); returns how many were dropped."""
        dropped = 0
        if abort or self.stop.is_set():  # stopped: a worker failed, and the others may be gone too
            self.stop.set()
            with self._jobs.mutex:
                dropped = len(self._jobs.queue)
                self._jobs.queue.clear()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self.http.close()
        return dropped

    # ------------------------------------------------------------ worker side

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                self._results.put(self.fetcher.fetch(job))
        except BaseException as exc:  # not swallowed: the writer raises it (a bug stays a bug)
            self.stop.set()
            self._results.put(Crash(exc))
