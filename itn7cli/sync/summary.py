"""What a sync tells its caller: a summary per démarche, and the callbacks it runs as it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import store


@dataclass
class Summary:
    """What one sync did to one démarche."""

    key: str
    number: int
    title: str = ""
    mode: str = "incremental"
    pages: int = 0
    nouveaux: int = 0
    modifies: int = 0
    supprimes: int = 0
    restaures: int = 0
    inchanges: int = 0
    # Dossiers DS could not serialise this run, still unreadable at its end (numbers).
    illisibles: list[int] = field(default_factory=list)
    # Values kept as text because they did not fit their column: (dossier number, champ label).
    hors_limites: list[tuple[int, str]] = field(default_factory=list)
    # Fields DS hid from the token below a dossier (a linked dossier of another démarche…).
    avertissements: list[str] = field(default_factory=list)

    def add(self, counts: store.PageCounts, *, page: bool = True) -> None:
        self.pages += page
        self.nouveaux += counts.nouveaux
        self.modifies += counts.modifies
        self.restaures += counts.restaures
        self.inchanges += counts.inchanges
        self.hors_limites.extend(counts.hors_limites)

    def page_saved(self, counts: store.PageCounts, read: list[int], unreadable: list[int], warnings: list[str]) -> None:
        """A page is committed: the dossiers it read whole are readable again, those it named are not."""
        self.add(counts)
        done = set(read)
        self.illisibles[:] = [n for n in self.illisibles if n not in done]
        self.unreadable(*unreadable)
        self.avertissements.extend(warnings)

    def unreadable(self, *numbers: int) -> None:
        self.illisibles.extend(n for n in dict.fromkeys(numbers) if n not in self.illisibles)

    def counts(self) -> dict[str, int]:
        """The figures a run record keeps."""
        return {"pages": self.pages, "nouveaux": self.nouveaux, "modifies": self.modifies,
                "supprimes": self.supprimes, "restaures": self.restaures, "inchanges": self.inchanges}

    @property
    def dossiers(self) -> int:
        return self.nouveaux + self.modifies + self.restaures + self.inchanges


Progress = Callable[[Summary], None]
# Called in the writing thread after a page is committed, with the démarche number and the page's
# nodes as the API returned them (file URLs included: they expire within the hour, use them now).
AfterPage = Callable[[int, list[dict[str, Any]]], None]
