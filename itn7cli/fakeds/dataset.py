"""The in-memory dataset of the fake DS server: démarches, dossiers, deletions, and the changes tests drive.

Generation lives in generate.py, a dossier's own life in model.py, the API's view of it in render.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from . import render as views
from .applicants import Applicant, siret_of
from .files import ContentFactory, FileSpec
from .generate import Factory, fill
from .model import ONE_US, PARIS, DeletedRecord, Demarche, Dossier, paris, relay_id


class Registry:
    """Démarches, dossiers and purged records in memory: the lock that guards them, the reads the resolvers
    make, and deletions, which move a dossier from `dossiers` to `deleted`.

    `generation` counts the changes of what the API shows, so that caches of answers know they are stale.
    """

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
        self.revision_objects: dict[int, dict[str, Any]] = {}
        self.generation = 0
        self.factory = Factory(self, seed)

    # ------------------------------------------------------------------ queries
    def render(self, d: Dossier) -> dict[str, Any]:
        """The Dossier object as the resolvers serve it, built once per change."""
        return views.dossier_object(self, d)

    def dossier(self, number: int) -> Dossier:
        """A dossier by number (visible or not); KeyError if unknown or purged."""
        return self.dossiers[number]

    def visible_numbers(self, key: str) -> list[int]:
        """Numbers of the dossiers the administration sees in a démarche, by filing order."""
        with self.lock:
            ordered = sorted(self.dossiers.values(), key=lambda d: (d.depose_at, d.db_id))
            return [d.number for d in ordered if d.key == key and d.visible]

    def demarche_of(self, number: int) -> Demarche:
        """The démarche of a dossier."""
        return self.demarches[self.numbers[self.dossiers[number].key]]

    def groupe_instructeurs(self, number: int) -> list[int]:
        """Instructeur ids (the integer part) of a dossier's groupe."""
        d = self.dossiers[number]
        return list(next(g for g in self.demarche_of(number).groupes if g["number"] == d.groupe)["instructeurs"])

    @contextmanager
    def _change(self, number: int) -> Iterator[Dossier]:
        """The dossier to change, under the lock; what the API shows of it is built again afterwards."""
        with self.lock:
            d = self.dossiers[number]
            yield d
            d._rendered = None
            self.generation += 1

    # ------------------------------------------------------------------ deletions
    def hide(self, number: int, by: str = "administration") -> None:
        """Hide a dossier: by "administration", by its "usager", or by "expired" retention."""
        with self._change(number) as d:
            d.hide_at(by, max(datetime.now(UTC), d.updated_at + ONE_US))

    def restore(self, number: int) -> None:
        """Undo a hide: the dossier comes back in `dossiers` with a fresh updated_at."""
        with self._change(number) as d:
            d.hidden_by_administration_at = d.hidden_by_user_at = d.hidden_by_expired_at = None
            d.touch()

    def purge(self, number: int) -> DeletedRecord:
        """Delete a dossier for good (hiding it first if needed); it moves to deletedDossiers."""
        with self.lock:
            d = self.dossiers[number]
            if d.visible and not d.hidden_by_user_at:
                d.hidden_by_administration_at = datetime.now(UTC)
            return self.remove(d, datetime.now(UTC))

    def remove(self, d: Dossier, when: datetime) -> DeletedRecord:
        """Moves a dossier from `dossiers` to `deleted`, purged at `when`."""
        with self.lock:
            rec = DeletedRecord.of(d, when)
            self.deleted[self.numbers[d.key]].append(rec)
            del self.dossiers[d.number]
            self.generation += 1
            return rec


class Dataset(Registry):
    """The fake's world: a generated registry, and the changes tests drive, made like the real server would."""

    @classmethod
    def generate(cls, seed: int = 1, counts: dict[str, int] | None = None, numbers: dict[str, int] | None = None,
                 files_size: int | None = None) -> Dataset:
        """A realistic, deterministic dataset for both démarches.

        `counts` are the dossiers visible to the administration per démarche; a few more are
        generated hidden or purged (see `deleted`). `files_size` forces the size of every attachment
        (bytes), e.g. 20 MB for download benchmarks; by default sizes range from 2 KB to 120 KB.
        """
        ds = cls(seed, files_size)
        fill(ds, {"general": 300, "labo": 60, **(counts or {})}, {"general": 84211, "labo": 84212, **(numbers or {})})
        return ds

    # ------------------------------------------------------------------ changes (as the real server does them)
    def edit_champ(self, number: int, descriptor: str | int, value: Any) -> None:
        """Change a top-level champ or annotation (by descriptor id, label or stable id)."""
        with self._change(number) as d:
            d.edit(d.descriptor(descriptor), value)

    def set_annotation(self, number: int, stable_id: int, value: Any) -> None:
        """Write an annotation value (the mutation's effect)."""
        self.edit_champ(number, stable_id, value)

    def set_state(self, number: int, state: str, motivation: str | None = None) -> None:
        """Move a dossier to `state`, recording a traitement like the instructeur's action would."""
        with self._change(number) as d:
            d.move_to(state, motivation)

    def add_dossier(self, key: str) -> int:
        """File a new dossier now in démarche `key`; returns its number."""
        with self.lock, self._change(self.factory.dossier(key, 5000 + len(self.dossiers),
                                                          depose=datetime.now(UTC))) as d:
            d.force_state("en_construction")
            d.archived = False
            d.champs_updated_at = d.annotations_updated_at = d.updated_at = d.depose_at
            d.values = {k: v for k, v in d.values.items() if k % 1000 < 900}
            d.touch()
            return d.number

    def move_groupe(self, number: int, groupe_number: int) -> None:
        """Move a dossier to another groupe instructeur of its démarche."""
        with self._change(number) as d:
            if groupe_number not in {g["number"] for g in self.demarche_of(number).groupes}:
                raise KeyError(groupe_number)
            d.groupe = groupe_number
            d.touch()

    def archive(self, number: int, archived: bool = True) -> None:
        """Archive (or unarchive) a dossier."""
        with self._change(number) as d:
            d.archived = archived
            d.touch()

    def attach_file(self, number: int, descriptor: str | int, filename: str,
                    content_type: str = "application/pdf") -> FileSpec:
        """Add an attachment (any filename, hostile ones included) to a PJ champ."""
        with self._change(number) as d:
            desc = d.descriptor(descriptor)
            spec = self.factory.new_file(number, filename, content_type, datetime.now(UTC))
            d.edit(desc, [*(d.values.get(desc.stable_id) or []), spec])
            return spec

    # ------------------------------------------------------------------ what real data does to DS
    def set_bad_data(self, number: int, bad: bool = True) -> None:
        """Data DS cannot serialise (or repaired), without touching updated_at, as DS's repairs do."""
        with self._change(number) as d:
            d.bad_data = bad

    def add_raw_champ(self, number: int, champ: dict[str, Any]) -> None:
        """Append a champ as given (`_kind` picks its GraphQL type: "RNA", "DossierLink" with `linked`…)."""
        with self._change(number) as d:
            d.extra_champs.append(champ)
            d.champs_updated_at = d.touch()

    def edit_champ_uncommitted(self, number: int, descriptor: str | int, value: Any) -> None:
        """Save a change whose transaction commits later (`commit`): updated_at is stamped now, at save."""
        with self._change(number) as d:
            d.uncommitted = (d.descriptor(descriptor).stable_id, value, max(datetime.now(UTC), d.updated_at + ONE_US))

    def commit(self, number: int) -> None:
        """Commit the change saved earlier: it becomes visible with its earlier updated_at."""
        with self._change(number) as d:
            if d.uncommitted is not None:
                stable_id, value, stamped = d.uncommitted
                d.uncommitted = None
                d.values[stable_id] = value
                d.updated_at = d.champs_updated_at = d.champ_updated[stable_id] = stamped

    def complete_company(self, number: int) -> None:
        """API Entreprise answers again: the demandeur becomes a PersonneMorale, the dossier untouched
        (DS app/models/etablissement.rb)."""
        with self._change(number) as d:
            if d.applicant.typename == "PersonneMoraleIncomplete":
                d.applicant = Applicant("PersonneMorale", d.applicant.siret, "COMMUNE DE NICE", "7210", "Commune",
                                        "06088", "Nice", "06000", "06", 342669)


__all__ = ["PARIS", "Dataset", "DeletedRecord", "Dossier", "Registry", "paris", "relay_id", "siret_of"]
