"""`itn7 decisions apply`: the recorded decisions sent to Démarche Numérique, one dossier at a time.

`plan` reads the store only (no network, no token): per decision, the mutations DS needs, or why none
is needed or possible. `apply` re-reads each dossier's state just before acting on it, so a dossier
edited or decided in DS since the export is reported and left alone; every mutation sent is logged
with DS's answer. A second run finds every dossier already decided and sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import labels
from ..annotate import READ_ONLY_MARK, annotation_target, client_for, resolve_instructeur
from ..api import DSClient, NotFoundError
from ..config import Settings
from ..errors import AuthError
from ..rules.mapping import RoleMap, mappings_from_settings
from ..store import Database
from ..store import annotations as annotation_store
from ..store import decisions as decision_store
from .labels import DECISION_LABELS, TARGET_STATES

# Operation (queries/*.graphql) → (payload field, what it does, in French).
OPERATIONS = {
    "passerEnInstruction": ("dossierPasserEnInstruction", "passer en instruction"),
    "accepter": ("dossierAccepter", "accepter"),
    "refuser": ("dossierRefuser", "refuser"),
    "classerSansSuite": ("dossierClasserSansSuite", "classer sans suite"),
}
FINAL = {"accepte": "accepter", "refuse": "refuser", "sans_suite": "classerSansSuite"}
CLOSED = ("accepte", "refuse", "sans_suite")

TO_DO, DONE, NOTHING, BLOCKED = "a_faire", "deja_fait", "rien", "impossible"

# The private annotations the decision also goes to, when the form has them (roles of rules/mapping.py),
# and the AnnotationValueInput key each descriptor type takes (DS dossier_modifier_annotations.rb).
ANNOTATION_ROLES = ("decision_comite", "montant_attribue")
VALUE_KEYS = {"TextChampDescriptor": "text", "TextareaChampDescriptor": "textarea",
              "DropDownListChampDescriptor": "dropDownList", "DecimalNumberChampDescriptor": "decimalNumber",
              "IntegerNumberChampDescriptor": "integerNumber"}


@dataclass(frozen=True)
class AnnotationWrite:
    """One private annotation to write: its champ id and label, the input key and the value."""

    id: str
    label: str
    key: str
    value: Any


@dataclass
class Planned:
    """What `apply` would do for one decision."""

    number: int
    dossier_id: str
    demarche: str
    session: int
    decision: str
    amount: float | None
    motivation: str | None
    state: str  # what DS holds as far as the store knows
    expected_modified: str | None  # DS's last change the decision was taken on (or our last mutation's)
    status: str = TO_DO
    reason: str = ""
    steps: list[str] = field(default_factory=list)
    groupe_id: str | None = None
    annotations: list[AnnotationWrite] = field(default_factory=list)

    @property
    def label(self) -> str:
        return DECISION_LABELS[self.decision]

    def describe(self) -> str:
        """The plan in French: the mutations in order, or why there are none."""
        if self.status == TO_DO:
            return " puis ".join([*(OPERATIONS[s][1] for s in self.steps),
                                  *(f"annoter « {a.label} »" for a in self.annotations)])
        return self.reason


@dataclass
class Outcome:
    """What `apply` did for one dossier: "envoye", "deja_fait" or "erreur", with a French message."""

    planned: Planned
    result: str
    message: str


def steps_for(state: str, decision: str, motivation: str | None,
              current_motivation: str | None) -> tuple[str, str, list[str]]:
    """(status, reason, mutations) taking a dossier from `state` to what `decision` means, DS's rules:
    a decision is taken on a dossier en instruction, so one en construction is first passed en instruction."""
    target = TARGET_STATES.get(decision)
    if target is None:
        return NOTHING, "ajourné : rien n'est envoyé à Démarche Numérique", []
    if state == target:
        if (current_motivation or "") == (motivation or ""):
            return DONE, f"déjà {labels.STATES[target].lower()} avec cette motivation", []
        return BLOCKED, (f"déjà {labels.STATES[target].lower()}, avec une autre motivation : à corriger dans "
                         "Démarche Numérique"), []
    if state in CLOSED:
        return BLOCKED, (f"déjà {labels.STATES[state].lower()} dans Démarche Numérique : repassez-le en instruction "
                         "dans Démarche Numérique si le comité change la décision"), []
    if state == "en_construction":
        return TO_DO, "", ["passerEnInstruction", FINAL[target]]
    if state == "en_instruction":
        return TO_DO, "", [FINAL[target]]
    return BLOCKED, f"état « {state} » inattendu", []


def _same(current: Any, value: Any) -> bool:
    if current is None:
        return False
    try:
        return float(current) == float(value)
    except (TypeError, ValueError):
        return str(current).strip() == str(value).strip()


def annotation_writes(mapping: RoleMap, champs: list[dict[str, Any]], descriptors: list[dict[str, Any]],
                      decision: str, amount: float | None, written: dict[str, str]) -> list[AnnotationWrite]:
    """The decision and amount annotations the form has and that do not hold them yet (what DS showed at the
    last sync, or what itn7 wrote since: `written` maps an annotation id to it)."""
    values: dict[str, Any] = {"decision_comite": DECISION_LABELS[decision],
              "montant_attribue": amount if decision == "retenu" else None}
    writes = []
    for role in ANNOTATION_ROLES:
        value = values[role]
        champ, descriptor = annotation_target(mapping, champs, descriptors, role)
        target = champ or descriptor
        key = VALUE_KEYS.get((descriptor or {}).get("type") or "")
        if value is None or target is None or key is None:
            continue  # not in this form, or of a type a decision cannot go into: nothing to write
        if key == "integerNumber":
            value = round(value)
        elif key in ("text", "textarea") and role == "montant_attribue":
            value = f"{value:.2f}"
        current = written.get(target["id"], champ["value"] if champ else None)
        if not _same(current, value):
            writes.append(AnnotationWrite(target["id"], target["label"], key, value))
    return writes


def plan(db: Database, session: int | None = None, settings: Settings | None = None) -> list[Planned]:
    """Per recorded decision, what would be sent to DS. Reads the store only."""
    mappings = mappings_from_settings(settings.mapping if settings else {})
    champs, descriptors = annotation_store.annotation_champs(db), annotation_store.annotation_descriptors(db)
    written = annotation_store.last_written(db)
    planned = []
    for row in decision_store.to_apply(db, session):
        expected = row["ds_modified"] if row["applied_at"] else row["exported_modified"]
        item = Planned(row["number"], row["dossier_id"], row["key"] or "", row["session"], row["decision"],
                       row["amount"], row["motivation"], row["state"] or "", expected, groupe_id=row["groupe_id"])
        if row["deleted"]:
            item.status, item.reason = BLOCKED, "dossier supprimé dans Démarche Numérique"
            planned.append(item)
            continue
        item.status, item.reason, item.steps = steps_for(item.state, item.decision, item.motivation,
                                                          row["motivation_ds"])
        mine = {annotation: value for (number, annotation), (value, when) in written.items()
                if number == item.number and when >= (row["synced_at"] or "")}
        item.annotations = annotation_writes(mappings.get(item.demarche) or mappings["general"],
                                             champs.get(item.number, []), descriptors.get(row["revision_id"], []),
                                             item.decision, item.amount, mine)
        if item.annotations and item.status in (DONE, NOTHING):
            item.status = TO_DO  # only annotations to write: no state change, nobody notified
        planned.append(item)
    return planned


def outside_groupes(db: Database, instructeur_id: str, planned: list[Planned]) -> int:
    """How many dossiers to act on are in a groupe the instructeur is not in (DS would refuse them)."""
    member = annotation_store.groupes_of(db, instructeur_id)
    return sum(1 for p in planned if p.status == TO_DO and p.groupe_id not in member)


def notified(planned: list[Planned]) -> int:
    """How many applicants DS would e-mail (each dossier with a state to change; annotations e-mail nobody)."""
    return sum(1 for p in planned if p.status == TO_DO and p.steps)


# ---------------------------------------------------------------- apply


def _variables(item: Planned, operation: str, instructeur_id: str, silent: bool) -> dict[str, Any]:
    given: dict[str, Any] = {"dossierId": item.dossier_id, "instructeurId": instructeur_id,
                             "disableNotification": silent}
    if operation != "passerEnInstruction":
        given["motivation"] = item.motivation or ""
    return {"input": given}


def _send(db: Database, client: DSClient, item: Planned, operation: str, instructeur_id: str,
          silent: bool) -> str | None:
    """Sends one mutation, logs it with DS's answer; returns DS's error messages, or None."""
    variables = _variables(item, operation, instructeur_id, silent)
    data = client.execute(operation, variables)
    payload = data.get(OPERATIONS[operation][0]) or {}
    errors = [str(e.get("message", "")) for e in payload.get("errors") or [] if isinstance(e, dict)]
    decision_store.log_mutation(db, item.number, operation, variables, payload, errors)
    if not errors:
        return None
    return "; ".join(errors) or "erreur sans message"


def _read_state(client: DSClient, number: int) -> dict[str, Any]:
    dossier: dict[str, Any] = client.execute("dossierEtat", {"number": number}).get("dossier") or {}
    return dossier


def apply_one(db: Database, client: DSClient, item: Planned, instructeur_id: str,
              silent: bool) -> Outcome:
    """Re-reads the dossier, then sends what its decision needs; errors come back as an Outcome."""
    try:
        live = _read_state(client, item.number)
    except NotFoundError:
        return Outcome(item, "erreur", "dossier introuvable sur Démarche Numérique (supprimé depuis la "
                                       "dernière synchronisation ?)")
    status, reason, steps = steps_for(live.get("state") or "", item.decision, item.motivation, live.get("motivation"))
    if status == DONE:
        decision_store.note_ds_state(db, item.number, live)
    if status in (DONE, NOTHING) and not item.annotations:
        return Outcome(item, "deja_fait", reason)
    if status not in (TO_DO, DONE, NOTHING):
        return Outcome(item, "erreur", reason)
    if steps and item.expected_modified and live.get("dateDerniereModification") != item.expected_modified:
        return Outcome(item, "erreur", "modifié dans Démarche Numérique depuis l'export du classeur : relisez-le, "
                                       "puis synchronisez, exportez et importez à nouveau sa décision")
    for operation in steps:
        error = _send(db, client, item, operation, instructeur_id, silent)
        if error is not None and READ_ONLY_MARK in error:
            raise AuthError(f"Le jeton d'API est en lecture seule (« {error} ») : aucune autre décision n'est "
                            "envoyée. Mettez dans DS_API_TOKEN un jeton avec accès en écriture.")
        if error is not None and _reached(db, client, item):
            break  # a retried request DS had already applied (« Le dossier est déjà accepté »): done
        if error is not None:
            return Outcome(item, "erreur", f"{OPERATIONS[operation][1]} refusé par Démarche Numérique : « {error} »")
    done = [OPERATIONS[s][1] for s in steps]
    if item.annotations:
        error = _annotate(db, client, item, instructeur_id)
        if error is not None:
            return Outcome(item, "erreur", " puis ".join([*done, f"annotations refusées par Démarche Numérique : "
                                                                 f"« {error} »"]))
        done += [f"annoter « {a.label} »" for a in item.annotations]
    return Outcome(item, "envoye", " puis ".join(done))


def _annotate(db: Database, client: DSClient, item: Planned, instructeur_id: str) -> str | None:
    """Writes the decision's annotations in one mutation, logged; returns DS's error messages, or None."""
    variables = {"input": {"dossierId": item.dossier_id, "instructeurId": instructeur_id,
                           "annotations": [{"id": a.id, "value": {a.key: a.value}} for a in item.annotations]}}
    payload = client.execute("modifierAnnotations", variables).get("dossierModifierAnnotations") or {}
    errors = [str(e.get("message", "")) for e in payload.get("errors") or [] if isinstance(e, dict)]
    decision_store.log_mutation(db, item.number, "modifierAnnotations", variables, payload, errors)
    if errors:
        if READ_ONLY_MARK in "; ".join(errors):
            raise AuthError("Le jeton d'API est en lecture seule : aucune autre décision n'est envoyée. Mettez "
                            "dans DS_API_TOKEN un jeton avec accès en écriture.")
        return "; ".join(errors) or "erreur sans message"
    for a in item.annotations:
        annotation_store.record_written(db, item.number, a.id, str(a.value), instructeur_id)
    # Writing annotations moves DS's last change: note it, or a later decision would look edited since the export.
    decision_store.note_ds_state(db, item.number, _read_state(client, item.number))
    return None


def _reached(db: Database, client: DSClient, item: Planned) -> bool:
    """Whether DS now holds the decision (a network retry may have sent a mutation twice)."""
    live = _read_state(client, item.number)
    if steps_for(live.get("state") or "", item.decision, item.motivation, live.get("motivation"))[0] != DONE:
        return False
    decision_store.note_ds_state(db, item.number, live)
    return True


def apply(db: Database, client: DSClient, planned: list[Planned], instructeur_id: str, *,
          silent: bool = False) -> Iterator[Outcome]:
    """Sends the planned decisions one dossier at a time, within the token's rate limit. A dossier's
    error is reported and the next one tried; a read-only token stops everything at the first refusal."""
    for item in planned:
        if item.status == BLOCKED:
            yield Outcome(item, "erreur", item.reason)
        elif item.status == TO_DO:
            yield apply_one(db, client, item, instructeur_id, silent)


def apply_settings(db: Database, settings: Settings, planned: list[Planned], *,
                   silent: bool = False) -> Iterator[Outcome]:
    """`apply` with the configured token and instructeur; no token needed and no request when nothing is to do."""
    if not any(p.status == TO_DO for p in planned):
        yield from (Outcome(p, "erreur", p.reason) for p in planned if p.status == BLOCKED)
        return
    instructeur_id = resolve_instructeur(db, settings.instructeur_id)
    with client_for(settings) as client:
        yield from apply(db, client, planned, instructeur_id, silent=silent)
