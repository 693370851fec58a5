"""The in-memory dataset of the fake DS server: démarches, dossiers, deletions, and test helpers."""

from __future__ import annotations

import base64
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import text
from .files import ContentFactory, FileSpec
from .forms import GROUPES, Descriptor, Revision, champ_id, revisions_for, stable

PARIS = ZoneInfo("Europe/Paris")
ONE_US = timedelta(microseconds=1)
STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")
CLOSING_EVENTS = {"accepte": "accepte", "refuse": "refuse", "sans_suite": "classe_sans_suite"}
HOSTILE_FILENAMES = (
    "../../etc/passwd",
    "/abs/x.pdf",
    "CON",
    "d" * 296 + ".pdf",
    "budget 📎 final 🚀.pdf",
    "ligne1\nligne2.pdf",
)


FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
                 "octobre", "novembre", "décembre")

def relay_id(kind: str, n: int) -> str:
    """A Relay-style opaque id: base64("<kind>-<n>")."""
    return base64.b64encode(f"{kind}-{n}".encode()).decode()


def paris(dt: datetime | None) -> str | None:
    """A timestamp rendered like the API: seconds, with the Paris offset."""
    return None if dt is None else dt.astimezone(PARIS).isoformat(timespec="seconds")


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


def _load_refdata() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).with_name("refdata.json")).read_text(encoding="utf-8"))
    return data


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


@dataclass
class Row:
    """One row of a repetition block."""

    row_id: int
    values: dict[int, Any]


@dataclass
class Dossier:
    """One dossier, with raw values; `render()` builds the GraphQL view once per change."""

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


@dataclass
class DeletedRecord:
    """A purged dossier (the deleted_dossiers table)."""

    db_id: int
    number: int
    key: str
    state: str
    reason: str
    deleted_at: datetime

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


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _at(text_value: str) -> datetime:
    return datetime.fromisoformat(text_value).astimezone(UTC)


class Dataset:
    """Démarches and dossiers held in memory; thread-safe helpers change them like the real server would."""

    def __init__(self, seed: int, files_size: int | None) -> None:
        self.seed = seed
        self.files_size = files_size
        self.lock = threading.RLock()
        self.numbers: dict[str, int] = {}
        self.demarches: dict[int, Demarche] = {}
        self.dossiers: dict[int, Dossier] = {}
        self.deleted: dict[int, list[DeletedRecord]] = {}
        self.files: dict[str, FileSpec] = {}
        self.instructeurs: dict[int, str] = {}
        self.content = ContentFactory(seed)
        self._next_db_id = 1000
        self._next_row_id = 70000
        self._next_file = 1
        self._rng = random.Random(seed)
        self._ref = _load_refdata()
        self._applicants: list[Applicant] = []
        self._applicant_index = 0
        self._revision_objects: dict[int, dict[str, Any]] = {}
        # Bumped by every change of what the API shows, so caches of answers know they are stale.
        self.generation = 0

    # ------------------------------------------------------------------ generation
    @classmethod
    def generate(
        cls,
        seed: int = 1,
        counts: dict[str, int] | None = None,
        numbers: dict[str, int] | None = None,
        files_size: int | None = None,
    ) -> Dataset:
        """A realistic, deterministic dataset for both démarches.

        `counts` are the dossiers visible to the administration per démarche; a few more are
        generated hidden or purged (see `deleted`). `files_size` forces the size of every attachment
        (bytes), e.g. 20 MB for download benchmarks; by default sizes range from 2 KB to 120 KB.
        """
        counts = {"general": 300, "labo": 60, **(counts or {})}
        numbers = {"general": 84211, "labo": 84212, **(numbers or {})}
        ds = cls(seed, files_size)
        ds._build_applicants()
        instructeur_n = 1
        for key in ("general", "labo"):
            number = numbers[key]
            groupes = []
            for i, (dep, label) in enumerate(GROUPES):
                members = []
                for _ in range(2 + (i + len(key)) % 2):
                    first, last = text.person(ds._rng)
                    email = f"{text.slug(first)}.{text.slug(last)}@paca.pref.gouv.fr"
                    iid = 1000 + instructeur_n
                    instructeur_n += 1
                    ds.instructeurs[iid] = email
                    members.append(iid)
                groupes.append(
                    {
                        "number": number * 10 + i + 1,
                        "dep": dep,
                        "label": label,
                        "closed": False,
                        "instructeurs": members,
                    }
                )
            first_rev = 9000 + (number % 1000) * 10
            ds.demarches[number] = Demarche(
                key,
                number,
                text.TITLES[key],
                revisions_for(key, first_rev),
                groupes,
                _at("2021-02-15T10:00:00+01:00"),
            )
            ds.numbers[key] = number
            ds.deleted[number] = []
        n_general, n_labo = counts["general"], counts["labo"]
        plan = [("general", i) for i in range(n_general)] + [("labo", i) for i in range(n_labo)]
        # Interleave démarches by filing date order so dossier numbers look real.
        ds._rng.shuffle(plan)
        made: dict[str, list[int]] = {"general": [], "labo": []}
        for key, index in plan:
            made[key].append(ds._generate_dossier(key, index))
        ds._add_deletions(made)
        return ds

    def _build_applicants(self) -> None:
        ref = self._ref
        epci_by_siren = {e[0]: e for e in ref["epci"]}
        pool: list[Applicant] = []
        for insee, nom, siren, _epci, pop, _zrr, cp in ref["communes"]:
            pool.append(
                Applicant(
                    "PersonneMorale",
                    siret_of(siren),
                    f"Commune de {nom}",
                    "7210",
                    "Commune",
                    insee,
                    nom,
                    cp,
                    insee[:2],
                    pop,
                )
            )
        seat = {c[3]: c for c in sorted(ref["communes"], key=lambda c: -c[4])}
        for siren, nom, nature, pop, dep, _n in ref["epci"]:
            cj, kind = {"CC": ("7346", "EPCI"), "CA": ("7348", "EPCI"), "METRO": ("7344", "Métropole")}[nature]
            city = seat.get(siren)
            insee, city_name, cp = (city[0], city[1], city[6]) if city else (f"{dep}001", nom, f"{dep}000")
            pool.append(
                Applicant("PersonneMorale", siret_of(siren), nom, cj, kind, insee, city_name, cp, insee[:2], pop)
            )
        for niveau, code, nom, siren, cj, pop in ref["collectivites"]:
            chef = {
                "93": ("13055", "Marseille", "13002"),
                "04": ("04070", "Digne-les-Bains", "04000"),
                "05": ("05061", "Gap", "05000"),
                "06": ("06088", "Nice", "06000"),
                "13": ("13055", "Marseille", "13006"),
                "83": ("83137", "Toulon", "83000"),
                "84": ("84007", "Avignon", "84000"),
            }[code]
            pool.append(
                Applicant(
                    "PersonneMorale",
                    siret_of(siren),
                    nom,
                    cj,
                    "Région" if niveau == "region" else "Département",
                    chef[0],
                    chef[1],
                    chef[2],
                    chef[0][:2],
                    pop,
                )
            )
        self._rng.shuffle(pool)
        self._applicants = pool
        del epci_by_siren

    def _tricky(self, index: int) -> Applicant | None:
        """Unusual applicants, placed at fixed positions of the general démarche."""
        r = self._rng
        if index == 3:
            return Applicant(
                "PersonneMorale",
                siret_of("251300521"),
                "Syndicat mixte numérique des Alpes",
                "7355",
                "EPCI",
                "05061",
                "Gap",
                "05000",
                "05",
                0,
            )
        if index == 7:
            return Applicant(
                "PersonneMorale",
                siret_of("775663438"),
                "Association Provence Numérique Solidaire",
                "9220",
                "Commune",
                "13001",
                "Aix-en-Provence",
                "13100",
                "13",
                0,
            )
        if index == 11:
            return Applicant(
                "PersonneMorale",
                siret_of("212000046"),
                "Commune d'Ajaccio",
                "7210",
                "Commune",
                "2A004",
                "Ajaccio",
                "20000",
                "2A",
                70817,
            )
        if index == 13:
            return Applicant(
                "PersonneMorale",
                siret_of("219740115"),
                "Commune de Saint-Denis",
                "7210",
                "Commune",
                "97411",
                "Saint-Denis",
                "97400",
                "974",
                153001,
            )
        if index == 17:
            return Applicant("PersonneMoraleIncomplete", siret_of("210600888"), "", None, "Commune", "", "", "", "", 0)
        if index == 19:
            first, last = text.person(r)
            return Applicant(
                "PersonnePhysique",
                "000000019191",
                f"{first} {last}",
                None,
                "Commune",
                "",
                "",
                "",
                "",
                0,
                person={
                    "civilite": r.choice(["M", "Mme"]),
                    "nom": last.upper(),
                    "prenom": first,
                    "email": text.email(first, last, "gmail.com"),
                },
            )
        return None

    def _next_applicant(self) -> Applicant:
        a = self._applicants[self._applicant_index % len(self._applicants)]
        self._applicant_index += 1
        return a

    def _new_file(self, number: int, filename: str, content_type: str, created: datetime) -> FileSpec:
        key = f"{number}-{self._next_file}"
        self._next_file += 1
        size = self.files_size if self.files_size is not None else self._rng.randint(2_000, 120_000)
        spec = FileSpec(key, filename, content_type, size, paris(created) or "")
        self.files[key] = spec
        return spec

    def _generate_dossier(self, key: str, index: int, *, depose: datetime | None = None) -> int:
        r = self._rng
        demarche = self.demarches[self.numbers[key]]
        self._next_db_id += r.randint(1, 40)
        db_id = self._next_db_id
        number = 4_600_000 + db_id
        applicant = (self._tricky(index) if key == "general" else None) or self._next_applicant()
        # The limite_porteur rule needs one applicant with three dossiers.
        if key == "general" and index in (21, 22) and self._applicants:
            applicant = self._applicants[0]
        if depose is None:
            if index % 50 == 49:
                depose = _at("2021-10-16T08:00:00+02:00") + timedelta(minutes=r.randint(0, 5 * 24 * 60))
            elif index == 23:
                depose = _at("2021-10-15T23:59:59+02:00")
            elif index == 29:
                depose = _at("2021-05-30T23:59:59+02:00")
            else:
                start = _at("2021-03-01T08:00:00+01:00")
                depose = start + timedelta(
                    seconds=r.randint(0, int((_at("2021-10-15T20:00:00+02:00") - start).total_seconds()))
                )
            depose = depose.replace(microsecond=r.randint(0, 999_999))
        revision = demarche.revisions[-1]
        if len(demarche.revisions) > 1:
            # The revision in force at filing time; most dossiers filed before the second one keep the first.
            later = demarche.revisions[1:]
            revision = next((rev for rev in reversed(later) if _at(rev.created_at) <= depose), later[0])
            if depose < _at(later[0].created_at) and r.random() < 0.8:
                revision = demarche.revisions[0]
        state = r.choices(STATES, weights=(18, 32, 32, 12, 6))[0]
        groupe_dep = applicant.dep if applicant.dep in dict(GROUPES) else "13"
        groupe = next(g for g in demarche.groupes if g["dep"] == groupe_dep)
        values, files_made = self._values(key, index, revision, applicant, number, depose)
        d = Dossier(
            db_id=db_id,
            number=number,
            key=key,
            revision=revision,
            groupe=groupe["number"],
            state=state,
            depose_at=depose,
            en_construction_at=depose,
            applicant=applicant,
            usager_email=text.usager_email(r, applicant.name),
            values=values,
            updated_at=depose,
            champs_updated_at=depose,
            annotations_updated_at=depose,
        )
        d.traitements.append(
            {
                "event": "depose",
                "state": "en_construction",
                "dateTraitement": paris(depose),
                "emailAgentTraitant": None,
                "motivation": None,
                "id": relay_id("Traitement", db_id),
            }
        )
        last = depose + timedelta(minutes=r.randint(5, 300))
        d.champs_updated_at = last
        if state != "en_construction":
            agent = self.instructeurs[r.choice(groupe["instructeurs"])]
            d.en_instruction_at = depose + timedelta(days=r.randint(2, 20), seconds=r.randint(0, 40000))
            d.traitements.append(
                {
                    "event": "passe_en_instruction",
                    "state": "en_instruction",
                    "dateTraitement": paris(d.en_instruction_at),
                    "emailAgentTraitant": agent,
                    "motivation": None,
                    "id": relay_id("Traitement", db_id * 10 + 1),
                }
            )
            last = d.en_instruction_at
            d.followers = [groupe["instructeurs"][0]]
            if state in CLOSING_EVENTS:
                d.processed_at = d.en_instruction_at + timedelta(days=r.randint(10, 60), seconds=r.randint(0, 9999))
                d.motivation = text.motivation(r, state)
                d.traitements.append(
                    {
                        "event": CLOSING_EVENTS[state],
                        "state": state,
                        "dateTraitement": paris(d.processed_at),
                        "emailAgentTraitant": agent,
                        "motivation": d.motivation,
                        "id": relay_id("Traitement", db_id * 10 + 2),
                    }
                )
                last = d.processed_at
                d.archived = r.random() < 0.12
            self._annotate(d, r)
            last = max(last, d.annotations_updated_at)
        d.updated_at = last + timedelta(seconds=r.randint(1, 3600), microseconds=r.randint(0, 999_999))
        del files_made
        self.dossiers[number] = d
        self.generation += 1
        return number

    def _annotate(self, d: Dossier, r: random.Random) -> None:
        base = stable(d.key, "avis") - 901
        subvention = d.values.get(stable(d.key, "subvention")) or 0
        if r.random() < 0.75:
            avis = {"accepte": "Favorable", "refuse": "Défavorable"}.get(d.state) or r.choice(
                ["Favorable", "Favorable", "Réservé"]
            )
            d.values[base + 901] = avis
            if avis != "Défavorable":
                d.values[base + 902] = float(round(min(subvention, 30000) * r.choice([1, 1, 0.8, 0.5]), 2))
            if r.random() < 0.4:
                d.values[base + 903] = text.comment(r, avis)
            d.annotations_updated_at = (d.en_instruction_at or d.depose_at) + timedelta(days=r.randint(1, 9))

    def _values(
        self, key: str, index: int, revision: Revision, a: Applicant, number: int, depose: datetime
    ) -> tuple[dict[int, Any], int]:
        r = self._rng

        def s(role: str) -> int:
            return stable(key, role)

        v: dict[int, Any] = {}
        v[s("type_collectivite")] = a.kind
        v[s("population")] = a.population if a.population else None
        multi = (a.kind in ("Commune", "EPCI") and r.random() < 0.15) or index in (31, 33)
        v[s("multi_porteur")] = multi
        partners: list[Row] = []
        if (multi and index != 31) or index == 37:
            for _ in range(r.randint(1, 3)):
                p = self._applicants[r.randrange(len(self._applicants))]
                partners.append(self._row({s("partenaire_nom"): p.name, s("partenaire_siret"): p}))
            if index == 33:
                partners.append(
                    self._row(
                        {
                            s("partenaire_nom"): "Syndicat mixte numérique des Alpes",
                            s("partenaire_siret"): self._tricky(3),
                        }
                    )
                )
        v[s("partenaires")] = partners
        first, last = text.person(r)
        v[s("contact_nom")] = "" if index == 35 else f"{first} {last}"
        v[s("contact_email")] = text.email(first, last, text.domain(a.name))
        v[s("contact_tel")] = text.phone(r) if r.random() < 0.85 else None
        project = text.project(r, index, key)
        v[s("intitule")] = project.title
        v[s("thematique")] = project.theme
        v[s("description")] = project.description
        v[s("objectifs")] = project.objectives
        v[s("solution")] = project.solution
        v[s("libre")] = project.free_software
        v[s("inscription")] = project.inscriptions
        end = date(2022, r.randint(1, 12), r.randint(1, 28)) if index % 23 != 5 else date(2023, 6, 30)
        v[s("date_fin")] = end.isoformat()
        rows = []
        for nature, label, amount in project.expenses:
            rows.append(
                self._row({s("depense_nature"): nature, s("depense_description"): label, s("depense_montant"): amount})
            )
        v[s("depenses")] = rows
        total = round(sum(e[2] for e in project.expenses), 2)
        if index % 41 == 9:
            total = round(total + r.choice([500.0, 1250.0, -800.0]), 2)
        v[s("cout_total")] = total
        rate = r.choice([0.5, 0.6, 0.7, 0.8, 0.8, 0.8])
        sub: float | None = round(total * rate, 2)
        if index % 53 == 15:
            sub = round(total * 1.1, 2)
        if a.kind == "Commune" and sub is not None and sub > 30_000:
            # Communes read the call's cap and mostly stay under it.
            sub = 30_000.0 - r.randint(0, 40) * 100
        if a.kind == "Commune" and index % 37 == 12:
            sub = max(sub or 0.0, 32_000.0 + r.randint(0, 20) * 500)
            v[s("cout_total")] = max(total, round(sub / 0.8, 2))
        if index == 43:
            sub = None
        v[s("subvention")] = sub
        v[s("autres_financements")] = round(total * 0.1, 2) if r.random() < 0.3 else None
        created = depose - timedelta(minutes=r.randint(5, 600))
        made = 0

        def attach(role: str, name: str, present: bool) -> None:
            nonlocal made
            if present:
                v[s(role)] = [self._new_file(number, name, "application/pdf", created)]
                made += 1
            else:
                v[s(role)] = []

        slug = text.slug(a.name)[:30] or "dossier"
        attach("piece_presentation", f"presentation_projet_{slug}.pdf", index % 29 != 4)
        attach("piece_annexe1", "Annexe 1 - cahier des charges.pdf", index % 31 != 6)
        needs_quote = any(
            e[0].startswith(("Étude", "Accompagnement", "Développement", "Formation")) for e in project.expenses
        )
        attach("piece_devis", f"devis_{slug}.pdf", needs_quote and index % 19 != 8)
        attach("piece_deliberation", "deliberation_conseil.pdf", multi and r.random() < 0.7)
        if key == "labo":
            v[s("labo_nom")] = "" if index == 5 else r.choice(text.LABOS)
            attach("labo_lettre", "lettre_engagement_labo.pdf", index != 7)
        if key == "general" and 0 < index < 7 * len(HOSTILE_FILENAMES) and index % 7 == 1:
            hostile = HOSTILE_FILENAMES[index // 7 % len(HOSTILE_FILENAMES)]
            v[s("piece_devis")] = [*v[s("piece_devis")], self._new_file(number, hostile, "application/pdf", created)]
        # Drop values the revision has no descriptor for.
        known = revision.all_descriptors()
        date_fin = known.get(s("date_fin"))
        if date_fin is not None and date_fin.kind == "Text" and v.get(s("date_fin")):
            end = date.fromisoformat(v[s("date_fin")])
            v[s("date_fin")] = f"fin {FRENCH_MONTHS[end.month - 1]} {end.year}"
        return {k: val for k, val in v.items() if k in known}, made

    def _row(self, values: dict[int, Any]) -> Row:
        self._next_row_id += 1
        return Row(self._next_row_id, values)

    def _add_deletions(self, made: dict[str, list[int]]) -> None:
        """Extra dossiers in every deletion state, on top of the visible counts."""
        r = self._rng
        plan = [
            ("administration", False),
            ("administration", False),
            ("usager", False),
            ("expired", False),
            ("administration", True),
            ("usager", True),
        ]
        for key, numbers in made.items():
            if len(numbers) < 10:
                continue
            for i, (by, purge) in enumerate(plan if key == "general" else plan[::3]):
                number = self._generate_dossier(key, 1000 + i)
                d = self.dossiers[number]
                if by == "usager" and d.state != "en_construction":
                    self._force_state(d, "en_construction")
                when = d.updated_at + timedelta(days=r.randint(1, 20))
                self._hide_at(d, by, when)
                if purge:
                    self._purge_at(d, when + timedelta(days=14))

    # ------------------------------------------------------------------ rendering
    def render(self, d: Dossier) -> dict[str, Any]:
        """The Dossier object as the resolvers serve it, built once per change."""
        cached = d._rendered
        if cached is not None:
            return cached
        demarche = self.demarches[self.numbers[d.key]]
        groupe = next(g for g in demarche.groupes if g["number"] == d.groupe)
        out: dict[str, Any] = {
            "id": d.id,
            "number": d.number,
            "state": d.state,
            "archived": d.archived,
            "prefilled": False,
            "connectionUsager": "password",
            "dateDepot": paris(d.depose_at),
            "datePassageEnConstruction": paris(d.en_construction_at),
            "datePassageEnInstruction": paris(d.en_instruction_at),
            "dateTraitement": paris(d.processed_at),
            "dateDerniereModification": paris(d.updated_at),
            "dateDerniereModificationChamps": paris(d.champs_updated_at),
            "dateDerniereModificationAnnotations": paris(d.annotations_updated_at),
            "dateExpiration": None
            if d.state == "en_instruction"
            else paris((d.processed_at or d.depose_at) + timedelta(days=365)),
            "dateSuppressionParUsager": paris(d.hidden_by_user_at),
            "dateSuppressionParAdministration": paris(d.hidden_by_administration_at),
            "motivation": d.motivation,
            "revision": self.revision_object(d.revision),
            "groupeInstructeur": self.groupe_object(groupe),
            "usager": {"id": relay_id("User", d.db_id), "email": d.usager_email},
            "instructeurs": [{"id": relay_id("Instructeur", i), "email": self.instructeurs[i]} for i in d.followers],
            "demandeur": d.applicant.to_graphql(),
            "traitements": list(d.traitements),
            "champs": self._render_champs(d, d.revision.champs) + [dict(c) for c in d.extra_champs],
            "annotations": self._render_champs(d, d.revision.annotations),
        }
        if d.bad_data and out["champs"]:
            # A value that breaks a non-null field: DS nulls the dossier (invalid_null), see engine._format.
            out["champs"][0] = {**out["champs"][0], "label": None}
        d._rendered = out
        return out

    def revision_object(self, rev: Revision) -> dict[str, Any]:
        """The Revision object (built once per revision)."""
        cached = self._revision_objects.get(rev.number)
        if cached is None:
            cached = self._revision_objects[rev.number] = self._build_revision_object(rev)
        return cached

    def _build_revision_object(self, rev: Revision) -> dict[str, Any]:
        return {
            "id": rev.id,
            "dateCreation": rev.created_at,
            "datePublication": rev.created_at,
            "champDescriptors": [c.to_graphql() for c in rev.champs],
            "annotationDescriptors": [c.to_graphql() for c in rev.annotations],
        }

    def groupe_object(self, g: dict[str, Any]) -> dict[str, Any]:
        """The GroupeInstructeur object."""
        return {
            "id": relay_id("GroupeInstructeur", g["number"]),
            "number": g["number"],
            "label": g["label"],
            "closed": g["closed"],
            "instructeurs": [
                {"id": relay_id("Instructeur", i), "email": self.instructeurs[i]} for i in g["instructeurs"]
            ],
        }

    def _render_champs(self, d: Dossier, descriptors: list[Descriptor], row: Row | None = None) -> list[dict[str, Any]]:
        out = []
        values = row.values if row else d.values
        for desc in descriptors:
            if desc.condition is not None and row is None:
                stable_id, expected = desc.condition
                if d.values.get(stable_id) is not expected:
                    continue
            value = values.get(desc.stable_id)
            updated = d.champ_updated.get(desc.stable_id) or (
                d.annotations_updated_at if desc.stable_id % 1000 >= 900 else d.champs_updated_at
            )
            champ: dict[str, Any] = {
                "_kind": desc.kind,
                "id": champ_id(desc.stable_id, row.row_id if row else None),
                "champDescriptorId": desc.id,
                "label": desc.label,
                "updatedAt": paris(updated),
                "prefilled": False,
            }
            self._fill(champ, desc, value, d)
            out.append(champ)
        return out

    def _fill(self, champ: dict[str, Any], desc: Descriptor, value: Any, d: Dossier) -> None:
        kind = desc.kind
        if kind == "Repetition":
            rows = value or []
            champ["rows"] = [
                {"id": relay_id("Row", row.row_id), "champs": self._render_champs(d, desc.children, row)}
                for row in rows
            ]
            champ["stringValue"] = (
                ""
                if not rows
                else "\n".join(" ; ".join(c["stringValue"] or "" for c in r["champs"]) for r in champ["rows"])
            )
        elif kind == "PieceJustificative":
            files = value or []
            champ["files"] = files
            champ["stringValue"] = ", ".join(f.filename for f in files)
        elif kind == "HeaderSection":
            champ["level"] = desc.level
            champ["stringValue"] = ""
        elif kind in ("YesNo", "Checkbox"):
            champ["value"] = value
            champ["stringValue"] = "" if value is None else ("Oui" if value else "Non")
        elif kind == "IntegerNumber":
            champ["value"] = None if value is None else str(value)
            champ["stringValue"] = "" if value is None else str(value)
        elif kind == "DecimalNumber":
            champ["value"] = value
            champ["stringValue"] = "" if value is None else (f"{value:.15g}")
        elif kind == "Date":
            champ["date"] = value
            champ["stringValue"] = "" if not value else text.french_date(value)
        elif kind == "MultipleDropDownList":
            champ["values"] = list(value or [])
            champ["stringValue"] = ", ".join(value or [])
        elif kind == "Siret":
            champ["etablissement"] = value.to_graphql() if isinstance(value, Applicant) else None
            champ["stringValue"] = value.siret if isinstance(value, Applicant) else ""
        else:
            champ["value"] = value if value != "" else None
            champ["stringValue"] = value or ""

    # ------------------------------------------------------------------ queries
    def dossier(self, number: int) -> Dossier:
        """A dossier by number (visible or not); KeyError if unknown or purged."""
        return self.dossiers[number]

    def visible_numbers(self, key: str) -> list[int]:
        """Numbers of the dossiers the administration sees in a démarche, by filing order."""
        with self.lock:
            return [
                d.number
                for d in sorted(self.dossiers.values(), key=lambda d: (d.depose_at, d.db_id))
                if d.key == key and d.visible
            ]

    def demarche_of(self, number: int) -> Demarche:
        """The démarche of a dossier."""
        return self.demarches[self.numbers[self.dossiers[number].key]]

    # ------------------------------------------------------------------ changes (as the real server does them)
    def _touch(self, d: Dossier) -> datetime:
        now = datetime.now(UTC)
        d.updated_at = max(now, d.updated_at + ONE_US)
        self._changed(d)
        return d.updated_at

    def _changed(self, d: Dossier) -> None:
        d._rendered = None
        self.generation += 1

    def _descriptor(self, d: Dossier, id_or_label: str | int) -> Descriptor:
        for desc in d.revision.all_descriptors().values():
            if id_or_label in (desc.id, desc.label, desc.stable_id):
                return desc
        raise KeyError(f"no champ {id_or_label!r} in dossier {d.number}")

    def edit_champ(self, number: int, descriptor: str | int, value: Any) -> None:
        """Change a top-level champ or annotation (by descriptor id, label or stable id)."""
        with self.lock:
            d = self.dossiers[number]
            desc = self._descriptor(d, descriptor)
            d.values[desc.stable_id] = value
            now = self._touch(d)
            d.champ_updated[desc.stable_id] = now
            if desc.stable_id % 1000 >= 900:
                d.annotations_updated_at = now
            else:
                d.champs_updated_at = now

    def set_annotation(self, number: int, stable_id: int, value: Any) -> None:
        """Write an annotation value (the mutation's effect)."""
        self.edit_champ(number, stable_id, value)

    def _force_state(self, d: Dossier, state: str) -> None:
        d.state = state
        if state == "en_construction":
            d.en_instruction_at = d.processed_at = None
            d.motivation = None
            d.traitements = d.traitements[:1]
        self._changed(d)

    def set_state(self, number: int, state: str, motivation: str | None = None) -> None:
        """Move a dossier to `state`, recording a traitement like the instructeur's action would."""
        if state not in STATES:
            raise ValueError(state)
        with self.lock:
            d = self.dossiers[number]
            now = self._touch(d)
            previous = d.state
            d.state = state
            event = {
                "en_construction": "repasse_en_construction",
                "en_instruction": "passe_en_instruction" if previous == "en_construction" else "repasse_en_instruction",
            }.get(state) or CLOSING_EVENTS[state]
            if state == "en_construction":
                d.en_construction_at = now
            elif state == "en_instruction":
                d.en_instruction_at = now
                d.processed_at = None
            else:
                d.processed_at = now
                d.motivation = motivation
            d.traitements.append(
                {
                    "event": event,
                    "state": state,
                    "dateTraitement": paris(now),
                    "emailAgentTraitant": None,
                    "motivation": motivation,
                    "id": relay_id("Traitement", d.db_id * 10 + len(d.traitements)),
                }
            )

    def add_dossier(self, key: str) -> int:
        """File a new dossier now in démarche `key`; returns its number."""
        with self.lock:
            number = self._generate_dossier(key, 5000 + len(self.dossiers), depose=datetime.now(UTC))
            d = self.dossiers[number]
            self._force_state(d, "en_construction")
            d.archived = False
            d.champs_updated_at = d.annotations_updated_at = d.depose_at
            d.values = {k: v for k, v in d.values.items() if k % 1000 < 900}
            d.updated_at = d.depose_at
            self._touch(d)
            return number

    def _hide_at(self, d: Dossier, by: str, when: datetime) -> None:
        if by == "administration":
            d.hidden_by_administration_at = when
        elif by == "usager":
            d.hidden_by_user_at = when
        elif by == "expired":
            d.hidden_by_expired_at = when
        else:
            raise ValueError(by)
        d.updated_at = max(when, d.updated_at + ONE_US)
        self._changed(d)

    def hide(self, number: int, by: str = "administration") -> None:
        """Hide a dossier: by "administration", by its "usager", or by "expired" retention."""
        with self.lock:
            d = self.dossiers[number]
            self._hide_at(d, by, max(datetime.now(UTC), d.updated_at + ONE_US))

    def restore(self, number: int) -> None:
        """Undo a hide: the dossier comes back in `dossiers` with a fresh updated_at."""
        with self.lock:
            d = self.dossiers[number]
            d.hidden_by_administration_at = d.hidden_by_user_at = d.hidden_by_expired_at = None
            self._touch(d)

    def _purge_at(self, d: Dossier, when: datetime) -> DeletedRecord:
        if d.hidden_by_user_at and d.state == "en_construction" and not d.hidden_by_administration_at:
            reason, deleted_at = "user_request", d.hidden_by_user_at  # backdated, like the real server
        elif d.hidden_by_expired_at:
            reason, deleted_at = "expired", when
        else:
            reason, deleted_at = "instructeur_request", when
        rec = DeletedRecord(d.db_id, d.number, d.key, d.state, reason, deleted_at)
        self.deleted[self.numbers[d.key]].append(rec)
        del self.dossiers[d.number]
        self.generation += 1
        return rec

    def purge(self, number: int) -> DeletedRecord:
        """Delete a dossier for good (hiding it first if needed); it moves to deletedDossiers."""
        with self.lock:
            d = self.dossiers[number]
            if d.visible and not d.hidden_by_user_at:
                d.hidden_by_administration_at = datetime.now(UTC)
            return self._purge_at(d, datetime.now(UTC))

    def move_groupe(self, number: int, groupe_number: int) -> None:
        """Move a dossier to another groupe instructeur of its démarche."""
        with self.lock:
            d = self.dossiers[number]
            groupes = {g["number"] for g in self.demarche_of(number).groupes}
            if groupe_number not in groupes:
                raise KeyError(groupe_number)
            d.groupe = groupe_number
            self._touch(d)

    def archive(self, number: int, archived: bool = True) -> None:
        """Archive (or unarchive) a dossier."""
        with self.lock:
            d = self.dossiers[number]
            d.archived = archived
            self._touch(d)

    def attach_file(
        self, number: int, descriptor: str | int, filename: str, content_type: str = "application/pdf"
    ) -> FileSpec:
        """Add an attachment (any filename, hostile ones included) to a PJ champ."""
        with self.lock:
            d = self.dossiers[number]
            desc = self._descriptor(d, descriptor)
            spec = self._new_file(number, filename, content_type, datetime.now(UTC))
            d.values[desc.stable_id] = [*(d.values.get(desc.stable_id) or []), spec]
            now = self._touch(d)
            d.champ_updated[desc.stable_id] = now
            d.champs_updated_at = now
            return spec

    # ------------------------------------------------------------------ what real data does to DS
    def set_bad_data(self, number: int, bad: bool = True) -> None:
        """Data DS cannot serialise (or repaired), without touching updated_at, as DS's repairs do."""
        with self.lock:
            d = self.dossiers[number]
            d.bad_data = bad
            self._changed(d)

    def add_raw_champ(self, number: int, champ: dict[str, Any]) -> None:
        """Append a champ as given (`_kind` picks its GraphQL type: "RNA", "DossierLink" with `linked`…)."""
        with self.lock:
            d = self.dossiers[number]
            d.extra_champs.append(champ)
            now = self._touch(d)
            d.champs_updated_at = now

    def edit_champ_uncommitted(self, number: int, descriptor: str | int, value: Any) -> None:
        """Save a change whose transaction commits later (`commit`): updated_at is stamped now, at save."""
        with self.lock:
            d = self.dossiers[number]
            desc = self._descriptor(d, descriptor)
            d.uncommitted = (desc.stable_id, value, max(datetime.now(UTC), d.updated_at + ONE_US))

    def commit(self, number: int) -> None:
        """Commit the change saved earlier: it becomes visible with its earlier updated_at."""
        with self.lock:
            d = self.dossiers[number]
            if d.uncommitted is None:
                return
            stable_id, value, stamped = d.uncommitted
            d.uncommitted = None
            d.values[stable_id] = value
            d.updated_at = d.champs_updated_at = d.champ_updated[stable_id] = stamped
            self._changed(d)

    def complete_company(self, number: int) -> None:
        """API Entreprise answers again: the demandeur becomes a PersonneMorale, the dossier untouched
        (DS app/models/etablissement.rb)."""
        with self.lock:
            d = self.dossiers[number]
            a = d.applicant
            if a.typename == "PersonneMoraleIncomplete":
                d.applicant = Applicant("PersonneMorale", a.siret, "COMMUNE DE NICE", "7210", "Commune", "06088",
                                        "Nice", "06000", "06", 342669)
                self._changed(d)

    def groupe_instructeurs(self, number: int) -> list[int]:
        """Instructeur ids (the integer part) of a dossier's groupe."""
        d = self.dossiers[number]
        return list(next(g for g in self.demarche_of(number).groupes if g["number"] == d.groupe)["instructeurs"])


__all__ = ["PARIS", "Dataset", "DeletedRecord", "Dossier", "paris", "relay_id", "siret_of"]
