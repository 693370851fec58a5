"""Personal data at rest: what to erase and when, and erasing it (rows, then attachments on disk).

What DS deleted, itn7 forgets: a dossier deleted upstream (`supprime`, `disparu`) keeps only a tombstone
once the grace period (`[donnees] delai_effacement_jours`) has run from its deletion date. A processed
dossier past its démarche's retention (`dureeConservationDossiers` months after its processing, or DS's
own `dateExpiration` if later) is treated the same way, from its expiry date. `masque` dossiers, still
restorable in DS, are kept until DS purges them. An erasure on request is immediate, whatever the state.
Reads and writes only the store and the attachments folder, never the network.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock, Timeout

from . import private
from .config import Settings
from .errors import StoreError
from .store import Database, open_db
from .store import purge as store_purge

# Why a dossier is erased, as the dry run names it.
REASONS = {
    "supprime": "supprimé dans Démarche Numérique",
    "disparu": "absent de Démarche Numérique",
    "expire": "durée de conservation échue",
    "conservation": "durée de conservation échue",
    "demande": "effacement demandé",
}
RETENTION_REASON = "duree_conservation_echue"
REQUEST_REASON = "demande_effacement"


@dataclass(frozen=True)
class Scheduled:
    """A dossier whose personal data will be erased: why, since when, and from when."""

    number: int
    demarche_key: str | None
    reason: str  # a key of REASONS
    since: datetime  # deletion, expiry or request date
    due: datetime  # since + the grace period (requests: at once)
    mark: tuple[str, str, str] | None = None  # deletion state to set when DS still lists the dossier

    def is_due(self, moment: datetime) -> bool:
        return self.due <= moment


@dataclass
class Report:
    """What a purge did (or, dry, would do)."""

    erased: list[Scheduled] = field(default_factory=list)
    later: list[Scheduled] = field(default_factory=list)
    files: int = 0
    applied: bool = False


def parse_moment(text: str | None) -> datetime | None:
    """An ISO 8601 date or date-time from DS or the store, as an aware datetime (UTC when none is given)."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole months, the day clamped to the month's end (as DS's `n.months` does)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def expiry(row: dict[str, Any]) -> datetime | None:
    """When a processed dossier leaves DS's retention: the later of its processing plus the démarche's
    duration and DS's own `dateExpiration` (which includes extensions); None if neither is known."""
    processed = parse_moment(row["date_traitement"])
    months = row["duree_conservation_dossiers"]
    dates = [parse_moment(row["date_expiration"])]
    if processed is not None and months:
        dates.append(add_months(processed, months))
    known = [d for d in dates if d is not None]
    return max(known) if known else None


def _schedule_one(row: dict[str, Any], grace: timedelta, moment: datetime) -> Scheduled | None:
    key, number, state = row["demarche_key"], row["number"], row["deletion_state"]
    if row["requested_at"] is not None or state == store_purge.ERASED_ON_REQUEST:
        since = parse_moment(row["requested_at"]) or moment
        return Scheduled(number, key, "demande", since, since,
                         (store_purge.ERASED_ON_REQUEST, since.isoformat(timespec="seconds"), REQUEST_REASON))
    if state in (*store_purge.DELETED_UPSTREAM, store_purge.EXPIRED):
        since = parse_moment(row["deleted_at"]) or moment
        return Scheduled(number, key, state, since, since + grace)
    if state is None:
        ends = expiry(row)
        if ends is not None:
            mark = (store_purge.EXPIRED, ends.isoformat(timespec="seconds"), RETENTION_REASON)
            return Scheduled(number, key, "conservation", ends, ends + grace, mark)
    return None  # masque: still restorable in DS, kept until DS purges it


def schedule(db: Database, settings: Settings, moment: datetime | None = None) -> list[Scheduled]:
    """Every dossier holding personal data that a rule will erase, soonest first."""
    moment = moment or datetime.now(UTC)
    grace = timedelta(days=settings.delai_effacement_jours)
    items = [s for row in store_purge.candidates(db) if (s := _schedule_one(row, grace, moment)) is not None]
    return sorted(items, key=lambda s: (s.due, s.number))


def _remove(root: Path, relative: str) -> None:
    """Deletes one attachment (gone already is fine), then its folders left empty, up to `root`."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        return  # never a path outside the attachments folder
    target = root.joinpath(*parts)
    if not target.parent.resolve().is_relative_to(root.resolve()):
        return  # a folder replaced by a link to elsewhere: what it points at is not ours to delete
    target.unlink(missing_ok=True)
    folder = target.parent
    while folder != root:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): the folders above are not empty either
            return
        folder = folder.parent


def delete_pending_files(db: Database, root: Path) -> int:
    """Deletes the attachments queued by committed erasures; returns how many were handled."""
    paths = store_purge.pending_files(db)
    for path in paths:
        _remove(root, path)
        store_purge.file_deleted(db, path)
    return len(paths)


def run(db: Database, settings: Settings, *, apply: bool = False,
        moment: datetime | None = None) -> Report:
    """The purge: erases every dossier whose date has come (only lists them unless `apply`), one
    transaction each, deletes their attachments after each commit, then compacts the database."""
    moment = moment or datetime.now(UTC)
    items = schedule(db, settings, moment)
    report = Report(erased=[s for s in items if s.is_due(moment)], later=[s for s in items if not s.is_due(moment)],
                    applied=apply)
    if not apply:
        return report
    store_purge.secure_delete(db)
    report.files = delete_pending_files(db, settings.files_dir)  # left by a run that was killed
    for item in report.erased:
        store_purge.erase(db, item.number, mark=item.mark, requested=item.reason == "demande")
        report.files += delete_pending_files(db, settings.files_dir)
    if report.erased or report.files:
        store_purge.compact(db)
    return report


def erase_on_request(db: Database, settings: Settings, number: int) -> int:
    """Erases one dossier's personal data now, whatever its state, and keeps it erased if a sync brings
    it back; returns how many attachments were deleted. Raises StoreError for an unknown dossier."""
    if store_purge.dossier(db, number) is None:
        raise StoreError(f"Dossier n° {number} absent de la base locale : rien à effacer.")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    store_purge.secure_delete(db)
    store_purge.erase(db, number, mark=(store_purge.ERASED_ON_REQUEST, stamp, REQUEST_REASON), requested=True)
    files = delete_pending_files(db, settings.files_dir)
    store_purge.compact(db)
    return files


def describe(db: Database, number: int) -> dict[str, Any] | None:
    """{number, demarche_key, state, deletion_state, holds_data} of a stored dossier, or None."""
    return store_purge.dossier(db, number)


class SyncRunning(StoreError):
    """A sync holds the database: erasing now could race with its writes."""


@contextmanager
def sync_locks(settings: Settings) -> Iterator[None]:
    """Holds the locks `itn7 sync` and `itn7 sync --files` take on this database, or raises SyncRunning."""
    with ExitStack() as stack:
        for suffix in (".lock", ".files.lock"):
            path = Path(f"{settings.db_path}{suffix}")
            private.private_file(path)
            lock = FileLock(str(path), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                raise SyncRunning(f"Une synchronisation est en cours sur {settings.db_path} : "
                                  "relancez quand elle sera terminée.") from None
            stack.callback(lock.release)
        yield


def after_sync(settings: Settings) -> Report | None:
    """The purge at the end of `itn7 sync`, on its own connection; None if another command holds the database."""
    try:
        with sync_locks(settings):
            db = open_db(settings.db_path, must_exist=True)
            try:
                return run(db, settings, apply=True)
            finally:
                db.close()
    except SyncRunning:
        return None


__all__ = ["REASONS", "Report", "Scheduled", "SyncRunning", "add_months", "after_sync", "delete_pending_files",
           "describe", "erase_on_request", "expiry", "run", "schedule", "sync_locks"]
