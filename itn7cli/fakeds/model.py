"""What the fake DS holds: dossiers with their raw values and life (as DS app/models/dossier.rb changes
them), démarches, and the records purged dossiers leave."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .forms import Descriptor, Revision

if TYPE_CHECKING:
    from .applicants import Applicant

PARIS = ZoneInfo("Europe/Paris")
ONE_US = timedelta(microseconds=1)
STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")
CLOSING_EVENTS = {"accepte": "accepte", "refuse": "refuse", "sans_suite": "classe_sans_suite"}


def relay_id(kind: str, n: int) -> str:
    """A Relay-style opaque id: base64("<kind>-<n>")."""
    return base64.b64encode(f"{kind}-{n}".encode()).decode()


def paris(dt: datetime | None) -> str | None:
    """A timestamp rendered like the API: seconds, with the Paris offset."""
    return None if dt is None else dt.astimezone(PARIS).isoformat(timespec="seconds")


def at(text_value: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime."""
    return datetime.fromisoformat(text_value).astimezone(UTC)


def traitement(event: str, state: str, when: datetime, agent: str | None, motivation: str | None,
               number: int) -> dict[str, Any]:
    """One entry of a dossier's `traitements`, as the resolvers serve it."""
    return {"event": event, "state": state, "dateTraitement": paris(when), "emailAgentTraitant": agent,
            "motivation": motivation, "id": relay_id("Traitement", number)}


@dataclass
class Row:
    """One row of a repetition block."""

    row_id: int
    values: dict[int, Any]


@dataclass
class Dossier:
    """One dossier, with raw values; render.py builds its GraphQL view once per change (`_rendered`)."""

    db_id: int
    number: int
    key: str
    revision: Revision
    groupe: int
    state: str
    depose_at: datetime
    en_construction_at: datetime
    applicant: Applicant
    usager_email: str
    values: dict[int, Any]
    updated_at: datetime
    champs_updated_at: datetime
    annotations_updated_at: datetime
    en_instruction_at: datetime | None = None
    processed_at: datetime | None = None
    archived: bool = False
    motivation: str | None = None
    traitements: list[dict[str, Any]] = field(default_factory=list)
    champ_updated: dict[int, datetime] = field(default_factory=dict)
    hidden_by_administration_at: datetime | None = None
    hidden_by_user_at: datetime | None = None
    hidden_by_expired_at: datetime | None = None
    followers: list[int] = field(default_factory=list)
    bad_data: bool = False
    extra_champs: list[dict[str, Any]] = field(default_factory=list)
    uncommitted: tuple[int, Any, datetime] | None = None
    _rendered: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """Relay id of the dossier."""
        return relay_id("Dossier", self.number)

    @property
    def visible(self) -> bool:
        """Visible by the administration: not hidden, and not an en_construction dossier its usager deleted."""
        if self.hidden_by_administration_at or self.hidden_by_expired_at:
            return False
        return not (self.hidden_by_user_at and self.state == "en_construction")

    @property
    def pending_deletion_at(self) -> datetime | None:
        """When it entered pendingDeletedDossiers, or None if it is not there."""
        if self.hidden_by_administration_at:
            return self.hidden_by_administration_at
        if self.hidden_by_user_at and self.state == "en_construction":
            return self.hidden_by_user_at
        return None

    def descriptor(self, id_or_label: str | int) -> Descriptor:
        """A champ or annotation of its revision, by descriptor id, label or stable id."""
        for desc in self.revision.all_descriptors().values():
            if id_or_label in (desc.id, desc.label, desc.stable_id):
                return desc
        raise KeyError(f"no champ {id_or_label!r} in dossier {self.number}")

    def touch(self) -> datetime:
        """Moves updated_at to now (never backwards) and returns it."""
        self.updated_at = max(datetime.now(UTC), self.updated_at + ONE_US)
        return self.updated_at

    def edit(self, desc: Descriptor, value: Any) -> None:
        """A new value of a top-level champ or annotation, saved now."""
        self.values[desc.stable_id] = value
        now = self.champ_updated[desc.stable_id] = self.touch()
        if desc.stable_id % 1000 >= 900:
            self.annotations_updated_at = now
        else:
            self.champs_updated_at = now

    def move_to(self, state: str, motivation: str | None = None) -> None:
        """The instructeur's action leading to `state`, recorded as a traitement."""
        if state not in STATES:
            raise ValueError(state)
        now, previous = self.touch(), self.state
        self.state = state
        event = {
            "en_construction": "repasse_en_construction",
            "en_instruction": "passe_en_instruction" if previous == "en_construction" else "repasse_en_instruction",
        }.get(state) or CLOSING_EVENTS[state]
        if state == "en_construction":
            self.en_construction_at = now
        elif state == "en_instruction":
            self.en_instruction_at = now
            self.processed_at = None
        else:
            self.processed_at = now
            self.motivation = motivation
        self.traitements.append(traitement(event, state, now, None, motivation,
                                           self.db_id * 10 + len(self.traitements)))

    def force_state(self, state: str) -> None:
        """Put back in `state` without a traitement (back to en_construction drops every later one)."""
        self.state = state
        if state == "en_construction":
            self.en_instruction_at = self.processed_at = None
            self.motivation = None
            self.traitements = self.traitements[:1]

    def hide_at(self, by: str, when: datetime) -> None:
        """Hidden by the "administration", its "usager", or "expired" retention, at `when`."""
        if by == "administration":
            self.hidden_by_administration_at = when
        elif by == "usager":
            self.hidden_by_user_at = when
        elif by == "expired":
            self.hidden_by_expired_at = when
        else:
            raise ValueError(by)
        self.updated_at = max(when, self.updated_at + ONE_US)


@dataclass
class DeletedRecord:
    """A purged dossier (the deleted_dossiers table)."""

    db_id: int
    number: int
    key: str
    state: str
    reason: str
    deleted_at: datetime

    @classmethod
    def of(cls, d: Dossier, when: datetime) -> DeletedRecord:
        """What purging `d` at `when` leaves; a dossier its usager deleted is backdated, like the real server."""
        if d.hidden_by_user_at and d.state == "en_construction" and not d.hidden_by_administration_at:
            reason, deleted_at = "user_request", d.hidden_by_user_at
        elif d.hidden_by_expired_at:
            reason, deleted_at = "expired", when
        else:
            reason, deleted_at = "instructeur_request", when
        return cls(d.db_id, d.number, d.key, d.state, reason, deleted_at)

    def to_graphql(self) -> dict[str, Any]:
        """The DeletedDossier object."""
        return {
            "id": relay_id("DeletedDossier", self.db_id),
            "number": self.number,
            "state": self.state,
            "reason": self.reason,
            "dateSupression": paris(self.deleted_at),
        }


@dataclass
class Demarche:
    """A démarche with its revisions and groupes instructeurs."""

    key: str
    number: int
    title: str
    revisions: list[Revision]
    groupes: list[dict[str, Any]]
    created_at: datetime
    # Retention in months. DS caps it at 60 (app/services/expired.rb MAX_DOSSIER_RENTENTION_IN_MONTH), but
    # this data set stays in 2021 while the clock moves on and never expires a dossier as DS would: a longer
    # default keeps the dossiers it shows within their retention; tests set a short one to see expiry.
    duree_conservation_dossiers: int = 120

    @property
    def id(self) -> str:
        """Relay id of the démarche."""
        return relay_id("Procedure", self.number)


__all__ = ["ONE_US", "PARIS", "STATES", "DeletedRecord", "Demarche", "Dossier", "Row", "at", "paris", "relay_id",
           "traitement"]
