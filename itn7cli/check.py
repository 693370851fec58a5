"""`itn7 check`: run the call's rules on the stored dossiers and keep the results in the database.

A dossier is re-checked only when it changed since its last check (synced again, modified,
restored), when the rule set, the configuration or the reading of its démarche's form changed,
or when the number of dossiers of its applicant changed (`limite_porteur` depends on every
dossier). `force=True` re-checks everything. A dossier the API cannot serialise is re-checked at
every run and shown `a_verifier`, never left out.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from . import labels
from . import refdata as refdata_mod
from .config import PARIS, Secret, Settings
from .errors import Itn7Error
from .queries import document
from .rules import (
    A_VERIFIER,
    ROLES,
    RULESET_VERSION,
    Context,
    Dossier,
    Finding,
    FormMap,
    evaluate,
    mappings_from_settings,
    resolve,
    session_for,
    worst,
)
from .rules.engine import UNREADABLE
from .rules.mapping import FormRevision, revisions_from_rows
from .rules.priority import priority
from .store import Database, ensure_synced, open_db, open_reader, parse_raw, store_path
from .store import checks as checks_store
from .store import forms as forms_store

BATCH = 200  # dossiers parsed and written per transaction: bounded memory (their raw JSON), few commits

__all__ = ["Judge", "Summary", "config_hash", "describe_roles", "ensure_synced", "form_maps", "named_champ_types",
           "results", "revision_news", "revision_news_at", "role_maps", "run", "siren_counts", "stale",
           "start_method", "stored_revisions", "workers"]


@dataclass
class Summary:
    """What a run did: how many dossiers were (re)checked out of how many."""

    checked: int = 0
    total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_session: Counter[int | None] = field(default_factory=Counter)


def config_hash(settings: Settings, ref_meta: list[dict[str, Any]]) -> str:
    """A fingerprint of everything besides the dossier that changes verdicts: call settings, mapping, refdata."""
    relevant = {
        "sessions": [s.isoformat() for s in settings.sessions], "plafond_commune": settings.plafond_commune,
        "plafond_epci_statut": settings.plafond_epci_statut, "limite_porteur": settings.limite_porteur,
        "taille": [settings.taille_petite, settings.taille_grande], "fin": settings.fin_projet_max.isoformat(),
        "mapping": settings.mapping, "refdata": [(m["name"], m["imported_at"], m["rows"]) for m in ref_meta],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def siren_counts(db: Database) -> dict[str, int]:
    """Live dossiers per applicant SIREN, across both démarches."""
    return checks_store.siren_counts(db)


# ---------------------------------------------------------------- forms


def _revisions(db: Database, demarche_number: int) -> list[FormRevision]:
    return revisions_from_rows(forms_store.revisions(db, demarche_number))


def form_maps(db: Database, settings: Settings) -> dict[int, tuple[str, FormMap]]:
    """Démarche number → (key, every role resolved against all the démarche's stored revisions)."""
    mappings = mappings_from_settings(settings.mapping)
    return {m["number"]: (m["key"], resolve(mappings.get(m["key"]) or mappings["general"],
                                            _revisions(db, m["number"])))
            for m in forms_store.demarches(db)}


def role_maps(db: Database, settings: Settings) -> dict[str, FormMap]:
    """Démarche key → its resolved form: pass it as the mapping of `rules.Dossier` to follow renamed champs."""
    return {key: form for key, form in form_maps(db, settings).values()}


def form_hash(form: FormMap) -> str:
    """A fingerprint of how a form is read: each role's champ and, per revision, why it cannot be read."""
    read = {name: [t.descriptor_id, t.problem, sorted(t.gaps.items())] for name, t in form.targets.items()}
    return hashlib.sha256(json.dumps(read, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- run


def _to_check(db: Database, chash: str, fhashes: dict[int, str], counts: dict[str, int],
              force: bool) -> list[int]:
    if force:
        return checks_store.live_numbers(db)
    numbers = []
    for row in checks_store.previous_checks(db):
        siren = row["siren"]
        if (row["checked"] is None or row["ruleset_version"] != RULESET_VERSION
                or row["config_hash"] != chash or row["form_hash"] != fhashes.get(row["demarche_number"])
                or row["modified"] != row["dossier_modified"] or row["synced"] != row["dossier_synced"]
                or (siren is not None and counts.get(siren, 0) != row["siren_count"])):
            numbers.append(row["number"])
    return numbers


def _batches(numbers: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(numbers), BATCH):
        yield numbers[start:start + BATCH]


Verdicts = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]  # (checks, findings) of one batch, as stored

_encode_priority = msgspec.json.Encoder().encode  # compact UTF-8, 4 times faster than json.dumps


def unreadable_finding(since: str | None) -> Finding:
    """The finding of a dossier the API could not serialise."""
    day = f" depuis le {datetime.fromisoformat(since).astimezone(PARIS):%d/%m/%Y}" if since else ""
    return Finding(UNREADABLE, A_VERIFIER, f"Dossier illisible dans l'API de Démarche Numérique{day} : "
                   "il est relu à chaque synchronisation.")


@dataclass(frozen=True)
class Judge:
    """What checking a dossier reads besides the dossier, made once per run: its démarche's form, the
    context of the rules, the fingerprints the results are stored with. It holds no token (see `run`),
    and a worker process gets its own copy."""

    forms: dict[int, tuple[str, FormMap]]
    fhashes: dict[int, str]
    context: Context
    chash: str
    unreadable: dict[int, str]

    def batch(self, rows: Iterable[dict[str, Any]], stamp: str) -> Verdicts:
        """The checks (rows of CHECK_COLUMNS) and findings (of FINDING_COLUMNS) of `rows` (from
        `dossiers_to_check`), checked at `stamp`."""
        checks, findings = [], []
        settings, counts = self.context.settings, self.context.siren_counts
        for row in rows:
            number, siren, demarche_number = row["number"], row["siren"], row["demarche_number"]
            form = self.forms[demarche_number][1] if demarche_number in self.forms else None
            found: list[Finding] = []
            prio: dict[str, Any] = {"score": None, "notes": []}
            if row["raw"] is not None and form is not None:
                # A démarche stored without its revisions (never in DS): each dossier is read by its own labels.
                dossier = Dossier(parse_raw(row["raw"]), row["key"], form if form.revisions else form.role_map)
                found = evaluate(dossier, self.context)
                prio = priority(dossier, self.context)
                session = session_for(dossier.date_depot, settings.sessions)
            else:
                session = session_for(row["date_depot"], settings.sessions)
            if number in self.unreadable:
                found.append(unreadable_finding(self.unreadable[number]))
            checks.append((number, demarche_number, session, worst(found), _encode_priority(prio).decode(),
                           prio["score"], RULESET_VERSION, self.chash, self.fhashes.get(demarche_number),
                           row["modified"], row["synced"], siren, counts.get(siren or "", 0), stamp))
            findings += [(number, i, f.rule, f.status, f.message) for i, f in enumerate(found)]
        return checks, findings


def run(db: Database, settings: Settings, *, force: bool = False) -> Summary:
    """Checks every live dossier that needs it, and every unreadable one; stores the results.

    Each batch is one transaction: an interrupted run keeps the batches it saved, and the next run
    checks the rest. Many dossiers are checked by worker processes (see `workers`)."""
    ensure_synced(db)
    forms = form_maps(db, settings)
    counts = checks_store.siren_counts(db)
    judge = Judge(forms=forms, fhashes={number: form_hash(form) for number, (_, form) in forms.items()},
                  # The rules never call the API: the token stays out of what a worker process receives.
                  context=Context(settings=replace(settings, token=Secret("")), refdata=refdata_mod.load(db),
                                  siren_counts=counts),
                  chash=config_hash(settings, refdata_mod.meta(db)), unreadable=checks_store.unreadable(db))
    checks_store.forget_deleted(db)
    numbers = sorted(set(_to_check(db, judge.chash, judge.fhashes, counts, force)) | set(judge.unreadable))
    for batch, (checks, findings) in _judged(db, judge, numbers):
        checks_store.save_results(db, batch, checks, findings)
    summary = Summary(checked=len(numbers))
    for session, status, count in checks_store.counts(db):
        summary.total += count
        summary.by_status[status] += count
        summary.by_session[session] += count
    return summary


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _judged(db: Database, judge: Judge, numbers: list[int]) -> Iterator[tuple[list[int], Verdicts]]:
    """(batch, its verdicts) for every batch of `numbers`, in order: judged here, or by worker processes
    while this one saves the previous batches."""
    count = workers(len(numbers))
    path = store_path(db) if count > 1 else None
    if path is None or not path.name:  # a database in memory has no file to share
        for batch in _batches(numbers):
            yield batch, judge.batch(checks_store.dossiers_to_check(db, batch), _stamp())
        return
    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context(start_method()),
                               initializer=_start_worker, initargs=(judge, path))
    try:
        pending: deque[tuple[list[int], Future[Verdicts]]] = deque()
        for batch in _batches(numbers):
            pending.append((batch, pool.submit(_judge_in_worker, batch, _stamp())))
            if len(pending) > 2 * count:  # a few batches ahead of each worker, no more: flat memory
                done, result = pending.popleft()
                yield done, result.result()
        while pending:
            done, result = pending.popleft()
            yield done, result.result()
    except BrokenProcessPool:
        raise Itn7Error("Un processus de contrôle s'est arrêté brutalement (mémoire insuffisante ?) : les "
                         "dossiers déjà contrôlés restent enregistrés, relancez « itn7 check ».") from None
    finally:  # on Ctrl-C, the batches not started are dropped: the workers finish theirs, and stop
        pool.shutdown(wait=True, cancel_futures=True)


PARALLEL_FROM = 2_000  # dossiers to check: below, starting processes costs more than it saves
MAX_WORKERS = 4
# fork starts a worker in milliseconds, with the parent's memory shared until written; elsewhere
# (Windows, macOS) a worker is a fresh interpreter that imports itn7 and receives the Judge pickled.
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux" else "spawn"


def start_method() -> str:
    """START_METHOD, but spawn while another thread runs: a fork copies only the forking thread, and
    whatever lock another one holds stays held in the child (Python 3.12 warns of it)."""
    return START_METHOD if START_METHOD != "fork" or threading.active_count() == 1 else "spawn"


def workers(dossiers: int) -> int:
    """Worker processes for checking `dossiers` dossiers: one per usable processor, up to MAX_WORKERS,
    and none (checked in this process) for a small run or a single processor."""
    if dossiers < PARALLEL_FROM:
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(usable, MAX_WORKERS))


_WORKER: tuple[Judge, Database] | None = None  # a worker process's judge, and its own read-only connection


def _start_worker(judge: Judge, path: Path) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops the workers
    # A connection of the parent is never used across fork: each worker opens its own, to read only.
    _WORKER = judge, open_reader(path)


def _judge_in_worker(numbers: list[int], stamp: str) -> Verdicts:
    """The verdicts of dossiers `numbers`, read by the worker itself: their JSON never goes through a pipe."""
    assert _WORKER is not None, "a worker starts with its judge"
    judge, db = _WORKER
    return judge.batch(checks_store.dossiers_to_check(db, numbers), stamp)


def results(db: Database, session: int | None = None, demarche: str | None = None,
            status: str | None = None) -> list[dict[str, Any]]:
    """Stored results of non-deleted dossiers, as the JSON of `itn7 check --format json`, by dossier number."""
    ensure_synced(db)
    return [{"demarche": r["demarche"], "number": r["number"], "session": r["session"], "status": r["status"],
             "findings": r["findings"], "priority": json.loads(r["priority"] or "{}")}
            for r in checks_store.results(db, session, demarche, status)]


def stale(db: Database) -> bool:
    """True when stored results no longer match the synced dossiers: a dossier new, changed, restored or
    deleted since its check, or results from another rule set. (Settings changes need `run` to see.)"""
    ensure_synced(db)
    return checks_store.stale(db, RULESET_VERSION)


# ---------------------------------------------------------------- forms as people read them


@dataclass
class RoleView:
    """One role of one démarche in `itn7 champs`."""

    role: str
    label: str  # what was looked for
    descriptor_id: str | None
    problem: str | None
    labels: list[tuple[str, str]]  # (revision day or id, label there), one entry per distinct label
    missing: list[str]  # revisions (day or id) where the champ is missing
    retyped: list[str]  # revisions where it has another type

    @property
    def toml_line(self) -> str | None:
        """The itn7.toml line that pins this role to its champ's id."""
        if self.descriptor_id is None:
            return None
        return f'{self.role} = "{self.descriptor_id}"  # {self.labels[-1][1] if self.labels else self.label}'


@dataclass
class FormView:
    """A démarche's form in `itn7 champs`: its revisions, roles, and champs of types the query does not name."""

    key: str
    number: int
    revisions: list[FormRevision]
    roles: list[RoleView]
    unnamed: list[tuple[str, str, str]]  # (descriptor id, label, type) stored without a typed value


def _when(revision: FormRevision) -> str:
    return revision.day or revision.id


def named_champ_types() -> set[str]:
    """Champ types the dossier query names (inline fragments): any other arrives with its text value only."""
    named: set[str] = set()

    def walk(node: Any) -> None:
        condition = getattr(node, "type_condition", None)
        if condition is not None:
            named.add(condition.name.value)
        selection_set = getattr(node, "selection_set", None)
        for child in getattr(selection_set, "selections", None) or ():
            walk(child)

    for definition in document("getDossiers").definitions:
        walk(definition)
    return named


def describe_roles(db: Database, settings: Settings) -> list[FormView]:
    """Per démarche: each role's champ, its label in each revision, where it is missing or retyped."""
    ensure_synced(db)
    named = named_champ_types()
    views = []
    for number, (key, form) in form_maps(db, settings).items():
        revisions = list(form.revisions)
        roles = []
        for role in ROLES:
            target = form.targets.get(role.name)
            if target is None:
                continue
            seen: list[tuple[str, str]] = []
            for revision in revisions:
                label = target.labels.get(revision.id)
                if label is not None and (not seen or seen[-1][1] != label):
                    seen.append((_when(revision), label))
            roles.append(RoleView(
                role.name, form.role_map.targets[role.name], target.descriptor_id, target.problem, seen,
                [_when(r) for r in revisions if target.descriptor_id and target.labels.get(r.id) is None],
                [_when(r) for r in revisions if r.id in target.gaps and target.labels.get(r.id) is not None]))
        last_label = {d.id: d.label or "" for r in revisions for d in r.descriptors}
        unnamed = sorted((descriptor_id, last_label.get(descriptor_id, ""), type_)
                         for descriptor_id, types in forms_store.champ_types(db, number).items()
                         for type_ in types if type_ not in named)
        views.append(FormView(key, number, revisions, roles, unnamed))
    return views


def revision_news(db: Database, settings: Settings, before: set[str]) -> list[str]:
    """One French sentence per revision the last sync brought (stored now, not in `before`) that follows
    another: the mapped champs it renamed, retyped or removed."""
    lines = []
    for _number, (key, form) in form_maps(db, settings).items():
        revisions = list(form.revisions)
        for previous, revision in itertools.pairwise(revisions):
            if revision.id in before:
                continue
            renamed, retyped, removed = [], [], []
            for target in form.targets.values():
                old = previous.by_id.get(target.descriptor_id or "")
                new = revision.by_id.get(target.descriptor_id or "")
                if old is None:
                    continue
                if new is None:
                    removed.append(old.label or old.id)
                elif new.type != old.type:
                    unreadable = ", illisible pour les dossiers de cette révision" if revision.id in target.gaps else ""
                    retyped.append(f"{new.label} ({old.type_name} → {new.type_name}{unreadable})")
                elif new.label != old.label:
                    renamed.append(new.label or new.id)
            parts = []
            if renamed:
                parts.append(f"{len(renamed)} libellé{'s' if len(renamed) > 1 else ''} modifié"
                             f"{'s' if len(renamed) > 1 else ''}, suivi{'s' if len(renamed) > 1 else ''} "
                             "par identifiant")
            if retyped:
                parts.append(f"{len(retyped)} champ{'s' if len(retyped) > 1 else ''} de type modifié : "
                             f"{', '.join(retyped)}")
            if removed:
                parts.append(f"{len(removed)} champ{'s' if len(removed) > 1 else ''} supprimé"
                             f"{'s' if len(removed) > 1 else ''} : {', '.join(removed)}")
            when = f" du {revision.day}" if revision.day else ""
            detail = " ; ".join(parts) or "aucun champ lu par les contrôles n'a changé"
            lines.append(f"nouvelle révision de la {labels.demarche(key).lower()}{when} : {detail}")
    return lines


def stored_revisions(path: Path) -> set[str]:
    """The revision ids a database holds, before a sync; none when it does not exist (nor is created)."""
    if not Path(path).exists():
        return set()
    db = open_db(path)
    try:
        return forms_store.revision_ids(db)
    finally:
        db.close()


def revision_news_at(settings: Settings, before: set[str]) -> list[str]:
    """`revision_news` of the settings' database, after a sync."""
    db = open_db(settings.db_path)
    try:
        return revision_news(db, settings, before)
    finally:
        db.close()
