"""Safe names and the folder layout: `<démarche>/<numéro>-<porteur>/<champ>/<nom>` from applicant-typed text."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import StoreError
from ..store import applicant_name

NAME_BYTES = 120         # a file name; ext4 allows 255 bytes, Windows paths 260 characters in all
FOLDER_BYTES = 80        # a folder name
# Windows refuses these names whatever the extension (CON.pdf included), and a committee member
# may well copy the folder onto a Windows share.
RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
            *(f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³")}
FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]')


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that fits in `max_bytes` of UTF-8, never splitting a character."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def safe_component(text: str | None, *, max_bytes: int = NAME_BYTES, fallback: str = "sans_nom") -> str:
    """One path component from applicant-typed text: no separators, control or reserved characters,
    no `.`/`..`, no Windows device name, at most `max_bytes` bytes of UTF-8 (the extension is kept)."""
    name = unicodedata.normalize("NFC", text or "")
    name = FORBIDDEN.sub("_", "".join(" " if unicodedata.category(c) in ("Zl", "Zp") else c for c in name))
    name = " ".join(name.split()).strip(" .")
    if not name:
        name = fallback
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10 or not ext.isalnum():
        stem, ext = name, ""
    if stem.split(".")[0].strip().upper() in RESERVED:
        stem = "_" + stem
    suffix = f".{ext}" if ext else ""
    stem = _cut(stem, max_bytes - len(suffix.encode())).rstrip(" .") or "_"
    return stem + suffix


def _numbered(name: str, n: int, max_bytes: int) -> str:
    """`devis.pdf` → `devis (2).pdf`, still within `max_bytes`."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    mark, suffix = f" ({n})", f".{ext}" if ext else ""
    return _cut(stem, max_bytes - len((mark + suffix).encode())).rstrip(" .") + mark + suffix


def inside(root: Path, relative: PurePosixPath | str) -> Path:
    """`root / relative`, resolved; raises StoreError if it would land outside `root` (`..`, absolute
    path, symbolic link pointing elsewhere)."""
    base = root.resolve()
    target = (base / Path(relative)).resolve()
    if not target.is_relative_to(base) or target == base:
        raise StoreError(f"Chemin de pièce jointe refusé (hors de {root}) : {str(relative)!r}.")
    return target


@dataclass(frozen=True)
class FileRef:
    """One attachment of one dossier, where it goes, and how to check it."""

    demarche_number: int
    dossier_number: int
    champ_id: str
    position: int
    filename: str
    checksum: str | None
    byte_size: int | None
    url: str | None
    path: PurePosixPath  # relative to the files directory

    @property
    def slot(self) -> tuple[str, int]:
        """Where the file sits in its dossier: champ and position in the champ."""
        return self.champ_id, self.position


def porteur(node: Mapping[str, Any]) -> str:
    """The applicant's name as the v_dossiers view shows it: company name, else first and last name."""
    demandeur = node.get("demandeur") or {}
    company = (demandeur.get("entreprise") or {}).get("raisonSociale")
    return applicant_name(company, demandeur.get("prenom"), demandeur.get("nom"))


def _champ_files(champs: Any) -> Iterator[tuple[Mapping[str, Any], int, Mapping[str, Any]]]:
    for champ in champs or ():
        for position, file in enumerate(champ.get("files") or ()):
            yield champ, position, file
        for row in champ.get("rows") or ():
            yield from _champ_files(row.get("champs"))


def demarche_folder(demarche_key: str) -> str:
    """The top folder of a démarche's attachments."""
    return safe_component(demarche_key, max_bytes=FOLDER_BYTES)


def dossier_files(demarche_number: int, demarche_key: str, node: Mapping[str, Any]) -> list[FileRef]:
    """Every attachment of a dossier (champs, repetition rows, annotations) with its place in the tree
    `<démarche>/<numéro>-<porteur>/<champ>/<nom>`; same names in one folder get ` (2)`, ` (3)`…"""
    number = int(node["number"])
    name = porteur(node)
    holder = safe_component(name, max_bytes=FOLDER_BYTES - 12) if name.strip() else ""
    folder = PurePosixPath(demarche_folder(demarche_key), f"{number}-{holder}".rstrip("-"))
    taken: set[str] = set()
    refs = []
    for champ, position, file in [*_champ_files(node.get("champs")), *_champ_files(node.get("annotations"))]:
        label = safe_component(champ.get("label"), max_bytes=FOLDER_BYTES, fallback="champ")
        name = safe_component(file.get("filename"), fallback="piece")
        candidate, n = name, 1
        # Case-insensitive: the tree may be copied to Windows or macOS, where Devis.pdf is devis.pdf.
        while f"{label}/{candidate}".casefold() in taken:
            n += 1
            candidate = _numbered(name, n, NAME_BYTES)
        taken.add(f"{label}/{candidate}".casefold())
        size = file.get("byteSize")
        refs.append(FileRef(demarche_number, number, str(champ["id"]), position, str(file.get("filename") or ""),
                            file.get("checksum"), int(size) if size not in (None, "") else None, file.get("url"),
                            folder / label / candidate))
    return refs
