"""The demandeurs of the generated dossiers: collectivités of PACA from refdata.json, and a few odd ones."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import text
from .model import relay_id

# Chef-lieu (INSEE, name, postal code) of each région and département of refdata.json's collectivités.
CHEFS_LIEUX = {
    "93": ("13055", "Marseille", "13002"),
    "04": ("04070", "Digne-les-Bains", "04000"),
    "05": ("05061", "Gap", "05000"),
    "06": ("06088", "Nice", "06000"),
    "13": ("13055", "Marseille", "13006"),
    "83": ("83137", "Toulon", "83000"),
    "84": ("84007", "Avignon", "84000"),
}
EPCI_KINDS = {"CC": ("7346", "EPCI"), "CA": ("7348", "EPCI"), "METRO": ("7344", "Métropole")}
# Unusual applicants at fixed positions of the general démarche: (typename, SIREN, name, CJ, kind, INSEE,
# city, postal code, département, population).
TRICKY: dict[int, tuple[Any, ...]] = {
    3: ("PersonneMorale", "251300521", "Syndicat mixte numérique des Alpes", "7355", "EPCI", "05061", "Gap",
        "05000", "05", 0),
    7: ("PersonneMorale", "775663438", "Association Provence Numérique Solidaire", "9220", "Commune", "13001",
        "Aix-en-Provence", "13100", "13", 0),
    11: ("PersonneMorale", "212000046", "Commune d'Ajaccio", "7210", "Commune", "2A004", "Ajaccio", "20000", "2A",
         70817),
    13: ("PersonneMorale", "219740115", "Commune de Saint-Denis", "7210", "Commune", "97411", "Saint-Denis",
         "97400", "974", 153001),
    17: ("PersonneMoraleIncomplete", "210600888", "", None, "Commune", "", "", "", "", 0),
}


def luhn_ok(digits: str) -> bool:
    """Whether a SIREN/SIRET passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def siret_of(siren: str, first_nic: int = 10) -> str:
    """The first Luhn-valid SIRET of a SIREN from NIC `first_nic` upward."""
    for nic in range(first_nic, 100000):
        candidate = f"{siren}{nic:05d}"
        if luhn_ok(candidate):
            return candidate
    raise ValueError(siren)


@dataclass
class Applicant:
    """A demandeur: what the API shows of it, plus facts the generator needs."""

    typename: str  # PersonneMorale, PersonneMoraleIncomplete, PersonnePhysique
    siret: str
    name: str
    cj: str | None
    kind: str  # value of the "Type de collectivité" champ
    city_code: str
    city_name: str
    postal_code: str
    dep: str
    population: int
    person: dict[str, str] | None = None

    def to_graphql(self) -> dict[str, Any]:
        """The Demandeur object (or SiretChamp etablissement) as the resolvers serve it."""
        if self.typename == "PersonnePhysique":
            assert self.person is not None
            return {
                "__typename": "PersonnePhysique",
                "id": relay_id("Individual", int(self.siret[-6:])),
                "dateDeNaissance": None,
                **self.person,
            }
        if self.typename == "PersonneMoraleIncomplete":
            # Fields a degraded PersonneMorale still has to fill when the document lacks the fragment.
            return {
                "__typename": "PersonneMoraleIncomplete",
                "id": relay_id("Etablissement", int(self.siret[-7:])),
                "siret": self.siret,
                "siegeSocial": False,
                "naf": None,
                "libelleNaf": "",
                "entreprise": None,
                "address": {
                    "label": "",
                    "cityCode": "",
                    "cityName": "",
                    "postalCode": "",
                    "departmentCode": None,
                    "regionCode": None,
                },
            }
        region = "93" if self.dep in ("04", "05", "06", "13", "83", "84") else {"2A": "94", "974": "04"}.get(self.dep)
        naf, libelle = (
            ("84.11Z", "Administration publique générale")
            if self.cj and self.cj[0] == "7"
            else ("94.99Z", "Autres organisations fonctionnant par adhésion volontaire")
        )
        return {
            "__typename": "PersonneMorale",
            "id": relay_id("Etablissement", int(self.siret[-7:])),
            "siret": self.siret,
            "siegeSocial": True,
            "naf": naf,
            "libelleNaf": libelle,
            "address": {
                "label": f"{self.name.upper()}\nHôtel de ville\n{self.postal_code} {self.city_name.upper()}",
                "cityCode": self.city_code,
                "cityName": self.city_name,
                "postalCode": self.postal_code,
                "departmentCode": self.dep,
                "regionCode": region,
            },
            "entreprise": {
                "siren": self.siret[:9],
                "raisonSociale": self.name.upper(),
                "nomCommercial": "",
                "formeJuridique": text.FORMES.get(self.cj or "", None),
                "formeJuridiqueCode": self.cj,
            },
        }



def load_refdata() -> dict[str, Any]:
    """The communes, EPCI and collectivités the applicants come from."""
    data: dict[str, Any] = json.loads((Path(__file__).with_name("refdata.json")).read_text(encoding="utf-8"))
    return data


def pool(ref: dict[str, Any], rng: random.Random) -> list[Applicant]:
    """Every commune, EPCI, département and région of the reference data, shuffled."""
    out = [Applicant("PersonneMorale", siret_of(siren), f"Commune de {nom}", "7210", "Commune", insee, nom, cp,
                     insee[:2], pop)
           for insee, nom, siren, _epci, pop, _zrr, cp in ref["communes"]]
    seat = {c[3]: c for c in sorted(ref["communes"], key=lambda c: -c[4])}
    for siren, nom, nature, pop, dep, _n in ref["epci"]:
        cj, kind = EPCI_KINDS[nature]
        city = seat.get(siren)
        insee, city_name, cp = (city[0], city[1], city[6]) if city else (f"{dep}001", nom, f"{dep}000")
        out.append(Applicant("PersonneMorale", siret_of(siren), nom, cj, kind, insee, city_name, cp, insee[:2], pop))
    for niveau, code, nom, siren, cj, pop in ref["collectivites"]:
        chef = CHEFS_LIEUX[code]
        kind = "Région" if niveau == "region" else "Département"
        out.append(Applicant("PersonneMorale", siret_of(siren), nom, cj, kind, chef[0], chef[1], chef[2],
                             chef[0][:2], pop))
    rng.shuffle(out)
    return out


def tricky(index: int, rng: random.Random) -> Applicant | None:
    """The unusual applicant at this position of the general démarche, if any (19: a person, drawn from `rng`)."""
    if index in TRICKY:
        typename, siren, *rest = TRICKY[index]
        return Applicant(typename, siret_of(siren), *rest)
    if index != 19:
        return None
    first, last = text.person(rng)
    person = {"civilite": rng.choice(["M", "Mme"]), "nom": last.upper(), "prenom": first,
              "email": text.email(first, last, "gmail.com")}
    return Applicant("PersonnePhysique", "000000019191", f"{first} {last}", None, "Commune", "", "", "", "", 0,
                     person=person)


__all__ = ["Applicant", "load_refdata", "luhn_ok", "pool", "siret_of", "tricky"]
