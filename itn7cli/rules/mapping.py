"""Roles → champs: how rules find the champs they read, whatever the form calls them.

Each role has a default per démarche (a champ descriptor id and a label, from the assumed forms
of forms.json). `itn7.toml` may override a role per démarche:

    [mapping.general]
    subvention = "Montant demandé (€)"        # a label…
    date_fin = "Q2hhbXAtMTAyNQ=="             # …or a descriptor id

A descriptor id always wins over a label, so a champ renamed on the server is still read.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..config import DEMARCHE_KEYS
from ..errors import ConfigError
from .engine import Unreadable


@dataclass(frozen=True)
class Role:
    """A piece of information the rules need, and where the assumed forms hold it."""

    name: str
    description: str
    number: int  # the champ's stable number in the assumed forms: 1000 + n (general), 2000 + n (labo)
    kind: str = "champ"  # or "annotation"
    parent: str | None = None  # the repetition block holding it
    demarches: tuple[str, ...] = DEMARCHE_KEYS


def _role(name: str, description: str, number: int, **kwargs: Any) -> Role:
    return Role(name, description, number, **kwargs)


ROLES: tuple[Role, ...] = (
    _role("type_collectivite", "Type de collectivité", 2),
    _role("population", "Population de la collectivité (population municipale INSEE)", 3),
    _role("multi_porteur", "Le projet est-il porté par plusieurs collectivités ?", 4),
    _role("partenaires", "Collectivités partenaires", 5),
    _role("partenaire_nom", "Nom de la collectivité partenaire", 6, parent="partenaires"),
    _role("partenaire_siret", "SIRET de la collectivité partenaire", 7, parent="partenaires"),
    _role("contact_nom", "Nom et prénom du contact opérationnel", 8),
    _role("contact_email", "Courriel du contact opérationnel", 9),
    _role("intitule", "Intitulé du projet", 12),
    _role("thematique", "Thématique", 13),
    _role("laboratoire", "Laboratoire d'innovation territoriale qui accompagne le projet", 14, demarches=("labo",)),
    _role("lettre_laboratoire", "Lettre d'engagement du laboratoire d'innovation territoriale", 15,
          demarches=("labo",)),
    _role("situation", "Description de la situation existante et des besoins identifiés", 20),
    _role("objectifs", "Objectifs du projet", 21),
    _role("solution", "Solution numérique envisagée et justification de son choix", 22),
    _role("logiciel_libre", "La solution retenue est-elle un logiciel libre ?", 23),
    _role("inscription", "Le projet s'inscrit dans", 24),
    _role("date_fin", "Date prévisionnelle de fin du projet", 25),
    _role("depenses", "Dépenses prévisionnelles", 31),
    _role("depense_nature", "Nature de la dépense", 32, parent="depenses"),
    _role("depense_description", "Description de la dépense", 33, parent="depenses"),
    _role("depense_montant", "Montant HT (€)", 34, parent="depenses"),
    _role("cout_total", "Coût total du projet HT (€)", 35),
    _role("subvention", "Montant de la subvention sollicitée (€)", 36),
    _role("piece_presentation", "Document de présentation du projet", 41),
    _role("piece_annexe1", "Annexe 1 du cahier des charges", 42),
    _role("piece_devis", "Devis de la prestation", 43),
    _role("piece_deliberation", "Délibération ou engagement des collectivités partenaires", 44),
    _role("avis", "Avis du référent départemental", 901, kind="annotation"),
    _role("montant_propose", "Montant proposé par le référent (€)", 902, kind="annotation"),
    _role("controle_auto", "Contrôle d'éligibilité automatique", 904, kind="annotation"),
)
ROLES_BY_NAME = {r.name: r for r in ROLES}
TEXT_ROLES = ("intitule", "situation", "objectifs", "solution")


def default_descriptor_id(role: Role, demarche_key: str) -> str:
    """The assumed form's descriptor id: DS ids are base64("Champ-<n>")."""
    base = 1000 if demarche_key == "general" else 2000
    return base64.b64encode(f"Champ-{base + role.number}".encode()).decode()


class RoleMap:
    """The resolved targets of every role for one démarche: candidate ids and labels, ids first."""

    def __init__(self, demarche_key: str, overrides: Mapping[str, str] | None = None) -> None:
        self.demarche_key = demarche_key
        self.targets: dict[str, tuple[str, ...]] = {}
        self.overridden: set[str] = set()
        for role in ROLES:
            if demarche_key in role.demarches:
                self.targets[role.name] = (default_descriptor_id(role, demarche_key), role.description)
        for name, value in (overrides or {}).items():
            if name not in ROLES_BY_NAME:
                known = ", ".join(ROLES_BY_NAME)
                raise ConfigError(f"[mapping.{demarche_key}] rôle inconnu « {name} » (rôles connus : {known}).")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"[mapping.{demarche_key}] {name} doit être un libellé ou un identifiant de champ.")
            self.targets[name] = (value.strip(),)
            self.overridden.add(name)

    def find(self, role: str, by_id: Mapping[str, dict[str, Any]],
             by_label: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
        """The champ serving `role` among indexed champs: any descriptor id match first, then labels."""
        targets = self.targets.get(role, ())
        for target in targets:
            if target in by_id:
                return by_id[target]
        for target in targets:
            if target in by_label:
                return by_label[target]
        return None

    def target_text(self, role: str) -> str:
        targets = self.targets.get(role, ())
        return " / ".join(f"« {t} »" for t in targets) or "aucun champ"


def mappings_from_settings(mapping: Mapping[str, Any]) -> dict[str, RoleMap]:
    """One resolved mapping per démarche from the `[mapping]` table of itn7.toml."""
    for key in mapping:
        if key not in DEMARCHE_KEYS:
            raise ConfigError(f"[mapping.{key}] : démarche inconnue, utilisez general ou labo.")
    return {key: RoleMap(key, mapping.get(key) or {}) for key in DEMARCHE_KEYS}


def _index(champs: Iterable[Mapping[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    by_id: dict[str, dict[str, Any]] = {}
    by_label: dict[str, dict[str, Any]] = {}
    for champ in champs:
        if not isinstance(champ, dict):
            continue
        if champ.get("champDescriptorId"):
            by_id.setdefault(champ["champDescriptorId"], champ)
        if champ.get("label"):
            by_label.setdefault(champ["label"], champ)
    return by_id, by_label


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)  # BigInt arrives as a string: float("45000") is fine


class ChampSource:
    """Typed access to champs by role; raises Unreadable for a required champ absent or of a wrong type."""

    def __init__(self, mapping: RoleMap, champs: Iterable[Mapping[str, Any]],
                 annotations: Iterable[Mapping[str, Any]] = ()) -> None:
        self.mapping = mapping
        self._champs = _index(champs)
        self._annotations = _index(annotations)
        self._rows: dict[str, list[ChampSource]] = {}  # several rules read the same blocks

    def champ(self, role: str, *, required: bool = False) -> dict[str, Any] | None:
        """The raw champ serving `role`, None when absent (hidden by a condition) and not required."""
        spec = ROLES_BY_NAME[role]
        found = self.mapping.find(role, *(self._annotations if spec.kind == "annotation" else self._champs))
        if found is None and required:
            raise Unreadable(f"Champ introuvable pour « {spec.description} » (rôle {role}, cherché : "
                             f"{self.mapping.target_text(role)}) : formulaire modifié ou correspondance à revoir.")
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
        rows = [ChampSource(self.mapping, row.get("champs") or ()) for row in champ.get("rows") or ()]
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
    """One dossier as the rules see it: demandeur facts and champs by role."""

    def __init__(self, raw: Mapping[str, Any], demarche_key: str, mapping: RoleMap) -> None:
        super().__init__(mapping, raw.get("champs") or (), raw.get("annotations") or ())
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
