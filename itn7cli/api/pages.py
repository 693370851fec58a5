"""A page of dossiers as the sync handles it: the answer's bytes, with what the fetching threads need.

A page of 100 full dossiers is about 1.3 MB of JSON and four times as much decoded. A fetching thread
only needs each dossier's number and date, and the page's cursor; it keeps the dossiers as the
answer's bytes, and the one writer decodes them when it saves the page. Threads waiting for the writer
then hold a fraction of the memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import msgspec

PAGE_SIZE = 100  # the API's cap


class Stamp(msgspec.Struct, frozen=True):
    """What a fetching thread reads of a dossier: its number and when it last changed."""

    number: int
    dateDerniereModification: str | None = None  # the API's name


class _Connection(msgspec.Struct):
    pageInfo: dict[str, Any]
    nodes: list[msgspec.Raw]


class _Dossiers(msgspec.Struct):
    dossiers: _Connection


class _PageData(msgspec.Struct):
    demarche: _Dossiers


_STAMP = msgspec.json.Decoder(Stamp)
_NODE = msgspec.json.Decoder()


@dataclass
class Page:
    """One page of a stream: `info` (pageInfo), each dossier as DS sent it (`raw`, None where DS nulled a
    dossier it could not serialise) with its `stamps`, the dossiers named but not read whole (`unreadable`:
    (stub node, message) pairs) and the fields hidden from the token (`warnings`)."""

    info: dict[str, Any]
    raw: list[msgspec.Raw | None]
    stamps: list[Stamp | None]
    unreadable: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def decode(cls, data: msgspec.Raw) -> Page:
        """The page of a `getDossiers` answer's data."""
        connection = msgspec.json.decode(data, type=_PageData).demarche.dossiers
        raw = [None if memoryview(node)[:1] == b"n" else node for node in connection.nodes]
        return cls(connection.pageInfo, raw, [None if node is None else _STAMP.decode(node) for node in raw])

    @classmethod
    def of(cls, connection: dict[str, Any]) -> Page:
        """The page of a connection already decoded (the first page of a `changes` answer, a test's page)."""
        nodes = connection["nodes"]
        raw = [None if node is None else msgspec.Raw(msgspec.json.encode(node)) for node in nodes]
        stamps = [None if node is None else Stamp(node["number"], node.get("dateDerniereModification"))
                  for node in nodes]
        return cls(connection["pageInfo"], raw, stamps)

    @property
    def more(self) -> bool:
        return bool(self.info["hasNextPage"])

    @cached_property
    def nodes(self) -> list[dict[str, Any]]:
        """The dossiers read whole, decoded (by the writer: once, when it saves the page)."""
        return [_NODE.decode(node) for node in self.raw if node is not None]

    def numbers(self) -> list[int]:
        """The dossiers read whole."""
        return [stamp.number for stamp in self.stamps if stamp is not None]


def name_bad_nodes(page: Page, stubs: list[dict[str, Any] | None],
                   bad: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """The dossiers of a page that DS nulled (`bad` errors), named from the same page read without champs
    (`stubs`), as (stub, message) pairs."""
    messages: dict[int, str] = {}
    for error in bad:
        path = error.get("path") or []
        if "nodes" in path and path.index("nodes") + 1 < len(path):
            index = path[path.index("nodes") + 1]
            if isinstance(index, int):
                messages.setdefault(index, str(error.get("message", "")))
    read = set(page.numbers())
    aligned = len(stubs) == len(page.stamps) and all(
        stamp is None or (stub is not None and stub["number"] == stamp.number)
        for stamp, stub in zip(page.stamps, stubs, strict=True))
    out = []
    for i, stub in enumerate(stubs):
        # Aligned, the null nodes are named by position. If a dossier moved between the two requests,
        # every dossier of the champ-less page not read whole is named: better once too often (a
        # readable one is cleared when read) than a bad one silently skipped.
        wanted = page.stamps[i] is None if aligned else True
        if stub and wanted and stub["number"] not in read:
            out.append((stub, messages.get(i) or "; ".join(str(e.get("message")) for e in bad)))
    return out
