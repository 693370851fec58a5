"""The fetching side of a sync: jobs on threads, at most `size` at once, and one queue to the writer.

Threads fetch, the calling thread writes: SQLite has one writer, the network many waits. A job
puts its pages on the queue and ends with one message marked `ended`; any failure is handed to
the writer, which stops everything.
"""

from __future__ import annotations

import ctypes
import functools
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api import Page
from .ranges import Stream


@dataclass
class Work:
    """A message from a fetching thread to the writer: a page, a page of deletions, or the job's end."""

    stream: Stream | None = None
    page: Page | None = None
    deletions: tuple[str, list[dict[str, Any]]] | None = None
    demarche: int = 0
    ended: bool = False
    error: BaseException | None = None


Job = Callable[["Pool"], None]

M_ARENA_MAX = -8  # glibc's mallopt parameters
M_MMAP_THRESHOLD = -3


@functools.cache
def tune_malloc() -> None:
    """Tunes glibc's malloc for the sync, once per process, before the fetching threads start:
    - at most two arenas: each thread would otherwise get its own, and keep the freed space of the
      megabyte-sized answers it read (about 16 MB of a 3 000-dossier sync's peak);
    - blocks of 256 kB and more always mapped on their own, so that freeing an answer gives its memory
      back at once: by default glibc raises that threshold to the size of the last such block freed,
      and later answers then land in the arenas, where they stay (10 MB of a 10 000-dossier sync's
      peak, bench/bench_sync.py (c)).
    The process's own symbols hold libc's: nothing to look for on disk, and nothing done where the C
    library has no `mallopt` (musl)."""
    if sys.platform == "linux" and (mallopt := getattr(ctypes.CDLL(None), "mallopt", None)) is not None:
        mallopt(M_ARENA_MAX, 2)
        mallopt(M_MMAP_THRESHOLD, 256 * 1024)


class Pool:
    """Fetch jobs on daemon threads, started in the order they were added as slots free up: a job's slot
    is free the moment it ends, before the writer has read its last results."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        tune_malloc()
        # Pages wait here for the one writer. Pages come in bursts (every slot's request answered at
        # once); a place for each job lets a fetching thread send its next request while the writer still
        # saves the burst, where a shallow queue kept it waiting, page in hand. On a fast server, where the
        # writer is the slower side, the queue stays full: a few more pages held (see tune_malloc).
        self.results: queue.Queue[Work] = queue.Queue(maxsize=self.size + 2)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: deque[Job] = deque()
        self._running = 0
        self._unread = 0  # jobs whose end the writer has not read yet

    def add(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
            self._unread += 1
            self._fill()

    def free(self) -> int:
        """Slots nobody runs or waits for."""
        with self._lock:
            return self.size - self._running - len(self._pending)

    def put(self, work: Work) -> bool:
        """Hands a result to the writer (waiting while the queue is full); False once the sync stops."""
        while not self.stop.is_set():
            try:
                self.results.put(work, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> Work | None:
        """The next result for the writer, None once every job has ended; a job's failure is raised here."""
        while self._unread:
            try:
                work = self.results.get(timeout=0.2)
            except queue.Empty:
                continue
            if work.error is not None:
                raise work.error
            if work.ended:
                self._unread -= 1
            return work
        return None

    def close(self) -> None:
        """Stops every job at its next page."""
        self.stop.set()

    def _fill(self) -> None:  # with the lock held
        while self._pending and self._running < self.size:
            threading.Thread(target=self._run, args=(self._pending.popleft(),), daemon=True).start()
            self._running += 1

    def _run(self, job: Job) -> None:
        try:
            job(self)
        except BaseException as exc:  # handed to the writer, which stops everything
            self.put(Work(error=exc, ended=True))
        finally:
            with self._lock:
                self._running -= 1
                self._fill()
