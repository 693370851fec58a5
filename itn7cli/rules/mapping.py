"""Roles → champs: how rules find the champs they read, whatever the form calls them.

A role (the grant, the end date…) is found once per démarche, by LABEL, in any revision of its form:
the documented label of `ROLES`, or the one `itn7.toml` gives. Labels are compared without case,
accents, spacing, punctuation or `(€)`-style units; a label matching two champs is reported, never
guessed. From then on the role is that champ's descriptor id in every revision, whatever its label
there: DS keeps a champ's id through a rename. `itn7.toml` may also give the descriptor id itself,
which `itn7 champs` prints:

    [mapping.general]
    subvention = "Montant demandé (€)"        # a label…
    date_fin = "Q2hhbXAtMTAyNQ=="             # …or a descriptor id

In a revision where the role's champ is missing, or has another type than where it was found, every
rule reading it gives `donnees_illisibles` for that revision's dossiers, naming role, champ and revision.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ..config import DEMARCHE_KEYS, PARIS
from ..errors import ConfigError
from .engine import Unreadable


@dataclass(frozen=True)
class Role:
    """A piece of information the rules need, and the label of the documented forms (forms.json)."""

    name: str
    description: str  # the default label
    kind: str = "champ"  # or "annotation"
    parent: str | None = None  # the repetition block holding it
    demarches: tuple[str, ...] = DEMARCHE_KEYS


ROLES: tuple[Role, ...] = (
    Role("type_collectivite", "Type de collectivité"),
    Role("population", "Population de la collectivité (population municipale INSEE)"),
    Role("multi_porteur", "Le projet est-il porté par plusieurs collectivités ?"),
    Role("partenaires", "Collectivités partenaires"),
    Role("partenaire_nom", "Nom de la collectivité partenaire", parent="partenaires"),
    Role("partenaire_siret", "SIRET de la collectivité partenaire", parent="partenaires"),
    Role("contact_nom", "Nom et prénom du contact opérationnel"),
    Role("contact_email", "Courriel du contact opérationnel"),
    Role("intitule", "Intitulé du projet"),
    Role("thematique", "Thématique"),
    Role("laboratoire", "Laboratoire d'innovation territoriale qui accompagne le projet", demarches=("labo",)),
    Role("lettre_laboratoire", "Lettre d'engagement du laboratoire d'innovation territoriale", demarches=("labo",)),
    Role("situation", "Description de la situation existante et des besoins identifiés"),
    Role("objectifs", "Objectifs du projet"),
    Role("solution", "Solution numérique envisagée et justification de son choix"),
    Role("logiciel_libre", "La solution retenue est-elle un logiciel libre ?"),
    Role("inscription", "Le projet s'inscrit dans"),
    Role("date_fin", "Date prévisionnelle de fin du projet"),
    Role("depenses", "Dépenses prévisionnelles"),
    Role("depense_nature", "Nature de la dépense", parent="depenses"),
    Role("depense_description", "Description de la dépense", parent="depenses"),
    Role("depense_montant", "Montant HT (€)", parent="depenses"),
    Role("cout_total", "Coût total du projet HT (€)"),
    Role("subvention", "Montant de la subvention sollicitée (€)"),
    Role("piece_presentation", "Document de présentation du projet"),
    Role("piece_annexe1", "Annexe 1 du cahier des charges"),
    Role("piece_devis", "Devis de la prestation"),
    Role("piece_deliberation", "Délibération ou engagement des collectivités partenaires"),
    Role("avis", "Avis du référent départemental", kind="annotation"),
    Role("montant_propose", "Montant proposé par le référent (€)", kind="annotation"),
    Role("controle_auto", "Contrôle d'éligibilité automatique", kind="annotation"),
    # Optional: where `itn7 decisions apply` also writes the committee's decision and amount, if the form has them.
    Role("decision_comite", "Décision du comité", kind="annotation"),
    Role("montant_attribue", "Montant attribué (€)", kind="annotation"),
)
ROLES_BY_NAME = {r.name: r for r in ROLES}
TEXT_ROLES = ("intitule", "situation", "objectifs", "solution")

# « (€) », « (en €) », « (euros) », « (%) »: a unit in brackets says nothing about which champ it is.
UNIT = re.compile(r"\(\s*(?:en\s+)?(?:€|k€|eur|euros?|%)\s*\)", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)  # each role compares its label with every champ's, in every revision
def normalize_label(label: str | None) -> str:
    """A label as matching sees it: no case, accents, spacing, punctuation or bracketed unit."""
    text = UNIT.sub(" ", label or "")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return "".join(c for c in text.casefold() if c.isalnum())


class RoleMap:
    """What to look for, per role, in one démarche: the configured label or id, else the default label."""

    def __init__(self, demarche_key: str, overrides: Mapping[str, str] | None = None) -> None:
        self.demarche_key = demarche_key
        self.targets: dict[str, str] = {r.name: r.description for r in ROLES if demarche_key in r.demarches}
        self.overridden: set[str] = set()
        for name, value in (overrides or {}).items():
            if name not in ROLES_BY_NAME:
                known = ", ".join(ROLES_BY_NAME)
                raise ConfigError(f"[mapping.{demarche_key}] rôle inconnu « {name} » (rôles connus : {known}).")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"[mapping.{demarche_key}] {name} doit être un libellé ou un identifiant de champ.")
            self.targets[name] = value.strip()
            self.overridden.add(name)

    def find(self, role: str, by_id: Mapping[str, dict[str, Any]],
             by_label: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
        """The item serving `role` among items indexed by descriptor id and by label: a configured id
        first, then the label, compared as `normalize_label` does."""
        target = self.targets.get(role)
        if target is None:
            return None
        if role in self.overridden and target in by_id:
            return by_id[target]
        if target in by_label:
            return by_label[target]
        wanted = normalize_label(target)
        return next((item for label, item in by_label.items() if normalize_label(label) == wanted), None)

    def target_text(self, role: str) -> str:
        target = self.targets.get(role)
        return f"« {target} »" if target else "aucun champ"


def mappings_from_settings(mapping: Mapping[str, Any]) -> dict[str, RoleMap]:
    """One mapping per démarche from the `[mapping]` table of itn7.toml."""
    for key in mapping:
        if key not in DEMARCHE_KEYS:
            raise ConfigError(f"[mapping.{key}] : démarche inconnue, utilisez general ou labo.")
    return {key: RoleMap(key, mapping.get(key) or {}) for key in DEMARCHE_KEYS}


# ---------------------------------------------------------------- forms and their revisions

# Descriptor types whose champs the API always serves as a TextChamp: a switch between them changes nothing read.
TEXT_LIKE = {"Text", "Textarea", "Email", "Phone", "Iban", "Formatted"}


@dataclass(frozen=True)
class FormDescriptor:
    """One champ or annotation descriptor of one revision (`type` is the GraphQL type name)."""

    id: str
    kind: str
    parent_id: str | None
    type: str | None
    label: str | None

    @property
    def type_name(self) -> str:
        """The type as people read it: « Date », « DecimalNumber »…"""
        return (self.type or "inconnu").removesuffix("Descriptor").removesuffix("Champ")

    @property
    def read_as(self) -> str:
        """The type its champs arrive as: the text-like types all come as a TextChamp (API-NOTES §4)."""
        return "Text" if self.type_name in TEXT_LIKE else self.type_name


@dataclass(frozen=True)
class FormRevision:
    """One revision of a démarche's form, as stored from the API."""

    id: str
    published: str | None
    descriptors: tuple[FormDescriptor, ...]
    by_id: dict[str, FormDescriptor] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {d.id: d for d in self.descriptors})

    @property
    def day(self) -> str:
        """« 01/07/2021 », the day it was published (Paris), or '' when unknown."""
        try:
            return datetime.fromisoformat(str(self.published)).astimezone(PARIS).strftime("%d/%m/%Y")
        except ValueError:
            return ""

    @property
    def name(self) -> str:
        """How messages name it: « du 01/07/2021 (id) »."""
        return f"du {self.day} ({self.id})" if self.day else f"({self.id})"


@dataclass(frozen=True)
class Target:
    """A role resolved in one démarche: its descriptor id, or why there is none; per revision, its
    label (None where the champ is missing) and why it cannot be read there."""

    role: str
    descriptor_id: str | None
    problem: str | None = None
    ambiguous: bool = False
    reference: FormDescriptor | None = None  # the champ where the role was found
    labels: dict[str, str | None] = field(default_factory=dict)
    gaps: dict[str, str] = field(default_factory=dict)


class FormMap:
    """Every role of one démarche resolved against all its revisions: what the rules read through."""

    def __init__(self, role_map: RoleMap, revisions: Sequence[FormRevision]) -> None:
        self.role_map = role_map
        self.demarche_key = role_map.demarche_key
        self.revisions = tuple(revisions)
        self.targets: dict[str, Target] = {}
        for role in ROLES:
            if self.demarche_key in role.demarches:
                self.targets[role.name] = self._resolve(role)
        self._located: dict[str, dict[str, tuple[str | None, str | None]]] = {}

    def _scope(self, revision: FormRevision, role: Role, parent_id: str | None) -> Iterator[FormDescriptor]:
        return (d for d in revision.descriptors if d.kind == role.kind and d.parent_id == parent_id)

    def _resolve(self, role: Role) -> Target:
        wanted = self.role_map.targets[role.name]
        parent_id = None
        if role.parent is not None:
            parent = self.targets.get(role.parent)
            if parent is None or parent.descriptor_id is None:
                return Target(role.name, None, f"Champ introuvable pour « {role.description} » (rôle {role.name}) : "
                              f"son bloc « {ROLES_BY_NAME[role.parent].description} » est introuvable.")
            parent_id = parent.descriptor_id
        found: dict[str, FormDescriptor] = {}  # descriptor id → where first found, oldest revision first
        doubles: list[FormDescriptor] = []
        if role.name in self.role_map.overridden and any(wanted in r.by_id for r in self.revisions):
            found[wanted] = next(r.by_id[wanted] for r in self.revisions if wanted in r.by_id)
        else:
            key = normalize_label(wanted)
            for revision in self.revisions:
                matches = [d for d in self._scope(revision, role, parent_id) if normalize_label(d.label) == key]
                if len(matches) > 1:
                    doubles += matches
                for match in matches:
                    found.setdefault(match.id, match)
        if doubles or len(found) > 1:
            champs = " ; ".join(f"« {d.label} » {d.id}" for d in {d.id: d for d in [*doubles, *found.values()]}
                                .values())
            return Target(role.name, None, f"Libellé ambigu pour le rôle {role.name} : « {wanted} » désigne "
                          f"plusieurs champs ({champs}) ; indiquez l'identifiant du bon champ dans "
                          f"[mapping.{self.demarche_key}] d'itn7.toml (voir « itn7 champs »).", ambiguous=True)
        if not found:
            return Target(role.name, None, f"Champ introuvable pour « {role.description} » (rôle {role.name}, "
                          f"cherché : « {wanted} ») : formulaire modifié ou correspondance à revoir.")
        [reference] = found.values()
        labels: dict[str, str | None] = {}
        gaps: dict[str, str] = {}
        for revision in self.revisions:
            there = revision.by_id.get(reference.id)
            labels[revision.id] = there.label if there else None
            if there is None:
                gaps[revision.id] = (f"Le champ « {reference.label} » (rôle {role.name}) n'existe pas dans la "
                                     f"révision {revision.name} du formulaire : illisible pour les dossiers de "
                                     "cette révision.")
            elif there.read_as != reference.read_as:
                gaps[revision.id] = (f"Le champ « {there.label} » (rôle {role.name}) est de type {there.type_name} "
                                     f"au lieu de {reference.type_name} dans la révision {revision.name} du "
                                     "formulaire : illisible pour les dossiers de cette révision.")
        return Target(role.name, reference.id, reference=reference, labels=labels, gaps=gaps)

    def locate(self, role: str, revision_id: str | None) -> str | None:
        """The descriptor id to read `role` from in a dossier of `revision_id`; None when the form has
        no such champ. Raises Unreadable for an ambiguous label, or a champ missing or retyped there."""
        target = self.targets.get(role)
        if target is None:
            return None
        if target.ambiguous:
            raise Unreadable(target.problem or role)
        gap = target.gaps.get(revision_id or "")
        if gap is not None:
            raise Unreadable(gap)
        return target.descriptor_id

    def located(self, revision_id: str | None) -> dict[str, tuple[str | None, str | None]]:
        """Role → (descriptor id, why it cannot be read) in a dossier of `revision_id`: `locate` of
        every role, worked out once per revision instead of at every read of every dossier."""
        key = revision_id or ""
        if key not in self._located:
            where: dict[str, tuple[str | None, str | None]] = {}
            for role in self.targets:
                try:
                    where[role] = (self.locate(role, revision_id), None)
                except Unreadable as exc:
                    where[role] = (None, exc.message)
            self._located[key] = where
        return self._located[key]

    def missing_message(self, role: str) -> str:
        """Why a required role has no value: the resolution's problem, else the champ absent from the dossier."""
        target = self.targets.get(role)
        spec = ROLES_BY_NAME[role]
        if target is None or target.problem:
            return (target.problem if target else None) or (
                f"Champ introuvable pour « {spec.description} » (rôle {role}) : ce rôle ne sert pas dans la "
                f"démarche {self.demarche_key}.")
        label = target.reference.label if target.reference else spec.description
        return (f"Le champ « {label} » (rôle {role}) manque dans le dossier alors que son formulaire l'a : "
                "données incomplètes, à vérifier.")

    # The RoleMap interface, so a FormMap can stand wherever one is expected.
    def find(self, role: str, by_id: Mapping[str, dict[str, Any]],
             by_label: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
        target = self.targets.get(role)
        if target is not None and target.descriptor_id is not None:
            return by_id.get(target.descriptor_id)
        return None if target is not None and target.ambiguous else self.role_map.find(role, by_id, by_label)

    def target_text(self, role: str) -> str:
        return self.role_map.target_text(role)


def resolve(role_map: RoleMap, revisions: Sequence[FormRevision]) -> FormMap:
    """Resolves every role of `role_map` against a démarche's revisions (oldest first)."""
    return FormMap(role_map, revisions)


def revisions_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[FormRevision]:
    """Revisions from the store's rows {id, published, descriptors: [{id, kind, parent_id, type, label}]}."""
    return [FormRevision(r["id"], r.get("published"), tuple(
        FormDescriptor(d["id"], d["kind"], d["parent_id"], d["type"], d["label"]) for d in r["descriptors"]))
        for r in rows]


def _champ_descriptors(kind: str, champs: Iterable[Any], parent_id: str | None = None) -> Iterator[FormDescriptor]:
    for champ in champs:
        if not isinstance(champ, dict) or not champ.get("champDescriptorId"):
            continue
        yield FormDescriptor(champ["champDescriptorId"], kind, parent_id, champ.get("__typename"), champ.get("label"))
        for row in champ.get("rows") or ():
            if isinstance(row, dict) and isinstance(row.get("champs"), list):
                yield from _champ_descriptors(kind, row["champs"], champ["champDescriptorId"])


def dossier_form(raw: Mapping[str, Any]) -> list[FormRevision]:
    """A one-revision form made of a dossier's own champs: how a dossier read alone (without its
    démarche's stored revisions) finds its roles, by label only."""
    found = {d.id: d for kind, key in (("champ", "champs"), ("annotation", "annotations"))
             for d in _champ_descriptors(kind, raw.get(key) or ())}
    return [FormRevision(_revision_id(raw), None, tuple(found.values()))]


def _revision_id(raw: Mapping[str, Any]) -> str:
    revision = raw.get("revision")
    return str(revision.get("id") or "") if isinstance(revision, dict) else ""


# ---------------------------------------------------------------- reading a dossier by role


def _index(champs: Iterable[Any]) -> dict[str, dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for champ in champs:
        if isinstance(champ, dict):
            descriptor_id = champ.get("champDescriptorId")
            if descriptor_id and descriptor_id not in by_id:
                by_id[descriptor_id] = champ
    return by_id


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)  # BigInt arrives as a string: float("45000") is fine


_NOWHERE: tuple[str | None, str | None] = (None, None)  # a role the démarche's form does not serve


class ChampSource:
    """Typed access to champs by role; raises Unreadable for a required champ absent or of a wrong type."""

    def __init__(self, form: FormMap, revision_id: str, champs: Iterable[Any],
                 annotations: Iterable[Any] = ()) -> None:
        self.form = form
        self.revision_id = revision_id
        self._located = form.located(revision_id)
        self._champs = _index(champs)
        self._annotations = _index(annotations) if annotations else {}  # rows have none
        self._rows: dict[str, list[ChampSource]] = {}  # several rules read the same blocks

    def champ(self, role: str, *, required: bool = False) -> dict[str, Any] | None:
        """The raw champ serving `role`, None when absent (hidden by a condition) and not required."""
        descriptor_id, problem = self._located.get(role, _NOWHERE)
        if problem is not None:
            raise Unreadable(problem)
        spec = ROLES_BY_NAME[role]
        found = None
        if descriptor_id is not None:
            found = (self._annotations if spec.kind == "annotation" else self._champs).get(descriptor_id)
        if found is None and required:
            raise Unreadable(self.form.missing_message(role))
        return found

    def _wrong_type(self, role: str, champ: Mapping[str, Any], expected: str) -> Unreadable:
        return Unreadable(f"Le champ « {champ.get('label')} » (rôle {role}) est de type {champ.get('__typename')} "
                          f"alors qu'il faut {expected} : formulaire modifié ou correspondance à revoir.")

    def text(self, role: str, *, required: bool = False) -> str:
        """The champ's text ('' when empty or absent); any champ type has a string value."""
        champ = self.champ(role, required=required)
        if champ is None:
            return ""
        value = champ.get("text") if champ.get("__typename") == "TextChamp" else None
        return str(value if value is not None else champ.get("stringValue") or "").strip()

    def amount(self, role: str, *, required: bool = False) -> tuple[dict[str, Any] | None, float | None]:
        """(champ, amount in euros); decimals arrive as numbers, integers as BigInt strings."""
        champ = self.champ(role, required=required)
        if champ is None:
            return None, None
        key = {"DecimalNumberChamp": "decimal", "IntegerNumberChamp": "integer"}.get(champ.get("__typename", ""))
        if key is None:
            raise self._wrong_type(role, champ, "un nombre")
        try:
            return champ, _number(champ.get(key))
        except (TypeError, ValueError):
            raise Unreadable(f"Le montant du champ « {champ.get('label')} » est illisible : "
                             f"« {champ.get(key)} ».") from None

    def yes_no(self, role: str, *, required: bool = False) -> bool | None:
        champ = self.champ(role, required=required)
        if champ is None:
            return None
        key = {"YesNoChamp": "yesNo", "CheckboxChamp": "checked"}.get(champ.get("__typename", ""))
        if key is None:
            raise self._wrong_type(role, champ, "oui/non")
        value = champ.get(key)
        return None if value is None else bool(value)

    def date(self, role: str, *, required: bool = False) -> tuple[dict[str, Any] | None, date | None]:
        champ = self.champ(role, required=required)
        if champ is None:
            return None, None
        key = {"DateChamp": "date", "DatetimeChamp": "datetime"}.get(champ.get("__typename", ""))
        if key is None:
            raise self._wrong_type(role, champ, "une date")
        value = champ.get(key)
        if not value:
            return champ, None
        try:
            return champ, date.fromisoformat(str(value)[:10])
        except ValueError:
            raise Unreadable(f"La date du champ « {champ.get('label')} » est illisible : « {value} ».") from None

    def values(self, role: str) -> list[str]:
        champ = self.champ(role)
        if champ is None:
            return []
        if champ.get("__typename") == "MultipleDropDownListChamp":
            return [str(v) for v in champ.get("values") or ()]
        return [champ["stringValue"]] if champ.get("stringValue") else []

    def files(self, role: str, *, required: bool = False) -> int | None:
        """How many files the champ holds; None when the champ is absent and not required."""
        champ = self.champ(role, required=required)
        if champ is None:
            return None
        if champ.get("__typename") != "PieceJustificativeChamp":
            raise self._wrong_type(role, champ, "une pièce justificative")
        return len(champ.get("files") or ())

    def rows(self, role: str, *, required: bool = False) -> list[ChampSource]:
        """The rows of a repetition block, each readable by role; [] when the block is absent."""
        if role in self._rows:
            return self._rows[role]
        champ = self.champ(role, required=required)
        if champ is None:
            return []
        if champ.get("__typename") != "RepetitionChamp":
            raise self._wrong_type(role, champ, "un bloc répétable")
        rows = []
        for row in champ.get("rows") or ():
            if not isinstance(row, dict) or not isinstance(row.get("champs") or [], list):
                raise Unreadable(f"Une ligne du bloc « {champ.get('label')} » (rôle {role}) est illisible.")
            rows.append(ChampSource(self.form, self.revision_id, row.get("champs") or ()))
        self._rows[role] = rows
        return rows

    def siret_champ(self, role: str) -> tuple[str, str | None]:
        """(SIRET, INSEE catégorie juridique if DS resolved the établissement) of a SIRET champ."""
        champ = self.champ(role)
        if champ is None:
            return "", None
        etablissement = champ.get("etablissement") or {}
        siret = str(etablissement.get("siret") or champ.get("stringValue") or "").replace(" ", "")
        cj = (etablissement.get("entreprise") or {}).get("formeJuridiqueCode")
        return siret, str(cj) if cj else None


class Dossier(ChampSource):
    """One dossier as the rules see it: demandeur facts and champs by role.

    `form` is its démarche's resolved form (`resolve`); given a bare RoleMap, the dossier is read
    alone, its roles found by label among its own champs."""

    def __init__(self, raw: Mapping[str, Any], demarche_key: str, form: FormMap | RoleMap) -> None:
        if isinstance(form, RoleMap):
            form = FormMap(form, dossier_form(raw))
        super().__init__(form, _revision_id(raw), raw.get("champs") or (), raw.get("annotations") or ())
        self.raw = raw
        self.number: int = raw.get("number") or 0
        self.demarche_key = demarche_key
        demandeur = raw.get("demandeur") or {}
        self.demandeur_type: str | None = demandeur.get("__typename")
        entreprise = demandeur.get("entreprise") or {}
        address = demandeur.get("address") or {}
        self.siret: str = str(demandeur.get("siret") or "").replace(" ", "")
        self.siren: str | None = entreprise.get("siren") or (self.siret[:9] if self.siret else None)
        cj = entreprise.get("formeJuridiqueCode")
        self.cj: str | None = str(cj).strip() if cj else None
        self.forme_juridique: str | None = entreprise.get("formeJuridique")
        self.city_code: str | None = (address.get("cityCode") or "").strip().upper() or None
        self.department_code: str | None = (address.get("departmentCode") or "").strip().upper() or None
        self.date_depot: str | None = raw.get("dateDepot")
        self.cache: dict[str, Any] = {}  # values several rules derive (normalized texts…), computed once
