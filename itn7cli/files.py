"""Attachments: download, verify, safe names, and the committee's copy of a session's files.

DS file URLs are signed for one hour, so files are fetched right after the sync commits the page
that lists them. A few worker threads take jobs from a bounded queue: when they lag, the sync's
writer waits instead of piling up URLs that will expire. Workers touch only the network and the
disk; every database write happens in the thread that owns the connection (the sync's writer).

A file counts as stored only once its MD5 matches the API's checksum: bytes stream into a hidden
`.itn7-*.part` file next to their destination and are renamed into place after verification, so a
run killed at any point leaves either the previous good file or a `.part` that is swept away.
"""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import sqlite_utils
from filelock import FileLock, Timeout

from . import store
from . import sync as sync_mod
from .api import USER_AGENT, DSClient, NotFoundError, RateLimiter
from .config import Settings
from .errors import Itn7Error, StoreError

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
ATTEMPTS = 3             # per file, network failures and checksum mismatches together
BACKOFF = 1.0            # seconds, times the attempt number, between two attempts at one file
URL_REFRESHES = 2
# getDossier calls a minute for renewing links while the sync runs: its own client uses most of the
# API's 400 requests a minute per token.
REFRESH_PER_MINUTE = 60        # per file: a fresh URL that is refused again means something else is wrong
PART_PREFIX, PART_SUFFIX = ".itn7-", ".part"
NAME_BYTES = 120         # a file name; ext4 allows 255 bytes, Windows paths 260 characters in all
FOLDER_BYTES = 80        # a folder name
STATUSES = ("ok", "manquant", "somme_invalide", "trop_gros", "erreur")
# Windows refuses these names whatever the extension (CON.pdf included), and a committee member
# may well copy the folder onto a Windows share.
RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
            *(f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³")}
FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]')


# ---------------------------------------------------------------- safe names


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that fits in `max_bytes` of UTF-8, never splitting a character."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def safe_component(text: str | None, *, max_bytes: int = NAME_BYTES, fallback: str = "sans_nom") -> str:
    """One path component from applicant-typed text: no separators, control or reserved characters,
    no `.`/`..`, no Windows device name, at most `max_bytes` bytes of UTF-8 (the extension is kept)."""
    name = unicodedata.normalize("NFC", text or "")
    name = FORBIDDEN.sub("_", "".join(" " if unicodedata.category(c) in ("Zl", "Zp") else c for c in name))
    name = " ".join(name.split()).strip(" .")
    if not name:
        name = fallback
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10 or not ext.isalnum():
        stem, ext = name, ""
    if stem.split(".")[0].strip().upper() in RESERVED:
        stem = "_" + stem
    suffix = f".{ext}" if ext else ""
    stem = _cut(stem, max_bytes - len(suffix.encode())).rstrip(" .") or "_"
    return stem + suffix


def _numbered(name: str, n: int, max_bytes: int) -> str:
    """`devis.pdf` → `devis (2).pdf`, still within `max_bytes`."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    mark, suffix = f" ({n})", f".{ext}" if ext else ""
    return _cut(stem, max_bytes - len((mark + suffix).encode())).rstrip(" .") + mark + suffix


def inside(root: Path, relative: PurePosixPath | str) -> Path:
    """`root / relative`, resolved; raises StoreError if it would land outside `root` (`..`, absolute
    path, symbolic link pointing elsewhere)."""
    base = root.resolve()
    target = (base / Path(relative)).resolve()
    if not target.is_relative_to(base) or target == base:
        raise StoreError(f"Chemin de pièce jointe refusé (hors de {root}) : {str(relative)!r}.")
    return target


# ---------------------------------------------------------------- what a dossier holds


@dataclass(frozen=True)
class FileRef:
    """One attachment of one dossier, where it goes, and how to check it."""

    demarche_number: int
    dossier_number: int
    champ_id: str
    position: int
    filename: str
    checksum: str | None
    byte_size: int | None
    url: str | None
    path: PurePosixPath  # relative to the files directory

    @property
    def key(self) -> tuple[int, str, int]:
        return self.dossier_number, self.champ_id, self.position


def porteur(node: Mapping[str, Any]) -> str:
    """The applicant's name as the v_dossiers view shows it: company name, else first and last name."""
    demandeur = node.get("demandeur") or {}
    company = (demandeur.get("entreprise") or {}).get("raisonSociale")
    return company or " ".join(p for p in (demandeur.get("prenom"), demandeur.get("nom")) if p)


def _champ_files(champs: Any) -> Iterator[tuple[Mapping[str, Any], int, Mapping[str, Any]]]:
    for champ in champs or ():
        for position, file in enumerate(champ.get("files") or ()):
            yield champ, position, file
        for row in champ.get("rows") or ():
            yield from _champ_files(row.get("champs"))


def dossier_files(demarche_number: int, demarche_key: str, node: Mapping[str, Any]) -> list[FileRef]:
    """Every attachment of a dossier (champs, repetition rows, annotations) with its place in the tree
    `<démarche>/<numéro>-<porteur>/<champ>/<nom>`; same names in one folder get ` (2)`, ` (3)`…"""
    number = int(node["number"])
    name = porteur(node)
    holder = safe_component(name, max_bytes=FOLDER_BYTES - 12) if name.strip() else ""
    folder = PurePosixPath(safe_component(demarche_key, max_bytes=FOLDER_BYTES), f"{number}-{holder}".rstrip("-"))
    taken: set[str] = set()
    refs = []
    for champ, position, file in [*_champ_files(node.get("champs")), *_champ_files(node.get("annotations"))]:
        label = safe_component(champ.get("label"), max_bytes=FOLDER_BYTES, fallback="champ")
        name = safe_component(file.get("filename"), fallback="piece")
        candidate, n = name, 1
        # Case-insensitive: the tree may be copied to Windows or macOS, where Devis.pdf is devis.pdf.
        while f"{label}/{candidate}".casefold() in taken:
            n += 1
            candidate = _numbered(name, n, NAME_BYTES)
        taken.add(f"{label}/{candidate}".casefold())
        size = file.get("byteSize")
        refs.append(FileRef(demarche_number, number, str(champ["id"]), position, str(file.get("filename") or ""),
                            file.get("checksum"), int(size) if size not in (None, "") else None, file.get("url"),
                            folder / label / candidate))
    return refs


# ---------------------------------------------------------------- results


@dataclass
class Outcome:
    """What became of one file; `fetched` is the number of bytes taken from the network."""

    ref: FileRef
    status: str
    size: int | None = None
    fetched: int = 0
    message: str | None = None


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
# Re-reads one dossier from the API (None if it is gone); `force` skips any cached copy.
Refetch = Callable[[int, bool], "dict[str, Any] | None"]


class _Expired(Exception):
    pass


class _Missing(Exception):
    pass


class _TooBig(Exception):
    pass


class _Transient(Exception):
    pass


@dataclass
class _Job:
    ref: FileRef
    previous: PurePosixPath | None = None


def md5_base64(path: Path) -> str:
    """The ActiveStorage checksum of a file on disk, read in chunks."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


# ---------------------------------------------------------------- the downloader


class Downloader:
    """Downloads the attachments handed to `submit()` with a few worker threads.

    `submit()` and `drain()` run in the thread that owns `db`; workers only read the network and
    write under `root`. Use as a context manager: leaving waits for the queued files (or, after an
    error, abandons them) and records every outcome.
    """

    def __init__(self, db: sqlite_utils.Database, root: Path, keys: Mapping[int, str], *,
                 workers: int = 4, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 60.0,
                 refetch: Refetch | None = None,
                 progress: FilesProgress | None = None, backoff: float | None = None) -> None:
        self.db, self.keys, self.max_bytes = db, dict(keys), max_bytes
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.refetch = refetch
        self.progress = progress or (lambda summary: None)
        self.backoff = BACKOFF if backoff is None else backoff
        self.summary = FilesSummary()
        self.seen: set[int] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._path_locks: dict[Path, threading.Lock] = {}
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=workers * 2)
        self._results: queue.Queue[Outcome] = queue.Queue()
        # Same pool policy as DSClient, but no Authorization header: file URLs are pre-signed and
        # may point to another host, which must never see the API token.
        self.http = httpx.Client(
            headers={"User-Agent": USER_AGENT}, follow_redirects=True,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers))
        self._threads = [threading.Thread(target=self._work, name=f"itn7-files-{i}", daemon=True)
                         for i in range(max(1, workers))]
        sweep_parts(self.root)
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(abort=exc_type is not None)

    # ------------------------------------------------------------ writer side

    def after_page(self, demarche_number: int, nodes: list[dict[str, Any]]) -> None:
        """The sync's `after_page` hook: queue the page's files while their URLs are fresh."""
        for node in nodes:
            self.submit(demarche_number, node)

    def submit(self, demarche_number: int, node: Mapping[str, Any]) -> None:
        """Queues what a dossier needs: new or changed files; forgets files it no longer has.
        Blocks while the queue is full, which slows the sync down to the downloads' pace."""
        self.drain()
        number = int(node["number"])
        self.seen.add(number)
        refs = dossier_files(demarche_number, self.keys.get(demarche_number, str(demarche_number)), node)
        known = {(r["champ_id"], r["position"]): r
                 for r in self.db.query("SELECT * FROM file_downloads WHERE dossier_number = ?", [number])}
        self._forget(number, known, refs)
        for ref in refs:
            self._plan(ref, known.get((ref.champ_id, ref.position)))
        self.progress(self.summary)

    def _plan(self, ref: FileRef, record: Mapping[str, Any] | None) -> None:
        with self._lock:
            self.summary.fichiers += 1
        if record and record["status"] == "ok" and record["checksum"] == ref.checksum \
                and record["path"] == str(ref.path) and _size(self.root / record["path"]) == record["size"]:
            with self._lock:
                self.summary.deja_presents += 1
                self.summary.statuses["ok"] += 1
            return
        if ref.byte_size is not None and ref.byte_size > self.max_bytes:
            self._record(Outcome(ref, "trop_gros", ref.byte_size, message=_too_big(ref.byte_size, self.max_bytes)))
            return
        if not ref.checksum or not ref.url:
            self._record(Outcome(ref, "manquant", message="Pièce sans adresse ou sans somme de contrôle dans l'API."))
            return
        with self._lock:
            self.summary.attendus += ref.byte_size or 0
            self.summary.en_cours += 1
        previous = PurePosixPath(record["path"]) if record and record["path"] else None
        while True:  # put with a timeout so a dead pool cannot hang the sync forever
            try:
                self._jobs.put(_Job(ref, previous), timeout=0.5)
                return
            except queue.Full:
                self.drain()
                if not any(t.is_alive() for t in self._threads):
                    raise Itn7Error("Téléchargement des pièces interrompu.") from None

    def _forget(self, number: int, known: dict[tuple[str, int], Any], refs: list[FileRef]) -> None:
        """Files the dossier no longer lists leave the disk and the table (the dossier was edited)."""
        slots = {(r.champ_id, r.position) for r in refs}
        paths = {str(r.path) for r in refs}
        for key, record in known.items():
            if key in slots:
                continue
            if record["path"] and record["path"] not in paths:
                with self._path_lock(inside(self.root, record["path"])) as target:
                    target.unlink(missing_ok=True)
            with self.db.atomic():
                self.db.execute("DELETE FROM file_downloads WHERE dossier_number = ? AND champ_id = ? "
                                "AND position = ?", [number, *key])

    def count_kept(self, statuses: Mapping[str, int]) -> None:
        """Adds files checked without being queued (already verified, or known too big) to the summary."""
        with self._lock:
            for status, n in statuses.items():
                self.summary.fichiers += n
                self.summary.statuses[status] += n
                self.summary.deja_presents += n if status == "ok" else 0
        self.progress(self.summary)

    def drain(self) -> None:
        """Records the outcomes the workers have produced so far."""
        while True:
            try:
                outcome = self._results.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                self.summary.en_cours -= 1
                self.summary.telecharges += outcome.status == "ok" and outcome.fetched > 0
                if outcome.status == "ok" and outcome.fetched == 0:
                    self.summary.deja_presents += 1
            self._record(outcome)
            self.progress(self.summary)

    def _record(self, outcome: Outcome) -> None:
        ref = outcome.ref
        with self._lock:
            self.summary.statuses[outcome.status] += 1
        with self.db.atomic():
            self.db.table("file_downloads").upsert({
                "dossier_number": ref.dossier_number, "champ_id": ref.champ_id, "position": ref.position,
                "demarche_number": ref.demarche_number, "path": str(ref.path) if outcome.status == "ok" else None,
                "filename": ref.filename, "size": outcome.size, "checksum": ref.checksum, "status": outcome.status,
                "message": outcome.message, "downloaded_at": store.now(),
            }, pk=("dossier_number", "champ_id", "position"))

    def close(self, *, abort: bool = False) -> None:
        """Waits for the queued files (or abandons them with `abort`), records the outcomes, stops."""
        if abort:
            self.stop.set()
            with self._jobs.mutex:
                dropped = len(self._jobs.queue)
                self._jobs.queue.clear()
            with self._lock:
                self.summary.en_cours -= dropped
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self.drain()
        self.http.close()

    # ------------------------------------------------------------ worker side

    @contextmanager
    def _path_lock(self, target: Path) -> Iterator[Path]:
        with self._lock:
            lock = self._path_locks.setdefault(target, threading.Lock())
        with lock:
            yield target

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                outcome = self._fetch(job)
            except Exception as exc:  # a worker never dies: the file is reported, the others go on
                outcome = Outcome(job.ref, "erreur", message=f"Erreur inattendue : {type(exc).__name__}.")
            self._results.put(outcome)

    def _fetch(self, job: _Job) -> Outcome:
        ref = job.ref
        with self._path_lock(inside(self.root, ref.path)) as target:
            reused = self._reuse(ref, target, job.previous)
            if reused:
                return reused
            target.parent.mkdir(parents=True, exist_ok=True)
            outcome = self._download_verified(ref, target)
            if outcome.status != "ok":
                # Whatever sits there is not this file any more (the dossier changed): never leave it
                # looking like the current piece.
                target.unlink(missing_ok=True)
            return outcome

    def _reuse(self, ref: FileRef, target: Path, previous: PurePosixPath | None) -> Outcome | None:
        """A good copy already on disk (at its place, or where the dossier's old name put it) is kept."""
        if _size(target) == ref.byte_size and md5_base64(target) == ref.checksum:
            return Outcome(ref, "ok", ref.byte_size)
        if previous is not None and previous != ref.path:
            old = inside(self.root, previous)
            if _size(old) == ref.byte_size and md5_base64(old) == ref.checksum:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(old, target)
                return Outcome(ref, "ok", ref.byte_size)
        return None

    def _download_verified(self, ref: FileRef, target: Path) -> Outcome:
        refreshes, problem = 0, "erreur"
        message = "Téléchargement impossible."
        fetched = 0
        attempt = 0
        while attempt < ATTEMPTS and not self.stop.is_set():
            attempt += 1
            try:
                part, checksum, size = self._stream(ref, target.parent)
            except _Expired:
                fresh = self._fresh(ref) if refreshes < URL_REFRESHES else None
                if fresh is None:
                    return Outcome(ref, "manquant", message="Lien expiré et pièce absente du dossier relu : "
                                   "relancez « itn7 sync --files ».")
                refreshes += 1
                attempt -= 1  # a renewed link is not a failed attempt
                ref = fresh
                continue
            except _Missing:
                return Outcome(ref, "manquant", message="Le serveur ne trouve plus cette pièce (404).")
            except _TooBig as exc:
                return Outcome(ref, "trop_gros", message=str(exc))
            except (_Transient, httpx.HTTPError, OSError) as exc:
                message = f"Téléchargement impossible ({_reason(exc)})."
                problem = "erreur"
                self._sleep(attempt)
                continue
            fetched += size
            if checksum == ref.checksum:
                os.replace(part, target)
                return Outcome(ref, "ok", size, fetched=fetched)
            part.unlink(missing_ok=True)
            problem, message = "somme_invalide", (
                f"Somme de contrôle différente de celle annoncée par l'API après {attempt} essai(s) : "
                "pièce non conservée.")
            self._sleep(attempt)
        return Outcome(ref, problem, message=message, fetched=fetched)

    def _sleep(self, attempt: int) -> None:
        if attempt < ATTEMPTS:
            self.stop.wait(self.backoff * attempt)

    def _stream(self, ref: FileRef, folder: Path) -> tuple[Path, str, int]:
        """Streams the file into a `.part` in `folder`; returns it with its checksum and size.
        Never holds more than one network chunk in memory; the `.part` is removed on any failure."""
        assert ref.url is not None
        part = folder / f"{PART_PREFIX}{uuid.uuid4().hex}{PART_SUFFIX}"
        digest = hashlib.md5()
        size = 0
        try:
            with self.http.stream("GET", ref.url) as response:
                _check_status(response.status_code)
                announced = response.headers.get("Content-Length")
                if announced and announced.isdigit() and int(announced) > self.max_bytes:
                    raise _TooBig(_too_big(int(announced), self.max_bytes))
                with part.open("wb") as fh:
                    for chunk in response.iter_bytes():
                        if self.stop.is_set():
                            raise _Transient("interrompu")
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise _TooBig(_too_big(size, self.max_bytes))
                        digest.update(chunk)
                        fh.write(chunk)
                        self._advance(len(chunk))
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return part, base64.b64encode(digest.digest()).decode(), size

    def _advance(self, amount: int) -> None:
        with self._lock:
            self.summary.octets += amount
        self.progress(self.summary)

    def _fresh(self, ref: FileRef) -> FileRef | None:
        """The same file with a new signed URL, from the dossier as the API shows it now."""
        if self.refetch is None:
            return None
        key = self.keys.get(ref.demarche_number, str(ref.demarche_number))
        for force in (False, True):  # a cached copy may hold the very URL that just expired
            try:
                node = self.refetch(ref.dossier_number, force)
            except NotFoundError:
                return None
            fresh = next((f for f in dossier_files(ref.demarche_number, key, node or {"number": ref.dossier_number})
                          if (f.champ_id, f.position, f.checksum) == (ref.champ_id, ref.position, ref.checksum)), None)
            if fresh is None:
                return None
            if fresh.url != ref.url:
                # Keep the planned place: the next sync moves the file if the dossier was renamed.
                return replace(ref, url=fresh.url)
        return None


def _check_status(status: int) -> None:
    if status == 403:  # S3-style signed URLs answer 403 once expired
        raise _Expired()
    if status in (404, 410):
        raise _Missing()
    if status == 429 or status >= 500:
        raise _Transient(f"HTTP {status}")
    if status >= 400:
        raise _Transient(f"HTTP {status}")


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _Transient) else type(exc).__name__


def _too_big(size: int, limit: int) -> str:
    return f"Pièce de {size / 2**20:.0f} Mo, au-delà de la limite de {limit / 2**20:.0f} Mo : non téléchargée."


def sweep_parts(root: Path) -> int:
    """Deletes the `.part` files a killed run left behind; returns how many."""
    removed = 0
    for part in root.rglob(f"{PART_PREFIX}*{PART_SUFFIX}"):
        if part.is_file() and not part.is_symlink():
            part.unlink(missing_ok=True)
            removed += 1
    return removed


# ---------------------------------------------------------------- the run


class _Refetcher:
    """Re-reads one dossier through `getDossier` for fresh URLs; remembers it a few minutes so the
    files of one dossier share one request. Thread-safe."""

    TTL = 300.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = DSClient(settings.api_url, settings.require_token(), timeout=settings.timeout_seconds,
                               requests_per_minute=settings.requests_per_minute, max_connections=2)
        self.client.limiter = RateLimiter(REFRESH_PER_MINUTE, burst=10)
        self.cache: dict[int, tuple[float, dict[str, Any] | None]] = {}
        self.lock = threading.Lock()

    def full_speed(self) -> None:
        """The sync is over: this client may use the whole request budget."""
        self.client.limiter = RateLimiter(self.settings.requests_per_minute)

    def __call__(self, number: int, force: bool = False) -> dict[str, Any] | None:
        with self.lock:
            cached = self.cache.get(number)
            if cached and not force and time.monotonic() - cached[0] < self.TTL:
                return cached[1]
            client = self.client
        try:
            node: dict[str, Any] | None = client.execute("getDossier", {"number": number})["dossier"]
        except NotFoundError:
            node = None
        with self.lock:
            self.cache[number] = (time.monotonic(), node)
        return node

    def close(self) -> None:
        self.client.close()


def _catch_up_numbers(db: sqlite_utils.Database, root: Path, demarches: Mapping[str, int],
                      seen: set[int], max_bytes: int) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """(démarche, dossier) pairs whose stored files are not all on disk and verified, outside `seen`:
    a sync run without --files, a killed run, a transient failure, a file deleted by hand. Also the
    count, per status, of the files left as they are."""
    numbers = list(demarches.values())
    marks = ",".join("?" * len(numbers))
    rows = db.execute(
        f"SELECT d.demarche_number, f.dossier_number, f.checksum, f.byte_size, g.status, g.checksum, g.path, g.size "
        f"FROM files f JOIN dossiers d ON d.number = f.dossier_number "
        f"LEFT JOIN file_downloads g ON g.dossier_number = f.dossier_number AND g.champ_id = f.champ_id "
        f"AND g.position = f.position WHERE d.deletion_state IS NULL AND d.demarche_number IN ({marks}) "
        f"ORDER BY f.dossier_number", numbers)
    wanted: dict[int, int] = {}
    kept: dict[int, list[str]] = {}
    for demarche, number, checksum, byte_size, status, done_checksum, path, size in rows:
        if number in seen or number in wanted:
            continue
        if (status == "trop_gros" and done_checksum == checksum and (byte_size or 0) > max_bytes) or \
                (status == "ok" and done_checksum == checksum and path and _size(root / path) == size):
            kept.setdefault(number, []).append(status)
            continue
        wanted[number] = demarche
    counts = Counter(status for number, statuses in kept.items() if number not in wanted for status in statuses)
    return [(demarche, number) for number, demarche in wanted.items()], dict(counts)


def sync_with_files(settings: Settings, demarches: dict[str, int], *, full: bool = False,
                    progress: sync_mod.Progress | None = None, file_progress: FilesProgress | None = None,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[list[sync_mod.Summary], FilesSummary]:
    """`itn7 sync --files`: the sync, downloading each page's attachments as soon as it is saved, then
    the stored dossiers whose files are still missing (their URLs re-read through getDossier)."""
    settings.require_token()
    lock = FileLock(f"{settings.db_path}.files.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError("Un téléchargement de pièces jointes est déjà en cours sur cette base : "
                         "attendez qu'il se termine puis relancez.") from None
    refetch = _Refetcher(settings)
    try:
        # The token is checked on every démarche before the database is even created.
        metas = sync_mod.fetch_metas(refetch.client, demarches)
    except BaseException:
        refetch.close()
        lock.release()
        raise
    # Opened here, in the thread the sync writes from: after_page runs in that thread too.
    db = store.open_db(settings.db_path)
    try:
        keys = {number: key for key, number in demarches.items()}
        with Downloader(db, settings.files_dir, keys, workers=settings.concurrency, max_bytes=max_bytes,
                        timeout=settings.timeout_seconds, refetch=refetch, progress=file_progress) as downloader:
            summaries = sync_mod.sync_settings(settings, demarches, full=full, progress=progress,
                                               after_page=downloader.after_page, metas=metas,
                                               server_date=refetch.client.server_date)
            refetch.full_speed()
            missing, kept = _catch_up_numbers(db, downloader.root, demarches, downloader.seen, max_bytes)
            downloader.count_kept(kept)
            for demarche, number in missing:
                node = refetch(number)
                if node:
                    downloader.submit(demarche, node)
        return summaries, downloader.summary
    finally:
        db.close()
        refetch.close()
        lock.release()


# ---------------------------------------------------------------- the committee's copy


def _session_dossiers(db: sqlite_utils.Database, settings: Settings, session: int,
                      demarche: str | None) -> list[int]:
    from .rules.engine import session_for

    has_checks = "checks" in db.table_names()
    sql = ("SELECT d.number, d.date_depot, " + ("c.session, c.number IS NOT NULL" if has_checks else "NULL, 0") +
           " FROM dossiers d JOIN demarches m ON m.number = d.demarche_number" +
           (" LEFT JOIN checks c ON c.number = d.number" if has_checks else "") +
           " WHERE d.deletion_state IS NULL AND d.raw IS NOT NULL" + (" AND m.key = ?" if demarche else "") +
           " ORDER BY d.number")
    numbers = []
    for number, date_depot, checked_session, checked in db.execute(sql, [demarche] if demarche else []):
        # The check helper's verdict wins; unchecked dossiers get the same rule it applies.
        found = checked_session if checked else session_for(date_depot, settings.sessions)
        if found == session:
            numbers.append(number)
    return numbers


def _place(source: Path, target: Path, link: bool) -> None:
    if target.exists():
        if target.samefile(source):
            return
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, target)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copyfile(source, target)


def gather_session(db: sqlite_utils.Database, settings: Settings, session: int, dest: Path,
                   demarche: str | None = None, *, link: bool = True) -> dict[int, Path]:
    """Puts the session's verified files into `dest` (hard links when possible, else copies), in the
    same tree as the files directory; returns {dossier number: its folder relative to `dest`} for the
    dossiers that have at least one verified file."""
    root = settings.files_dir.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    folders: dict[int, Path] = {}
    for number in _session_dossiers(db, settings, session, demarche):
        rows = db.execute("SELECT path, size FROM file_downloads WHERE dossier_number = ? AND status = 'ok' "
                          "ORDER BY champ_id, position", [number]).fetchall()
        for path, size in rows:
            source = inside(root, path)
            if _size(source) != size:
                continue  # deleted or altered since it was verified: the next sync --files fetches it again
            _place(source, inside(dest, path), link)
            folders.setdefault(number, Path(*PurePosixPath(path).parts[:2]))
    return folders
