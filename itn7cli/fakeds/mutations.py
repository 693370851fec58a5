"""The state mutations of the fake DS: passer en instruction, accepter, refuser, classer sans suite.

Each follows DS's own rules (app/graphql/mutations/dossier_*.rb, base_mutation.rb, and the AASM state
machine of app/models/dossier.rb): a read-only token is refused before anything else, then the
dossier's state, then the instructeur's rights; every refusal is an `errors` entry of the payload
(errors as data), never a top-level error. Unless `disableNotification` is set, DS e-mails the
usager (app/models/concerns/dossier_state_concern.rb `after_*`): the fake counts those e-mails in
`notifications(dataset)` so tests can assert who would have been told what.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from .dataset import Dataset

READ_ONLY = "Le jeton utilisé est configuré seulement en lecture"
NO_ACCESS = "L’instructeur n’a pas les droits d’accès à ce dossier"
# config/locales/models/dossier/fr.yml, lower-cased by DossierHelper#dossier_display_state.
STATE_DISPLAY = {"en_construction": "en construction", "en_instruction": "en instruction", "accepte": "accepté",
                 "refuse": "refusé", "sans_suite": "classé sans suite"}


@dataclass(frozen=True)
class Notification:
    """One e-mail DS would have sent to the usager: which dossier, to whom, for which new state."""

    number: int
    email: str
    state: str


_SENT: WeakKeyDictionary[Dataset, list[Notification]] = WeakKeyDictionary()
_SENT_LOCK = threading.Lock()


def notifications(dataset: Dataset) -> list[Notification]:
    """The e-mails the state mutations sent on this dataset so far, oldest first (a copy)."""
    with _SENT_LOCK:
        return list(_SENT.get(dataset, []))


def _notify(dataset: Dataset, notification: Notification) -> None:
    with _SENT_LOCK:
        _SENT.setdefault(dataset, []).append(notification)


@dataclass(frozen=True)
class StateMutation:
    """A mutation's rule: the state it starts from (AASM `transitions from:`) and the one it leads to."""

    field: str
    source: str
    target: str


MUTATIONS = (
    StateMutation("dossierPasserEnInstruction", "en_construction", "en_instruction"),
    StateMutation("dossierAccepter", "en_instruction", "accepte"),
    StateMutation("dossierRefuser", "en_instruction", "refuse"),
    StateMutation("dossierClasserSansSuite", "en_instruction", "sans_suite"),
)


def resolver(rule: StateMutation, *, ctx_of: Callable[[Any], Any], visible: Callable[[Any, int], Any],
             decode: Callable[[str, str], int | None]) -> Callable[..., dict[str, Any]]:
    """The resolver of one state mutation, given the engine's request context, visibility and id helpers."""

    def resolve(_root: Any, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        ctx = ctx_of(info)
        ds: Dataset = ctx.dataset
        ctx.stats.add("mutations")

        def failed(message: str) -> dict[str, Any]:
            return {"dossier": None, "errors": [{"message": message}]}

        if not ctx.token.write:  # base_mutation.rb `ready?`
            return failed(READ_ONLY)
        number = decode(input["dossierId"], "Dossier") or 0
        with ds.lock:
            d = visible(ctx, number)  # `loads: Types::DossierType`: an unknown or hidden dossier is not found
            if d.state != rule.source:  # `authorized?`: the state first…
                return failed(f"Le dossier est déjà {STATE_DISPLAY[d.state]}")
            instructeur = decode(input["instructeurId"], "Instructeur")
            if instructeur is None or instructeur not in ds.groupe_instructeurs(number):  # …then the rights
                return failed(NO_ACCESS)
            motivation = input.get("motivation") if rule.target != "en_instruction" else None
            ds.set_state(number, rule.target, motivation)
            d.traitements[-1]["emailAgentTraitant"] = ds.instructeurs.get(instructeur)
            if not input.get("disableNotification"):
                _notify(ds, Notification(number, d.usager_email, rule.target))
            ctx.stats.add("mutations_applied")
            return {"dossier": ds.render(d), "errors": None}

    return resolve


__all__ = ["MUTATIONS", "Notification", "notifications", "resolver"]
