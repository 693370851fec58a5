"""The forms of the two ITN7 démarches, as revisions of champ and annotation descriptors."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

EXPENSE_NATURES = (
    "Étude, diagnostic, schéma directeur",
    "Accompagnement par un prestataire (design de service, technique, conduite du changement)",
    "Développement",
    "Formation, certification",
    "Frais de personnel",
    "Achat de matériel informatique",
    "Autre",
)
COLLECTIVITE_TYPES = ("Commune", "EPCI", "Métropole", "Département", "Région")
THEMES_GENERAL = (
    "1 - Organisation s'appuyant davantage sur le numérique",
    "2 - Connaissances et compétences numériques des services",
    "3 - Relation aux usagers s'appuyant davantage sur le numérique",
)
THEMES_LABO = ("4 - Projet d'innovation avec un laboratoire d'innovation territoriale",)
INSCRIPTIONS = (
    "une démarche d'inclusion numérique",
    "la reprise de l'emploi et la formation",
    "l'exercice de la citoyenneté",
    "une feuille de route de modernisation",
)
AVIS = ("Favorable", "Réservé", "Défavorable")
GROUPES = (
    ("04", "04 - Alpes-de-Haute-Provence"),
    ("05", "05 - Hautes-Alpes"),
    ("06", "06 - Alpes-Maritimes"),
    ("13", "13 - Bouches-du-Rhône"),
    ("83", "83 - Var"),
    ("84", "84 - Vaucluse"),
)

# Roles shared by both forms; the stable id is base + offset (general: 1000, labo: 2000).
ROLE_OFFSETS = {
    "section_porteur": 1,
    "type_collectivite": 2,
    "population": 3,
    "multi_porteur": 4,
    "partenaires": 5,
    "partenaire_nom": 6,
    "partenaire_siret": 7,
    "contact_nom": 8,
    "contact_email": 9,
    "contact_tel": 10,
    "section_projet": 11,
    "intitule": 12,
    "thematique": 13,
    "labo_nom": 14,
    "labo_lettre": 15,
    "description": 20,
    "objectifs": 21,
    "solution": 22,
    "libre": 23,
    "inscription": 24,
    "date_fin": 25,
    "section_financement": 30,
    "depenses": 31,
    "depense_nature": 32,
    "depense_description": 33,
    "depense_montant": 34,
    "cout_total": 35,
    "subvention": 36,
    "autres_financements": 37,
    "section_pieces": 40,
    "piece_presentation": 41,
    "piece_annexe1": 42,
    "piece_devis": 43,
    "piece_deliberation": 44,
    "avis": 901,
    "montant_propose": 902,
    "commentaire": 903,
    "controle": 904,
}


def champ_id(stable_id: int, row_id: int | None = None) -> str:
    """The GraphQL id of a champ: base64("Champ-<stable_id>") or, in a row, with "|<row_id>"."""
    raw = f"Champ-{stable_id}" if row_id is None else f"Champ-{stable_id}|{row_id}"
    return base64.b64encode(raw.encode()).decode()


@dataclass
class Descriptor:
    """One champ or annotation descriptor of a revision."""

    stable_id: int
    kind: str
    label: str
    required: bool = False
    description: str | None = None
    options: tuple[str, ...] = ()
    level: int | None = None
    children: list[Descriptor] = field(default_factory=list)
    # (stable_id of a yes/no champ, value that shows this champ)
    condition: tuple[int, bool] | None = None

    @property
    def id(self) -> str:
        """The descriptor id, equal to the champ id of its top-level champs."""
        return champ_id(self.stable_id)

    def to_graphql(self) -> dict[str, Any]:
        """The ChampDescriptor object as the resolvers serve it."""
        out: dict[str, Any] = {
            "__typename": f"{self.kind}ChampDescriptor",
            "id": self.id,
            "label": self.label,
            "description": self.description,
            "required": self.required,
        }
        if self.kind in ("DropDownList", "MultipleDropDownList", "LinkedDropDownList"):
            out["options"] = list(self.options)
            out["otherOption"] = False
        if self.kind == "HeaderSection":
            out["level"] = self.level
        if self.kind == "Repetition":
            out["champDescriptors"] = [c.to_graphql() for c in self.children]
        return out


# The mid-call revision of the general démarche rewords six champs. Editing a published champ clones its
# type de champ with the same stable id, so the champ keeps its id (app/models/procedure_revision.rb,
# `find_and_ensure_exclusive_use`; DS itself diffs revisions by stable id, `compare_revision_types_de_champ`).
RENAMED = {
    "population": "Population municipale (INSEE)",
    "contact_nom": "Contact opérationnel : prénom et nom",
    "objectifs": "Objectifs poursuivis",
    "solution": "Solution numérique retenue et raisons de ce choix",
    "libre": "Cette solution est-elle un logiciel libre ou un commun numérique ?",
    "piece_presentation": "Présentation détaillée du projet",
}
# …and removes one: the new revision's dossiers have no such champ (same file, `remove_type_de_champ`).
REMOVED = ("inscription",)


def _champs(key: str, *, old: bool = False, date_as_text: bool = False, reworded: bool = False) -> list[Descriptor]:
    base = 1000 if key == "general" else 2000

    def d(role: str, kind: str, label: str, required: bool = False, **kw: Any) -> Descriptor:
        if reworded:
            label = RENAMED.get(role, label)
        return Descriptor(base + ROLE_OFFSETS[role], kind, label, required, **kw)

    multi = base + ROLE_OFFSETS["multi_porteur"]
    champs = [
        d("section_porteur", "HeaderSection", "Porteur du projet", level=1),
        d("type_collectivite", "DropDownList", "Type de collectivité", True, options=COLLECTIVITE_TYPES),
        d("population", "IntegerNumber", "Population de la collectivité (population municipale INSEE)", True),
        d("multi_porteur", "YesNo", "Le projet est-il porté par plusieurs collectivités ?", True),
        d(
            "partenaires",
            "Repetition",
            "Collectivités partenaires",
            description="À remplir si le projet est porté par plusieurs collectivités.",
            children=[
                d("partenaire_nom", "Text", "Nom de la collectivité partenaire", True),
                d("partenaire_siret", "Siret", "SIRET de la collectivité partenaire", True),
            ],
            # The first revision had no display condition on the partners block.
            condition=None if old else (multi, True),
        ),
        d("contact_nom", "Text", "Nom et prénom du contact opérationnel", True),
        d("contact_email", "Email", "Courriel du contact opérationnel", True),
        d("contact_tel", "Phone", "Téléphone du contact opérationnel"),
        d("section_projet", "HeaderSection", "Le projet", level=1),
        d("intitule", "Text", "Nom du projet" if old else "Intitulé du projet", True),
        d(
            "thematique",
            "DropDownList",
            "Thématique",
            True,
            options=THEMES_GENERAL if key == "general" else THEMES_LABO,
        ),
    ]
    if key == "labo":
        champs += [
            d("labo_nom", "Text", "Laboratoire d'innovation territoriale qui accompagne le projet", True),
            d(
                "labo_lettre",
                "PieceJustificative",
                "Lettre d'engagement du laboratoire d'innovation territoriale",
                True,
            ),
        ]
    champs += [
        d("description", "Textarea", "Description de la situation existante et des besoins identifiés", True),
        d("objectifs", "Textarea", "Objectifs du projet", True),
        d("solution", "Textarea", "Solution numérique envisagée et justification de son choix"),
        d("libre", "YesNo", "La solution retenue est-elle un logiciel libre ?", True),
    ]
    if not old and not (reworded and "inscription" in REMOVED):
        champs.append(d("inscription", "MultipleDropDownList", "Le projet s'inscrit dans", options=INSCRIPTIONS))
    champs += [
        d("date_fin", "Text" if date_as_text else "Date", "Date prévisionnelle de fin du projet", True),
        d("section_financement", "HeaderSection", "Plan de financement", level=1),
        d(
            "depenses",
            "Repetition",
            "Dépenses prévisionnelles",
            True,
            children=[
                d("depense_nature", "DropDownList", "Nature de la dépense", True, options=EXPENSE_NATURES),
                d("depense_description", "Text", "Description de la dépense", True),
                d("depense_montant", "DecimalNumber", "Montant HT (€)", True),
            ],
        ),
        d("cout_total", "DecimalNumber", "Coût total du projet HT (€)", True),
        d("subvention", "DecimalNumber", "Montant de la subvention sollicitée (€)", True),
        d("autres_financements", "DecimalNumber", "Autres financements publics (€)"),
        d("section_pieces", "HeaderSection", "Pièces justificatives", level=1),
        d(
            "piece_presentation",
            "PieceJustificative",
            "Document de présentation du projet",
            True,
            description="Situation existante, besoins identifiés, objectifs du projet.",
        ),
        d("piece_annexe1", "PieceJustificative", "Annexe 1 du cahier des charges", True),
        d("piece_devis", "PieceJustificative", "Devis de la prestation", description="S'il y a lieu."),
        d("piece_deliberation", "PieceJustificative", "Délibération ou engagement des collectivités partenaires"),
    ]
    return champs


def _annotations(key: str) -> list[Descriptor]:
    base = 1000 if key == "general" else 2000
    return [
        Descriptor(base + 901, "DropDownList", "Avis du référent départemental", options=AVIS),
        Descriptor(base + 902, "DecimalNumber", "Montant proposé par le référent (€)"),
        Descriptor(base + 903, "Textarea", "Commentaire du référent"),
        Descriptor(
            base + 904,
            "Text",
            "Contrôle d'éligibilité automatique",
            description="Rempli par l'outil de contrôle : statut et motifs.",
        ),
    ]


@dataclass
class Revision:
    """One published version of a démarche's form."""

    number: int
    created_at: str  # Paris ISO timestamp
    champs: list[Descriptor]
    annotations: list[Descriptor]

    @property
    def id(self) -> str:
        """Relay id of the revision."""
        return base64.b64encode(f"ProcedureRevision-{self.number}".encode()).decode()

    def all_descriptors(self) -> dict[int, Descriptor]:
        """Every descriptor of the revision (top level, rows, annotations) by stable id."""
        out: dict[int, Descriptor] = {}
        for d in [*self.champs, *self.annotations]:
            out[d.stable_id] = d
            for c in d.children:
                out[c.stable_id] = c
        return out


def revisions_for(key: str, first_number: int) -> list[Revision]:
    """The revisions of a démarche, oldest first: five for "general", one for "labo"."""
    if key == "general":
        return [
            Revision(first_number, "2021-02-15T10:12:00+01:00", _champs(key, old=True), _annotations(key)),
            Revision(first_number + 1, "2021-04-20T09:30:00+02:00", _champs(key), _annotations(key)),
            # In the middle of session 2, six champs are reworded and one removed (RENAMED, REMOVED).
            Revision(first_number + 2, "2021-07-01T09:00:00+02:00", _champs(key, reworded=True), _annotations(key)),
            # For one week an administrator turned the end date into free text, then put it back:
            # the dossiers filed that week carry a champ the rules cannot read as a date.
            Revision(first_number + 3, "2021-09-06T10:00:00+02:00", _champs(key, date_as_text=True, reworded=True),
                     _annotations(key)),
            Revision(first_number + 4, "2021-09-13T09:00:00+02:00", _champs(key, reworded=True), _annotations(key)),
        ]
    return [Revision(first_number, "2021-02-16T11:00:00+01:00", _champs(key), _annotations(key))]


def stable(key: str, role: str) -> int:
    """The stable id of a role's champ in a démarche's form."""
    return (1000 if key == "general" else 2000) + ROLE_OFFSETS[role]
