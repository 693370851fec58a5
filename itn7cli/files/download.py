"""One attachment from its signed URL to its place on disk, verified: streaming, MD5, atomic rename.

A file counts as stored only once its MD5 matches the API's checksum: bytes stream into a hidden
`.itn7-*.part` file next to their destination and are renamed into place after verification, so a
run killed at any point leaves either the previous good file or a `.part` that `sweep` removes.
Nothing here knows of the database, of retries or of the API: each way a download can fail is a
named exception, and the caller decides (retry, renew the link, report).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from ..api import retryable_status
from ..private import DIR_MODE, FILE_MODE, open_private, private_dir
from .names import FileRef

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
PART_PREFIX, PART_SUFFIX = ".itn7-", ".part"


class DownloadProblem(Exception):
    """Why one download did not give a verified file; the message is French."""


class LinkExpired(DownloadProblem):
    """The signed URL is refused: OpenStack Swift temp URLs answer 401 once expired, S3 ones 403. Renew it."""


class FileGone(DownloadProblem):
    """The storage no longer has the file (404, 410)."""


class TooBig(DownloadProblem):
    """The file is over the size limit: not downloaded."""


class Retryable(DownloadProblem):
    """Worth another try: a network failure, or a status that `api.retryable_status` retries."""


class Refused(DownloadProblem):
    """A status that another try would not change (a 4xx other than 408, 425, 429, 401, 403, 404, 410)."""


class ChecksumMismatch(DownloadProblem):
    """The bytes arrived whole but their MD5 is not the API's checksum; the `.part` is deleted."""

    def __init__(self, fetched: int) -> None:
        super().__init__("Somme de contrôle différente de celle annoncée par l'API.")
        self.fetched = fetched


class Interrupted(DownloadProblem):
    """The run is stopping."""


def too_big_message(size: int, limit: int) -> str:
    return f"Pièce de {size / 2**20:.0f} Mo, au-delà de la limite de {limit / 2**20:.0f} Mo : non téléchargée."


def _check_status(status: int) -> None:
    if status in (401, 403):
        raise LinkExpired(f"Lien refusé ({status}).")
    if status in (404, 410):
        raise FileGone("Le serveur ne trouve plus cette pièce (404).")
    if retryable_status(status):
        raise Retryable(f"HTTP {status}")
    if status != 200:
        raise Refused(f"Téléchargement refusé par le serveur (HTTP {status}).")


def download_verified(client: httpx.Client, ref: FileRef, dest: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                      on_chunk: Callable[[int], None] | None = None,
                      stop: threading.Event | None = None) -> int:
    """Streams `ref.url` into a private `.part` beside `dest`, checks its MD5 against `ref.checksum`,
    then renames it to `dest`; returns the bytes fetched. Never holds more than one network chunk in
    memory; the `.part` is removed on any failure. Raises a `DownloadProblem` (or OSError for the disk)."""
    if not ref.url:
        raise FileGone("Pièce sans adresse dans l'API.")
    part = dest.parent / f"{PART_PREFIX}{uuid.uuid4().hex}{PART_SUFFIX}"
    digest = hashlib.md5()
    size = 0
    try:
        with client.stream("GET", ref.url) as response:
            _check_status(response.status_code)
            announced = response.headers.get("Content-Length")
            if announced and announced.isdigit() and int(announced) > max_bytes:
                raise TooBig(too_big_message(int(announced), max_bytes))
            with open_private(part) as fh:
                for chunk in response.iter_bytes():
                    if stop is not None and stop.is_set():
                        raise Interrupted("interrompu")
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooBig(too_big_message(size, max_bytes))
                    digest.update(chunk)
                    fh.write(chunk)
                    if on_chunk is not None:
                        on_chunk(len(chunk))
        if base64.b64encode(digest.digest()).decode() != ref.checksum:
            raise ChecksumMismatch(size)
        os.replace(part, dest)
    except httpx.TransportError as exc:  # network: connection, timeout, broken transfer
        part.unlink(missing_ok=True)
        raise Retryable(type(exc).__name__) from exc
    except httpx.RequestError as exc:  # too many redirects, undecodable body: another try gives the same
        part.unlink(missing_ok=True)
        raise Refused(f"Téléchargement impossible ({type(exc).__name__}).") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return size


def md5_base64(path: Path) -> str:
    """The ActiveStorage checksum of a file on disk, read in chunks."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def size_of(path: Path) -> int | None:
    """The file's size, or None if it is not there."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def private_folders(root: Path, folder: Path) -> None:
    """Creates `folder` and every missing folder between `root` and it owner-only (mkdir's `parents`
    would create the intermediate ones with the umask's modes)."""
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        private_dir(current)


def sweep(root: Path, folders: Iterable[str]) -> int:
    """Deletes the `.part` files a killed run left behind in the démarche `folders` of `root`, and narrows
    any wider mode there to owner-only (a tree of an older version, or copied in by hand); returns how
    many `.part` it removed. Nothing else under `root` is touched: it may be a folder the user shares."""
    removed = 0
    for folder in folders:
        top = root / folder
        if top.is_symlink() or not top.is_dir():
            continue
        for path in [top, *top.rglob("*")]:
            if path.is_symlink():
                continue
            if path.is_file() and path.name.startswith(PART_PREFIX) and path.name.endswith(PART_SUFFIX):
                path.unlink(missing_ok=True)
                removed += 1
            elif path.stat().st_mode & 0o077:
                os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
    return removed
