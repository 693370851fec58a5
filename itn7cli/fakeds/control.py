"""Run-time knobs of the fake server: tokens, injected faults and counters. All thread-safe."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

FAULT_KINDS = ("429", "502", "503", "timeout")


@dataclass(frozen=True)
class TokenSpec:
    """What a token may do: démarche numbers in scope (None = all) and write access."""

    write: bool = False
    scope: frozenset[int] | set[int] | None = None
    expired: bool = False
    forbidden_network: bool = False

    def covers(self, demarche_number: int) -> bool:
        """Whether the démarche is in the token's scope."""
        return self.scope is None or demarche_number in self.scope


class Faults:
    """Failures injected into GraphQL requests, switchable while the server runs.

    `fail_rate` draws one of `kinds` at random (seeded); `fail_next(n, kind)` forces the next n
    requests to fail; every GraphQL answer takes `latency` seconds at least; `corrupt(file_key)`
    makes a file download serve wrong bytes; `slow(number)` makes every read of a dossier's champs
    time out, as long as it is set; `retry_after` is when an injected 429's window ends (seconds).
    """

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.fail_rate = 0.0
        self.kinds: tuple[str, ...] = FAULT_KINDS
        self.latency = 0.0
        self.retry_after = 1
        self.expired_token = False
        self.forbidden_network = False
        self._queue: list[str] = []
        self._corrupt: set[str] = set()
        self._slow: set[int] = set()
        self._hold_after: int | None = None
        self._hold_operations: frozenset[str] | None = None
        self._answered = 0
        self._waiting = 0
        self._released = threading.Event()

    def hold_after(self, n: int, operations: Collection[str] | None = None) -> None:
        """Answer the next `n` GraphQL requests, then keep every later one waiting until `release()` (a
        server that stops answering: lets a test interrupt a client mid-run, without timing anything).
        With `operations`, only requests for those operations count and wait; the others are answered."""
        with self._lock:
            self._hold_after, self._answered = n, 0
            self._hold_operations = frozenset(operations) if operations is not None else None
            self._released.clear()

    def release(self) -> None:
        """Answer the held requests and every later one."""
        with self._lock:
            self._hold_after = None
        self._released.set()

    def wait_if_held(self, operation: str | None, timeout: float = 120.0) -> None:
        """Called by the server before answering a GraphQL request for `operation`."""
        with self._lock:
            if self._hold_after is None:
                return
            if self._hold_operations is not None and operation not in self._hold_operations:
                return
            self._answered += 1
            if self._answered <= self._hold_after:
                return
            self._waiting += 1
        self._released.wait(timeout)
        with self._lock:
            self._waiting -= 1

    def held(self) -> int:
        """How many requests are being kept waiting right now."""
        with self._lock:
            return self._waiting

    def slow(self, number: int, on: bool = True) -> None:
        """Every read of dossier `number` with its champs times out (partial data), until turned off."""
        with self._lock:
            (self._slow.add if on else self._slow.discard)(number)

    def slow_dossiers(self) -> set[int]:
        """The dossiers whose reads time out."""
        with self._lock:
            return set(self._slow)

    def fail_next(self, n: int, kind: str) -> None:
        """Make the next `n` GraphQL requests fail with `kind` ("429", "502", "503" or "timeout")."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._queue.extend([kind] * n)

    def reseed(self, seed: int) -> None:
        """Restart the random draws from `seed`."""
        with self._lock:
            self._rng = random.Random(seed)

    def corrupt(self, file_key: str, on: bool = True) -> None:
        """Serve wrong bytes (same size) for one file."""
        with self._lock:
            (self._corrupt.add if on else self._corrupt.discard)(file_key)

    def is_corrupt(self, file_key: str) -> bool:
        """Whether a file is set to be served corrupted."""
        with self._lock:
            return file_key in self._corrupt

    def draw(self) -> str | None:
        """The fault for this request, if any."""
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            if self.fail_rate > 0 and self.kinds and self._rng.random() < self.fail_rate:
                return self._rng.choice(self.kinds)
            return None

    def clear(self) -> None:
        """Back to no faults at all."""
        with self._lock:
            self._queue.clear()
            self._corrupt.clear()
            self._slow.clear()
            self.fail_rate = 0.0
            self.latency = 0.0
            self.expired_token = False
            self.forbidden_network = False


@dataclass
class Stats:
    """Request counters: total, per operation name, mutations, throttled (429) responses, files served,
    and GraphQL requests per (token, calendar minute) — see `per_minute`."""

    requests: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    mutations: int = 0
    mutations_applied: int = 0
    throttled: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    files_served: int = 0
    minutes: Counter[tuple[str, int]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Increment one integer counter."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def count(self, counter: str, key: str) -> None:
        """Increment a key of one Counter attribute (operations, faults)."""
        with self._lock:
            getattr(self, counter)[key] += 1

    def note_minute(self, authorization: str) -> None:
        """Count one GraphQL request of this Authorization header in the current calendar minute."""
        key = (_token_key(authorization), int(time.time()) // 60)
        with self._lock:
            self.minutes[key] += 1

    def per_minute(self, token: str) -> dict[int, int]:
        """Requests made with `token` (as a Bearer token), by calendar minute (epoch minute number)."""
        key = _token_key(f"Bearer {token}")
        with self._lock:
            return {minute: n for (k, minute), n in self.minutes.items() if k == key}

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.requests = self.mutations = self.mutations_applied = self.throttled = self.files_served = 0
            self.operations.clear()
            self.faults.clear()
            self.minutes.clear()


def _token_key(authorization: str) -> str:
    # The fake keeps no token in its counters, only a digest of the header.
    return hashlib.sha256(authorization.strip().encode()).hexdigest()[:16]


class Throttle:
    """DS's Rack::Attack throttle (config/initializers/rack_attack.rb): fixed windows aligned on the epoch,
    keyed on the Authorization header value, and every request counts, refused ones too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        """Counts a request; the epoch second the current window ends if it goes past `limit`, else None."""
        window = int(time.time()) // window_seconds
        with self._lock:
            start, count = self._windows.get(key, (window, 0))
            count = count + 1 if start == window else 1
            self._windows[key] = (window, count)
        return (window + 1) * window_seconds if count > limit else None
