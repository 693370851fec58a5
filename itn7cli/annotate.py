"""`itn7 annotate`: the check's verdict of each dossier, written back to one DS private annotation.

`plan` reads the store only (no network, no token) and says, per dossier, what would be written to
the annotation serving the role `controle_auto` and whether it differs from what DS holds. `apply`
sends the differing ones with `dossierModifierAnnotations` — the only mutation this tool uses: it
never changes a dossier's state and never sends a message to the applicant.

What DS holds is the annotation value of the last sync, unless this tool wrote the annotation since
that sync: the write is then the newer truth (the next sync brings it back from DS anyway).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .api import DSClient, NotFoundError
from .config import PARIS, Settings
from .errors import AuthError, ConfigError
from .labels import STATUSES as STATUS_LABELS
from .rules.engine import ELIGIBLE, SEVERITY, rule_labels
from .rules.mapping import ROLES_BY_NAME, RoleMap, mappings_from_settings
from .store import Database
from .store import annotations as annotation_store

ROLE = "controle_auto"
OPERATION = "modifierAnnotations"
# DS's payload error for a read-only token (app/graphql/mutations/base_mutation.rb).
READ_ONLY_MARK = "seulement en lecture"
# "L’instructeur n’a pas les droits d’accès à ce dossier": DS uses a typographic apostrophe.
NO_ACCESS_MARK = "droits d"
DATE_PART = re.compile(r" \(\d{2}/\d{2}/\d{4}\)")

# Short reasons: the full messages stay in `itn7 check` and the committee workbook.
RULE_LABELS = rule_labels()  # « siège hors région »: the rule registry's labels


@dataclass
class Planned:
    """What `annotate` would do for one dossier."""

    number: int
    demarche: str
    groupe: str | None
    groupe_id: str | None
    dossier_id: str
    status: str
    verdict: str
    annotation_id: str | None
    value_key: str  # the AnnotationValueInput key: "text" or "textarea"
    current: str | None
    problem: str | None = None  # why nothing can be written, found before any request

    @property
    def changed(self) -> bool:
        """True when the verdict differs from the annotation, the date of the check aside."""
        return verdict_key(self.verdict) != verdict_key(self.current or "")


@dataclass
class Outcome:
    """What `apply` did for one dossier: "ecrit" or "erreur", with a French message."""

    planned: Planned
    result: str
    message: str


# ---------------------------------------------------------------- verdict text


def verdict_text(status: str, findings: list[tuple[str, str]], checked_at: str | None) -> str:
    """The annotation text: status, date of the check, short reasons, e.g.
    "À vérifier (28/11/2026) : plafond communal dépassé ; pièces manquantes"."""
    label = STATUS_LABELS.get(status, status)
    text = label[:1].upper() + label[1:]
    if checked_at:
        text += f" ({datetime.fromisoformat(checked_at).astimezone(PARIS):%d/%m/%Y})"
    ranked = sorted(enumerate(findings), key=lambda item: (-SEVERITY.get(item[1][1], 0), item[0]))
    reasons = list(dict.fromkeys(RULE_LABELS.get(rule, rule.replace("_", " ")) for _, (rule, _s) in ranked))
    if not reasons:
        return text
    if status == ELIGIBLE:  # its findings are only information for the committee
        return f"{text} — à noter : {' ; '.join(reasons)}"
    return f"{text} : {' ; '.join(reasons)}"


def verdict_key(text: str) -> str:
    """The verdict without the date of the check: re-checking another day changes nothing."""
    return " ".join(DATE_PART.sub("", text.strip(), count=1).split())


# ---------------------------------------------------------------- plan


def _index(items: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    by_id = {i["champDescriptorId"]: i for i in items if i["champDescriptorId"]}
    by_label = {i["label"]: i for i in items if i["label"]}
    return by_id, by_label


def _value_key(descriptor_type: str | None) -> str | None:
    """The AnnotationValueInput key for a descriptor type; None when the annotation cannot hold text."""
    if descriptor_type in (None, "TextChampDescriptor"):
        return "text"
    return "textarea" if descriptor_type == "TextareaChampDescriptor" else None


def annotation_target(mapping: RoleMap, champs: list[dict[str, Any]], descriptors: list[dict[str, Any]],
                      role: str = ROLE) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(annotation champ, its descriptor) of the role; the champ is None when the sync did not bring it."""
    described = _index(descriptors)
    champ = mapping.find(role, *_index(champs))
    if champ is not None:
        return champ, described[0].get(champ["champDescriptorId"])
    # A top-level champ's id is its descriptor's id: a champ absent from the sync can still be written.
    return None, mapping.find(role, *described)


def _problem(mapping: RoleMap, target: Mapping[str, Any] | None, descriptor: Mapping[str, Any] | None,
             value_key: str | None) -> str | None:
    if target is None:
        return (f"annotation « {ROLES_BY_NAME[ROLE].description} » introuvable (cherchée : "
                f"{mapping.target_text(ROLE)}) : voir « itn7 champs » et [mapping.{mapping.demarche_key}]")
    if value_key is None:
        return (f"l'annotation « {target['label']} » n'est pas un champ texte "
                f"({descriptor_type(descriptor or {})})")
    return None


def plan(db: Database, settings: Settings, *, session: int | None = None,
         demarche: str | None = None) -> list[Planned]:
    """Per checked, non-deleted dossier: the verdict text and the annotation it goes to. Reads the store only."""
    mappings = mappings_from_settings(settings.mapping)
    findings, champs = annotation_store.findings_by_dossier(db), annotation_store.annotation_champs(db)
    descriptors, written = annotation_store.annotation_descriptors(db), annotation_store.last_written(db)
    planned = []
    for row in annotation_store.checked_dossiers(db, session=session, demarche=demarche):
        number, key, status, synced_at = row["number"], row["key"], row["status"], row["synced_at"]
        revision_id, checked_at = row["revision_id"], row["checked_at"]
        mapping = mappings.get(key) or mappings["general"]
        champ, descriptor = annotation_target(mapping, champs.get(number, []), descriptors.get(revision_id, []))
        target = champ or descriptor
        annotation_id = target["id"] if target else None
        current = champ["value"] if champ else None
        last = written.get((number, annotation_id or ""))
        if last is not None and last[1] >= (synced_at or ""):
            current = last[0]  # written after the last sync: newer than what the sync saw
        value_key = _value_key(descriptor["type"] if descriptor else None)
        verdict = verdict_text(status, findings.get(number, []), checked_at)
        problem = _problem(mapping, target, descriptor, value_key)
        planned.append(Planned(number, key, row["groupe"], row["groupe_id"], row["dossier_id"], status, verdict,
                               annotation_id, value_key or "text", current, problem))
    return planned


def descriptor_type(descriptor: Mapping[str, Any]) -> str:
    """The descriptor's GraphQL type name without the "ChampDescriptor" suffix, for messages."""
    return str(descriptor.get("type") or "type inconnu").removesuffix("ChampDescriptor")


# ---------------------------------------------------------------- instructeurs


def instructeurs(db: Database) -> list[dict[str, Any]]:
    """Every groupe instructeur of the synced démarches with its instructeurs (id, email)."""
    return annotation_store.instructeurs(db)


def resolve_instructeur(db: Database, value: str | None) -> str:
    """The instructeur id to write as: ITN7_INSTRUCTEUR_ID, given as an id or as an e-mail of the synced data."""
    if not value:
        raise ConfigError("Identifiant d'instructeur manquant : renseignez ITN7_INSTRUCTEUR_ID (un identifiant "
                          "ou un courriel listé par « itn7 instructeurs »).")
    if "@" not in value:
        return value.strip()
    found = annotation_store.instructeur_by_email(db, value.strip())
    if found is None:
        raise ConfigError(f"Aucun instructeur « {value} » dans les données synchronisées : "
                          "voir « itn7 instructeurs ».")
    return found


def groupes_without(db: Database, instructeur_id: str, planned: list[Planned]) -> int:
    """How many planned changes are in a groupe the instructeur is not in, as of the last sync."""
    member = annotation_store.groupes_of(db, instructeur_id)
    return sum(1 for p in planned if p.changed and p.problem is None and p.groupe_id not in member)


# ---------------------------------------------------------------- apply


def _explain(messages: str, item: Planned) -> str:
    if NO_ACCESS_MARK in messages:
        return (f"l'instructeur n'appartient pas au groupe « {item.groupe} » de ce dossier "
                f"(Démarche Numérique : « {messages} »)")
    if "annotation" in messages.lower():
        return f"annotation refusée (Démarche Numérique : « {messages} ») : voir « itn7 champs » et [mapping]"
    return f"écriture refusée par Démarche Numérique : « {messages} »"


def write_one(client: DSClient, item: Planned, instructeur_id: str) -> str | None:
    """Sends one annotation; returns None when written, else DS's error messages (errors come back as data).

    DSClient retries after a network error, so a mutation DS already applied may be sent again:
    harmless, the same value is written twice.
    """
    data = client.execute(OPERATION, {"input": {
        "dossierId": item.dossier_id, "instructeurId": instructeur_id,
        "annotations": [{"id": item.annotation_id, "value": {item.value_key: item.verdict}}]}})
    payload = data.get("dossierModifierAnnotations") or {}
    errors = payload.get("errors") or []
    if errors:
        return "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict)) or "erreur sans message"
    return None


def apply(db: Database, client: DSClient, planned: list[Planned],
          instructeur_id: str) -> Iterator[Outcome]:
    """Writes the changed verdicts one dossier at a time, within the client's rate limit, recording each write.

    A dossier's error is reported and the next one tried; a read-only token stops everything at the
    first refusal (every other write would be refused the same way).
    """
    written = 0
    for item in planned:
        if item.problem is not None:
            yield Outcome(item, "erreur", item.problem)
            continue
        if not item.changed:
            continue
        try:
            error = write_one(client, item, instructeur_id)
        except NotFoundError:
            yield Outcome(item, "erreur", "dossier introuvable sur Démarche Numérique (supprimé depuis la "
                                          "dernière synchronisation ?)")
            continue
        if error is not None and READ_ONLY_MARK in error:
            raise AuthError(f"Le jeton d'API est en lecture seule (« {error} ») : aucune autre annotation n'est "
                            f"tentée ({written} écrite(s)). Mettez dans DS_API_TOKEN un jeton avec accès en écriture.")
        if error is not None:
            yield Outcome(item, "erreur", _explain(error, item))
            continue
        annotation_store.record_written(db, item.number, item.annotation_id, item.verdict, instructeur_id)
        written += 1
        yield Outcome(item, "ecrit", item.verdict)


def client_for(settings: Settings) -> DSClient:
    """A client for writes: one at a time, within the configured rate limit."""
    return DSClient(settings.api_url, settings.require_token(), timeout=settings.timeout_seconds,
                    requests_per_minute=settings.requests_per_minute, max_connections=1)



def apply_settings(db: Database, settings: Settings, planned: list[Planned]) -> Iterator[Outcome]:
    """`apply` with the configured token and instructeur; no token needed and no request when nothing changed."""
    if not any(p.changed and p.problem is None for p in planned):
        yield from (Outcome(p, "erreur", p.problem) for p in planned if p.problem is not None)
        return
    instructeur_id = resolve_instructeur(db, settings.instructeur_id)
    with client_for(settings) as client:
        yield from apply(db, client, planned, instructeur_id)
