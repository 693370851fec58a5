"""The DS operations itn7 uses: a démarche's metadata, its pages of dossiers and of deletions, one
dossier by number, and the one request that opens every sync (`changes`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import ApiError
from .answers import Answer, PageError
from .pages import PAGE_SIZE, Page, name_bad_nodes
from .transport import Transport

DOSSIER_STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")


@dataclass(frozen=True)
class ChangesTarget:
    """One démarche of a `changes` request: where its incremental stream starts (and its cursor) and where
    its list of purged dossiers starts. `changes`: ask for the first page of changed dossiers (an
    incremental run); `newest`: ask for the date of the most recently updated dossier of each state (a
    full pull)."""

    number: int
    updated_since: str
    after: str | None
    deleted_since: str | None
    changes: bool = True
    newest: bool = False


@dataclass
class Changes:
    """One démarche's part of a `changes` answer: metadata (as `demarche` gives it), the first page of
    changed dossiers (None when not asked for, or not whole: a dossier DS could not serialise, which the
    usual reading then names), the first page of each deletion list (None: not read yet), and the date of
    the most recently updated dossier of each state (when asked for; a state without dossiers has none)."""

    meta: dict[str, Any]
    page: Page | None
    pending: dict[str, Any] | None
    deleted: dict[str, Any] | None
    newest: dict[str, str] = field(default_factory=dict)


class DSClient(Transport):
    """The DS API v2 for one token; knows nothing of SQLite. Documents come from `queries/` (see
    `queries.py`); they are validated against the real schema by the tests, not on every request."""

    def demarche(self, number: int) -> dict[str, Any]:
        """The démarche with all revisions, descriptors and groupes instructeurs."""
        data = self.execute("getDemarche", {"number": number})
        retention = (data.get("descriptor") or {}).get("dureeConservationDossiers")
        return {**data["demarche"], "dureeConservationDossiers": retention}

    def dossier_pages(self, number: int, updated_since: str, *, after: str | None = None,
                      state: str | None = None) -> Iterator[Page]:
        """Yields pages in keyset order until `hasNextPage` is false.

        A dossier DS cannot serialise comes back as a null node (DS app/graphql/api/v2/schema.rb
        `type_error`); a page that keeps timing out is asked for in halves down to one dossier. Either
        way the dossier is named by a query without champs, listed in `unreadable` as
        (stub node, message), and the stream moves past it."""
        first = PAGE_SIZE
        while True:
            variables: dict[str, Any] = {"number": number, "updatedSince": updated_since, "after": after,
                                         "first": first}
            if state:
                variables["state"] = state
            try:
                answer = self.answer("getDossiers", variables, partial=True)
            except PageError as exc:
                if first > 1:
                    first = max(1, first // 2)
                    continue
                stubs = self._stubs(variables)
                page = Page(stubs["pageInfo"], [None] * len(stubs["nodes"]), [None] * len(stubs["nodes"]),
                            [(stub, str(exc)) for stub in stubs["nodes"] if stub])
            else:
                page = _page_of(answer)
                if answer.bad:
                    page.unreadable = name_bad_nodes(page, self._stubs(variables)["nodes"], answer.bad)
                first = min(PAGE_SIZE, first * 2)
            yield page
            if not page.more:
                return
            after = page.info["endCursor"] or after

    def _stubs(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The same page without champs, which DS can still serialise."""
        connection: dict[str, Any] = self.execute("getDossierStubs", variables)["demarche"]["dossiers"]
        return connection

    def read_dossier(self, number: int) -> Answer:
        """One dossier by number, for re-reading: `data` is None (with `bad` errors) while DS cannot
        serialise it; `PageError` if it keeps timing out; `NotFoundError` once it is gone."""
        return self.answer("rereadDossier", {"number": number}, partial=True)

    def changes(self, targets: Sequence[ChangesTarget]) -> dict[int, Changes] | None:
        """One request for one or two démarches (`getChanges`): metadata, the first page of each deletion
        list and, as each target asks, the first page of dossiers changed since its checkpoint or the date
        of its most recently updated dossier.

        None when the request keeps failing (a page that keeps timing out): the caller then reads the usual
        way, which isolates and names the dossier at fault."""
        if not 1 <= len(targets) <= 2:
            raise ValueError("getChanges asks for one or two démarches")
        variables: dict[str, Any] = {}
        for alias, target in zip("AB", targets, strict=False):
            variables.update({f"number{alias}": target.number, f"since{alias}": target.updated_since,
                              f"after{alias}": target.after, f"deletedSince{alias}": target.deleted_since,
                              f"changes{alias}": target.changes, f"newest{alias}": target.newest})
        variables["withB"] = len(targets) == 2
        try:
            answer = self.answer("getChanges", variables, partial=True)
        except PageError:
            return None
        return _read_changes(answer, targets)

    def deletion_pages(self, number: int, deleted_since: str | None, *,
                       after: Changes | None = None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Yields ("masque" | "supprime", items): hidden dossiers awaiting purge, then purged ones.

        `after`: go on past the first pages a `changes` answer already gave."""
        cursors: dict[str, str | None] = {"pending": None, "deleted": None}
        wanted = {"pending": True, "deleted": True}
        if after is not None:
            for key, connection in (("pending", after.pending), ("deleted", after.deleted)):
                if connection is not None:
                    wanted[key] = bool(connection["pageInfo"]["hasNextPage"])
                    cursors[key] = connection["pageInfo"]["endCursor"]
        while any(wanted.values()):
            data = self.execute("getDeletions", {
                "number": number, "pendingAfter": cursors["pending"], "withPending": wanted["pending"],
                "deletedAfter": cursors["deleted"], "deletedSince": deleted_since, "withDeleted": wanted["deleted"],
            })["demarche"]
            for key, field_name, state in (("pending", "pendingDeletedDossiers", "masque"),
                                           ("deleted", "deletedDossiers", "supprime")):
                if not wanted[key]:
                    continue
                connection = data[field_name]
                yield state, [n for n in connection["nodes"] if n]
                info = connection["pageInfo"]
                wanted[key] = bool(info["hasNextPage"])
                cursors[key] = info["endCursor"] or cursors[key]


def _page_of(answer: Answer) -> Page:
    if answer.raw is None:
        raise ApiError("Réponse inattendue de l'API : une page de dossiers sans données.")
    try:
        page = Page.decode(answer.raw)
    except msgspec.ValidationError as exc:
        raise ApiError(f"Réponse inattendue de l'API pour une page de dossiers ({exc}).") from None
    page.warnings = answer.warnings
    return page


def _read_changes(answer: Answer, targets: Sequence[ChangesTarget]) -> dict[int, Changes] | None:
    """Each démarche's part of a `getChanges` answer; None when a part is missing or a deletion list broken."""
    data = answer.data
    if data is None or any(data.get(alias) is None for alias in "ab"[:len(targets)]):
        return None
    # Bad data nulls one dossier of a page (`invalid_null`): that page alone is dropped.
    broken = {tuple(error.get("path") or ())[:2] for error in answer.bad}
    out: dict[int, Changes] = {}
    for alias, target in zip("ab", targets, strict=False):
        demarche = dict(data[alias])
        connection = demarche.pop("dossiers", None)
        newest = {}
        for state in DOSSIER_STATES:
            last = [n for n in (demarche.pop(state, None) or {}).get("nodes") or () if n]
            if last:
                newest[state] = last[0]["dateDerniereModification"]
        pending, deleted = demarche.pop("pendingDeletedDossiers"), demarche.pop("deletedDossiers")
        if (alias, "pendingDeletedDossiers") in broken or (alias, "deletedDossiers") in broken:
            return None
        page = None
        if connection is not None and (alias, "dossiers") not in broken:
            page = Page.of(connection)
            page.warnings = [w for w in answer.warnings if w.startswith(f"{alias}.")]
        retention = (data.get(f"descriptor{alias.upper()}") or {}).get("dureeConservationDossiers")
        out[target.number] = Changes({**demarche, "dureeConservationDossiers": retention}, page, pending,
                                     deleted, newest)
    return out
