"""Deterministic attachment contents: generated in chunks from a seed, never held whole in memory."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
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
