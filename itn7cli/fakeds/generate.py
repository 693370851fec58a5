"""The generated dataset: démarches and groupes, then dossiers with their form values, files and history.

Deterministic: every draw comes from one seeded random stream, in a fixed order (changing the order
changes every dossier after it).
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import text
from .applicants import Applicant, load_refdata, pool, tricky
from .files import FileSpec
from .forms import GROUPES, Revision, revisions_for, stable
from .model import CLOSING_EVENTS, STATES, Demarche, Dossier, Row, at, paris, traitement

if TYPE_CHECKING:
    from .dataset import Registry

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
# Deletion states added on top of the visible dossiers: (hidden by, then purged).
DELETIONS = (("administration", False), ("administration", False), ("usager", False), ("expired", False),
             ("administration", True), ("usager", True))


def fill(ds: Registry, counts: dict[str, int], numbers: dict[str, int]) -> None:
    """Both démarches of an empty dataset, `counts` visible dossiers each, and a few hidden or purged."""
    _demarches(ds, numbers)
    plan = [("general", i) for i in range(counts["general"])] + [("labo", i) for i in range(counts["labo"])]
    # Interleave démarches by filing date order so dossier numbers look real.
    ds.factory.rng.shuffle(plan)
    made: dict[str, list[int]] = {"general": [], "labo": []}
    for key, index in plan:
        made[key].append(ds.factory.dossier(key, index))
    for key, numbers_made in made.items():
        if len(numbers_made) >= 10:
            _add_deletions(ds, key)


def _demarches(ds: Registry, numbers: dict[str, int]) -> None:
    instructeur_n = 1
    for key in ("general", "labo"):
        number = numbers[key]
        groupes = []
        for i, (dep, label) in enumerate(GROUPES):
            members = []
            for _ in range(2 + (i + len(key)) % 2):
                first, last = text.person(ds.factory.rng)
                iid = 1000 + instructeur_n
                instructeur_n += 1
                ds.instructeurs[iid] = f"{text.slug(first)}.{text.slug(last)}@paca.pref.gouv.fr"
                members.append(iid)
            groupes.append({"number": number * 10 + i + 1, "dep": dep, "label": label, "closed": False,
                            "instructeurs": members})
        first_rev = 9000 + (number % 1000) * 10
        ds.demarches[number] = Demarche(key, number, text.TITLES[key], revisions_for(key, first_rev), groupes,
                                        at("2021-02-15T10:00:00+01:00"))
        ds.numbers[key] = number
        ds.deleted[number] = []


def _add_deletions(ds: Registry, key: str) -> None:
    """Extra dossiers of démarche `key` in every deletion state."""
    r = ds.factory.rng
    for i, (by, purge) in enumerate(DELETIONS if key == "general" else DELETIONS[::3]):
        d = ds.dossiers[ds.factory.dossier(key, 1000 + i)]
        if by == "usager" and d.state != "en_construction":
            d.force_state("en_construction")
        when = d.updated_at + timedelta(days=r.randint(1, 20))
        d.hide_at(by, when)
        if purge:
            ds.remove(d, when + timedelta(days=14))


class Factory:
    """Draws the dataset's new dossiers, files and repetition rows, numbered as DS numbers them."""

    def __init__(self, ds: Registry, seed: int) -> None:
        self.ds = ds
        self.rng = random.Random(seed)
        self.applicants = pool(load_refdata(), self.rng)
        self._applicant_index = 0
        self._db_id = 1000
        self._row_id = 70000
        self._file = 1

    def next_applicant(self) -> Applicant:
        """The next applicant of the pool, round and round."""
        a = self.applicants[self._applicant_index % len(self.applicants)]
        self._applicant_index += 1
        return a

    def new_file(self, number: int, filename: str, content_type: str, created: datetime) -> FileSpec:
        """A new attachment of dossier `number`, registered in the dataset's files."""
        key = f"{number}-{self._file}"
        self._file += 1
        size = self.ds.files_size if self.ds.files_size is not None else self.rng.randint(2_000, 120_000)
        spec = FileSpec(key, filename, content_type, size, paris(created) or "")
        self.ds.files[key] = spec
        return spec

    def row(self, values: dict[int, Any]) -> Row:
        """A new row of a repetition block."""
        self._row_id += 1
        return Row(self._row_id, values)

    def dossier(self, key: str, index: int, *, depose: datetime | None = None) -> int:
        """Dossier `index` of démarche `key`, filed at `depose` (drawn if None), added to the dataset; its number."""
        r, ds = self.rng, self.ds
        demarche = ds.demarches[ds.numbers[key]]
        self._db_id += r.randint(1, 40)
        db_id = self._db_id
        number = 4_600_000 + db_id
        applicant = (tricky(index, r) if key == "general" else None) or self.next_applicant()
        # The limite_porteur rule needs one applicant with three dossiers.
        if key == "general" and index in (21, 22) and self.applicants:
            applicant = self.applicants[0]
        if depose is None:
            depose = _filing_date(index, r)
        revision = _revision_at(demarche, depose, r)
        state = r.choices(STATES, weights=(18, 32, 32, 12, 6))[0]
        groupe_dep = applicant.dep if applicant.dep in dict(GROUPES) else "13"
        groupe = next(g for g in demarche.groupes if g["dep"] == groupe_dep)
        values = form_values(self, key, index, revision, applicant, number, depose)
        d = Dossier(db_id=db_id, number=number, key=key, revision=revision, groupe=groupe["number"], state=state,
                    depose_at=depose, en_construction_at=depose, applicant=applicant,
                    usager_email=text.usager_email(r, applicant.name), values=values, updated_at=depose,
                    champs_updated_at=depose, annotations_updated_at=depose)
        d.traitements.append(traitement("depose", "en_construction", depose, None, None, db_id))
        _history(d, r, groupe, ds.instructeurs)
        ds.dossiers[number] = d
        ds.generation += 1
        return number


def _filing_date(index: int, r: random.Random) -> datetime:
    if index % 50 == 49:
        depose = at("2021-10-16T08:00:00+02:00") + timedelta(minutes=r.randint(0, 5 * 24 * 60))
    elif index == 23:
        depose = at("2021-10-15T23:59:59+02:00")
    elif index == 29:
        depose = at("2021-05-30T23:59:59+02:00")
    else:
        start = at("2021-03-01T08:00:00+01:00")
        depose = start + timedelta(seconds=r.randint(0, int((at("2021-10-15T20:00:00+02:00") - start).total_seconds())))
    return depose.replace(microsecond=r.randint(0, 999_999))


def _revision_at(demarche: Demarche, depose: datetime, r: random.Random) -> Revision:
    """The revision in force at filing time; most dossiers filed before the second one keep the first."""
    revision = demarche.revisions[-1]
    if len(demarche.revisions) > 1:
        later = demarche.revisions[1:]
        revision = next((rev for rev in reversed(later) if at(rev.created_at) <= depose), later[0])
        if depose < at(later[0].created_at) and r.random() < 0.8:
            revision = demarche.revisions[0]
    return revision


def _history(d: Dossier, r: random.Random, groupe: dict[str, Any], instructeurs: dict[int, str]) -> None:
    """What happened to a dossier after filing, up to its `state`: instruction, decision, annotations."""
    last = d.depose_at + timedelta(minutes=r.randint(5, 300))
    d.champs_updated_at = last
    if d.state != "en_construction":
        agent = instructeurs[r.choice(groupe["instructeurs"])]
        d.en_instruction_at = d.depose_at + timedelta(days=r.randint(2, 20), seconds=r.randint(0, 40000))
        d.traitements.append(traitement("passe_en_instruction", "en_instruction", d.en_instruction_at, agent, None,
                                        d.db_id * 10 + 1))
        last = d.en_instruction_at
        d.followers = [groupe["instructeurs"][0]]
        if d.state in CLOSING_EVENTS:
            d.processed_at = d.en_instruction_at + timedelta(days=r.randint(10, 60), seconds=r.randint(0, 9999))
            d.motivation = text.motivation(r, d.state)
            d.traitements.append(traitement(CLOSING_EVENTS[d.state], d.state, d.processed_at, agent, d.motivation,
                                            d.db_id * 10 + 2))
            last = d.processed_at
            d.archived = r.random() < 0.12
        _annotate(d, r)
        last = max(last, d.annotations_updated_at)
    d.updated_at = last + timedelta(seconds=r.randint(1, 3600), microseconds=r.randint(0, 999_999))


def _annotate(d: Dossier, r: random.Random) -> None:
    """The groupe's avis, proposed amount and comment on three dossiers in four."""
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



def form_values(f: Factory, key: str, index: int, revision: Revision, a: Applicant, number: int,
                depose: datetime) -> dict[int, Any]:
    """The values the applicant typed in the form of `revision`, attachments included (drawn from `f`)."""
    r = f.rng

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
            p = f.applicants[r.randrange(len(f.applicants))]
            partners.append(f.row({s("partenaire_nom"): p.name, s("partenaire_siret"): p}))
        if index == 33:
            partners.append(
                f.row(
                    {
                        s("partenaire_nom"): "Syndicat mixte numérique des Alpes",
                        s("partenaire_siret"): tricky(3, r),
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
            f.row({s("depense_nature"): nature, s("depense_description"): label, s("depense_montant"): amount})
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

    def attach(role: str, name: str, present: bool) -> None:
        v[s(role)] = [f.new_file(number, name, "application/pdf", created)] if present else []

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
        v[s("piece_devis")] = [*v[s("piece_devis")], f.new_file(number, hostile, "application/pdf", created)]
    # Drop values the revision has no descriptor for.
    known = revision.all_descriptors()
    date_fin = known.get(s("date_fin"))
    if date_fin is not None and date_fin.kind == "Text" and v.get(s("date_fin")):
        end = date.fromisoformat(v[s("date_fin")])
        v[s("date_fin")] = f"fin {FRENCH_MONTHS[end.month - 1]} {end.year}"
    return {k: val for k, val in v.items() if k in known}


__all__ = ["Factory", "fill", "form_values"]
