"""Crafted dossiers shaped like the `DossierFields` fragment, for the rules' tests.

`dossier()` is an eligible dossier of the general démarche; tests change one thing each.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

COMMUNE_SIRET = "21040001600015"  # Aiglun (04001), SIREN 210400016


def cid(n: int) -> str:
    return base64.b64encode(f"Champ-{n}".encode()).decode()


def champ(typename: str, n: int, label: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    key = {"TextChamp": "text", "DecimalNumberChamp": "decimal", "IntegerNumberChamp": "integer",
           "YesNoChamp": "yesNo", "DateChamp": "date", "DropDownListChamp": "choice",
           "MultipleDropDownListChamp": "values"}.get(typename)
    out: dict[str, Any] = {"__typename": typename, "id": f"c{n}", "champDescriptorId": cid(n), "label": label,
                           "stringValue": None if value is None else str(value)}
    if key:
        out[key] = value
    out.update(extra)
    return out


def files(n: int, label: str, count: int = 1) -> dict[str, Any]:
    return champ("PieceJustificativeChamp", n, label,
                 files=[{"filename": f"f{i}.pdf", "contentType": "application/pdf", "checksum": "x", "byteSize": "10"}
                        for i in range(count)])


def _row(row_id: str, champs: list[dict[str, Any]]) -> dict[str, Any]:
    """A repetition row; champ ids are unique per row, as in DS."""
    return {"id": row_id, "champs": [{**c, "id": f"{c['id']}-{row_id}"} for c in champs]}


def expense(nature: str, description: str, amount: Any, base: int = 1000) -> dict[str, Any]:
    return _row(f"row-{nature}-{amount}", [
        champ("DropDownListChamp", base + 32, "Nature de la dépense", nature),
        champ("TextChamp", base + 33, "Description de la dépense", description),
        champ("DecimalNumberChamp", base + 34, "Montant HT (€)", amount),
    ])


def partner(name: str, siret: str, cj: str | None, base: int = 1000) -> dict[str, Any]:
    etablissement = {"siret": siret, "entreprise": {"siren": siret[:9], "raisonSociale": name,
                                                    "formeJuridiqueCode": cj},
                     "address": {"cityCode": "04001", "departmentCode": "04"}}
    return _row(f"row-{siret}", [
        champ("TextChamp", base + 6, "Nom de la collectivité partenaire", name),
        champ("SiretChamp", base + 7, "SIRET de la collectivité partenaire", siret, etablissement=etablissement),
    ])


def dossier(number: int = 1, key: str = "general") -> dict[str, Any]:
    """An eligible dossier: a PACA commune, filed in session 1, consistent amounts, every piece."""
    b = 1000 if key == "general" else 2000
    champs = [
        champ("DropDownListChamp", b + 2, "Type de collectivité", "Commune"),
        champ("IntegerNumberChamp", b + 3, "Population de la collectivité (population municipale INSEE)", "1432"),
        champ("YesNoChamp", b + 4, "Le projet est-il porté par plusieurs collectivités ?", False),
        champ("TextChamp", b + 8, "Nom et prénom du contact opérationnel", "Claire Martin"),
        champ("TextChamp", b + 9, "Courriel du contact opérationnel", "claire.martin@aiglun.fr"),
        champ("TextChamp", b + 12, "Intitulé du projet", "Portail des démarches en ligne"),
        champ("DropDownListChamp", b + 13, "Thématique",
              "3 - Relation aux usagers s'appuyant davantage sur le numérique"),
        champ("TextChamp", b + 20, "Description de la situation existante et des besoins identifiés",
              "Les habitants doivent se déplacer en mairie pour chaque demande."),
        champ("TextChamp", b + 21, "Objectifs du projet", "Proposer un guichet unique sur le site de la commune."),
        champ("TextChamp", b + 22, "Solution numérique envisagée et justification de son choix", ""),
        champ("YesNoChamp", b + 23, "La solution retenue est-elle un logiciel libre ?", False),
        champ("MultipleDropDownListChamp", b + 24, "Le projet s'inscrit dans", []),
        champ("DateChamp", b + 25, "Date prévisionnelle de fin du projet", "2022-06-30"),
        champ("RepetitionChamp", b + 31, "Dépenses prévisionnelles", rows=[
            expense("Développement", "Paramétrage du portail", 12000.0, b),
            expense("Accompagnement par un prestataire (design de service, technique, conduite du changement)",
                    "Ateliers avec les habitants", 8000.0, b),
        ]),
        champ("DecimalNumberChamp", b + 35, "Coût total du projet HT (€)", 20000.0),
        champ("DecimalNumberChamp", b + 36, "Montant de la subvention sollicitée (€)", 16000.0),
        files(b + 41, "Document de présentation du projet"),
        files(b + 42, "Annexe 1 du cahier des charges"),
        files(b + 43, "Devis de la prestation"),
    ]
    if key == "labo":
        champs += [champ("TextChamp", b + 14, "Laboratoire d'innovation territoriale qui accompagne le projet",
                         "Lab0"),
                   files(b + 15, "Lettre d'engagement du laboratoire d'innovation territoriale")]
    return {
        "id": f"RG9zc2llci0{number}", "number": number, "state": "en_construction",
        "dateDepot": "2021-05-10T10:00:00+02:00", "dateDerniereModification": "2021-05-10T10:00:00+02:00",
        "demandeur": {
            "__typename": "PersonneMorale", "siret": COMMUNE_SIRET, "siegeSocial": True,
            "address": {"label": "Mairie, 04510 Aiglun", "cityCode": "04001", "cityName": "Aiglun",
                        "postalCode": "04510", "departmentCode": "04", "regionCode": "93"},
            "entreprise": {"siren": COMMUNE_SIRET[:9], "raisonSociale": "COMMUNE D'AIGLUN",
                           "formeJuridique": "Commune et commune nouvelle", "formeJuridiqueCode": "7210"},
        },
        "champs": champs,
        "annotations": [],
    }


def find(raw: dict[str, Any], label: str) -> dict[str, Any]:
    """The champ with this label (top level), to change it in a test."""
    return next(c for c in raw["champs"] if c["label"] == label)


def drop(raw: dict[str, Any], label: str) -> dict[str, Any]:
    """The dossier without the champ (as when a condition hides it)."""
    out = copy.deepcopy(raw)
    out["champs"] = [c for c in out["champs"] if c["label"] != label]
    return out
