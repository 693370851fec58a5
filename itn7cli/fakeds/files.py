"""Deterministic attachment contents: generated in chunks from a seed, never held whole in memory."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHUNK = 64 * 1024
TAIL = 32


@dataclass
class FileSpec:
    """One attachment: its metadata and the seed its bytes come from."""

    key: str
    filename: str
    content_type: str
    size: int
    created_at: str


class ContentFactory:
    """Builds file bytes as a shared pseudo-random body followed by a per-file tail.

    The shared body lets the MD5 state of every prefix length be computed once, so checksums of
    big files (benchmarks use 20 MB) cost one pass per distinct size instead of one per file.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._prefix_md5: dict[int, Any] = {}
        self._checksums: dict[tuple[str, int], str] = {}

    def _chunk(self, index: int) -> bytes:
        return random.Random(f"{self.seed}:{index}").randbytes(CHUNK)

    def _tail(self, key: str) -> bytes:
        return hashlib.sha256(f"{self.seed}:{key}".encode()).digest()[:TAIL]

    def _body(self, length: int) -> Iterator[bytes]:
        index = 0
        while length > 0:
            chunk = self._chunk(index)[:length]
            length -= len(chunk)
            index += 1
            yield chunk

    def stream(self, key: str, size: int, *, corrupt: bool = False) -> Iterator[bytes]:
        """The content of a file, in chunks of at most 64 KiB; `corrupt` flips its first bytes."""
        tail = self._tail(key)
        body = max(0, size - len(tail))
        first = True
        for chunk in self._body(body):
            if first and corrupt:
                chunk = bytes(b ^ 0xFF for b in chunk[:16]) + chunk[16:]
            first = False
            yield chunk
        last = tail[: size - body]
        if corrupt and body == 0:
            last = bytes(b ^ 0xFF for b in last)
        yield last

    def checksum(self, key: str, size: int) -> str:
        """base64 of the MD5 of the file content, as ActiveStorage computes it."""
        with self._lock:
            cached = self._checksums.get((key, size))
            if cached is not None:
                return cached
            tail = self._tail(key)
            body = max(0, size - len(tail))
            state = self._prefix_md5.get(body)
            if state is None:
                state = hashlib.md5()
                for chunk in self._body(body):
                    state.update(chunk)
                self._prefix_md5[body] = state
            md5 = state.copy()
            md5.update(tail[: size - body])
            value = base64.b64encode(md5.digest()).decode()
            self._checksums[(key, size)] = value
            return value


class Storage:
    """The object store behind the signed URLs: its clock, and the controls tests use to make links expire.

    DS signs attachment URLs for one hour (`service_urls_expire_in`, DS `config/initializers/active_storage.rb`);
    in production the store is OpenStack Swift, whose temp URLs answer 401 once expired. `seconds_per_file`
    plays a slow network: each file served moves this clock on, so links signed before it may expire.
    `rotate()` expires every link signed so far, as a new signing key would. `hold()` stops one download
    half-way until `release()`, so that a test can kill a client mid-file without racing it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._not_before = 0.0
        self.seconds_per_file = 0.0
        self.refused = 0  # expired or invalid links presented
        self.files = 0  # files served whole
        self._hold: tuple[int, int] | None = None
        self.held = threading.Event()
        self._released = threading.Event()

    def now(self) -> float:
        """The store's clock, in epoch seconds."""
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Moves the store's clock on."""
        with self._lock:
            self._offset += seconds

    def rotate(self) -> None:
        """Every link signed until now is refused from now on."""
        with self._lock:
            self._not_before = time.time() + self._offset

    def valid(self, signed_at: float, expires: float) -> bool:
        """Whether a link signed at `signed_at`, valid until `expires`, is accepted now; counts refusals."""
        with self._lock:
            now = time.time() + self._offset
            good = signed_at >= self._not_before and expires >= now
            self.refused += not good
            return good

    def fresh(self, signed_at: float, max_age: float) -> bool:
        """Whether links signed at `signed_at` are younger than `max_age` and not rotated out (nothing counted)."""
        with self._lock:
            return signed_at >= self._not_before and time.time() + self._offset - signed_at <= max_age

    def refuse(self) -> None:
        """Counts a link refused for its signature."""
        with self._lock:
            self.refused += 1

    def served(self) -> None:
        """A file went out whole: with `seconds_per_file`, the clock moves on as a slow download would."""
        with self._lock:
            self.files += 1
            self._offset += self.seconds_per_file

    def hold(self, *, after_files: int, after_bytes: int) -> None:
        """The first download that passes `after_bytes` once `after_files` files went out whole stops there
        (its bytes so far sent) until `release()`; `held` is set when it stops."""
        with self._lock:
            self._hold = (after_files, after_bytes)
            self.held.clear()
            self._released.clear()

    def release(self) -> None:
        """Lets a held download go on."""
        self._released.set()

    def sent(self, count: int) -> None:
        """Called by the file route after each chunk, with the bytes of this response sent so far."""
        with self._lock:
            hold = self._hold
            if hold is None or self.files < hold[0] or count < hold[1]:
                return
            self._hold = None
        self.held.set()
        self._released.wait(120)  # bounded: a test that forgets to release does not hang the server forever
