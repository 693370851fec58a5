"""Démarches and dossiers: saving the API's JSON as rows, marking deletions, reading them back.

Knows nothing of HTTP: it takes the JSON the API returned and writes rows. Every page
of dossiers is written in one transaction together with the checkpoint describing it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import msgspec
import sqlite_utils

from ..errors import StoreError
from .schema import LIVE, now

# ---------------------------------------------------------------- démarches


def _descriptor_rows(revision_id: str, kind: str, descriptors: Iterable[Mapping[str, Any]],
                     parent_id: str | None = None) -> Iterator[dict[str, Any]]:
    for position, d in enumerate(descriptors):
        yield {
            "revision_id": revision_id, "id": d["id"], "kind": kind, "parent_id": parent_id,
            "position": position, "type": d.get("__typename"), "label": d.get("label"),
            "description": d.get("description"), "required": d.get("required"),
            "options": json.dumps(d["options"], ensure_ascii=False) if d.get("options") is not None else None,
        }
        yield from _descriptor_rows(revision_id, kind, d.get("champDescriptors") or (), d["id"])


def _retire_replaced(db: sqlite_utils.Database, key: str, number: int) -> None:
    """Another démarche held this key (a test démarche replaced by the real one in the settings):
    its dossiers leave the checks and exports, marked, never erased; it comes back if configured again."""
    for (old,) in db.execute("SELECT number FROM demarches WHERE key = ? AND number != ?", [key, number]).fetchall():
        db.execute("UPDATE dossiers SET deletion_state = 'demarche_retiree', deleted_at = ?, "
                   "deleted_reason = 'démarche remplacée dans la configuration' "
                   "WHERE demarche_number = ? AND deletion_state IS NULL", [now(), old])
        db.execute("UPDATE demarches SET key = NULL WHERE number = ?", [old])
        # Configured again one day, it is pulled whole, which brings its dossiers back.
        for table in ("sync_state", "sync_streams"):
            db.execute(f"DELETE FROM {table} WHERE demarche_number = ?", [old])


def save_demarche(db: sqlite_utils.Database, key: str, demarche: Mapping[str, Any]) -> None:
    """Saves a démarche with all its revisions, descriptors, groupes and instructeurs."""
    number = demarche["number"]
    active = (demarche.get("activeRevision") or {}).get("id")
    with db.atomic():
        _retire_replaced(db, key, number)
        db.table("demarches").upsert({
            "number": number, "key": key, "id": demarche["id"], "title": demarche["title"],
            "state": demarche["state"], "date_creation": demarche.get("dateCreation"),
            "active_revision_id": active, "synced_at": now(),
            "duree_conservation_dossiers": demarche.get("dureeConservationDossiers"),
        }, pk="number")
        for revision in demarche.get("revisions") or ():
            db.table("revisions").upsert({
                "id": revision["id"], "demarche_number": number, "date_creation": revision.get("dateCreation"),
                "date_publication": revision.get("datePublication"), "is_active": revision["id"] == active,
            }, pk="id")
            db.execute("DELETE FROM champ_descriptors WHERE revision_id = ?", [revision["id"]])
            rows = [*_descriptor_rows(revision["id"], "champ", revision.get("champDescriptors") or ()),
                    *_descriptor_rows(revision["id"], "annotation", revision.get("annotationDescriptors") or ())]
            db.table("champ_descriptors").insert_all(rows, pk=("revision_id", "id"))
        for groupe in demarche.get("groupeInstructeurs") or ():
            db.table("groupes_instructeurs").upsert({
                "id": groupe["id"], "demarche_number": number, "number": groupe["number"],
                "label": groupe["label"], "closed": groupe.get("closed"),
            }, pk="id")
            db.execute("DELETE FROM groupe_instructeurs WHERE groupe_id = ?", [groupe["id"]])
            instructeurs = groupe.get("instructeurs") or ()
            db.table("instructeurs").upsert_all([{"id": i["id"], "email": i["email"]} for i in instructeurs], pk="id")
            db.table("groupe_instructeurs").insert_all(
                [{"groupe_id": groupe["id"], "instructeur_id": i["id"]} for i in instructeurs],
                pk=("groupe_id", "instructeur_id"),
            )


# ---------------------------------------------------------------- dossiers


def _without_urls(champs: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for champ in champs:
        files, rows = champ.get("files"), champ.get("rows")
        if files:
            champ = {**champ, "files": [{k: v for k, v in f.items() if k != "url"} for f in files]}
        if rows:
            champ = {**champ, "rows": [{**r, "champs": _without_urls(r.get("champs") or [])} for r in rows]}
        out.append(champ)
    return out


def strip_volatile(node: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a dossier without file URLs: they are signed for one hour and change on every read.

    Only champs and annotations hold files in the DossierFields fragment; the rest is shared, not copied.
    """
    return {**node, **{key: _without_urls(node[key]) for key in ("champs", "annotations") if node.get(key)}}


# msgspec writes the JSON json.dumps(…, ensure_ascii=False, separators=(",", ":")) writes, six times faster;
# only a float's exponent differs (1e16, where json writes 1e+16).
_encode = msgspec.json.Encoder().encode


def raw_json(node: Mapping[str, Any]) -> str:
    """A dossier as stored in `dossiers.raw`: the API's JSON, compact, file URLs left out."""
    return _encode(strip_volatile(node)).decode()


_decode = msgspec.json.Decoder().decode


def parse_raw(text: bytes | str | None) -> dict[str, Any]:
    """A stored dossier's JSON (UTF-8 bytes or text; None: an unreadable dossier's stub, {}). msgspec reads
    it about twice as fast as json; what it refuses and json.dumps may have written (NaN, infinities, in
    rows stored before msgspec wrote them) json reads, so the result is the same."""
    if text is None:
        return {}
    try:
        parsed: dict[str, Any] = _decode(text)
    except msgspec.DecodeError:
        parsed = json.loads(text)
    return parsed


def _dossier_row(demarche_number: int, node: Mapping[str, Any], raw: str | None) -> dict[str, Any]:
    demandeur = node.get("demandeur") or {}
    entreprise = demandeur.get("entreprise") or {}
    address = demandeur.get("address") or {}
    groupe = node.get("groupeInstructeur") or {}
    siret = demandeur.get("siret")
    return {
        "number": node["number"], "id": node["id"], "demarche_number": demarche_number,
        "state": node["state"], "archived": node.get("archived"),
        "date_depot": node.get("dateDepot"),
        "date_passage_en_construction": node.get("datePassageEnConstruction"),
        "date_passage_en_instruction": node.get("datePassageEnInstruction"),
        "date_traitement": node.get("dateTraitement"),
        "date_derniere_modification": node.get("dateDerniereModification"),
        "date_derniere_modification_champs": node.get("dateDerniereModificationChamps"),
        "date_derniere_modification_annotations": node.get("dateDerniereModificationAnnotations"),
        "date_expiration": node.get("dateExpiration"),
        "date_suppression_par_usager": node.get("dateSuppressionParUsager"),
        "date_suppression_par_administration": node.get("dateSuppressionParAdministration"),
        "motivation": node.get("motivation"),
        "revision_id": (node.get("revision") or {}).get("id"),
        "groupe_instructeur_id": groupe.get("id"), "groupe_instructeur_number": groupe.get("number"),
        "groupe_instructeur_label": groupe.get("label"),
        "usager_email": (node.get("usager") or {}).get("email"),
        "demandeur_type": demandeur.get("__typename"), "siret": siret,
        "siren": entreprise.get("siren") or (siret[:9] if siret else None),
        "raison_sociale": entreprise.get("raisonSociale"), "forme_juridique": entreprise.get("formeJuridique"),
        "forme_juridique_code": entreprise.get("formeJuridiqueCode"), "naf": demandeur.get("naf"),
        "address_label": address.get("label"), "city_code": address.get("cityCode"),
        "city_name": address.get("cityName"), "postal_code": address.get("postalCode"),
        "department_code": address.get("departmentCode"),
        "civilite": demandeur.get("civilite"), "nom": demandeur.get("nom"), "prenom": demandeur.get("prenom"),
        "demandeur_email": demandeur.get("email"),
        "deletion_state": None, "deleted_at": None, "deleted_reason": None, "raw": raw,
    }


Typed = tuple[str | None, float | None, int | None, int | None, str | None, str | None]
NOT_STRUCTURED = {"__typename", "id", "champDescriptorId", "label", "stringValue", "updatedAt", "rows", "files"}
TEXT_KEYS = {"TextChamp": "text", "DropDownListChamp": "choice", "CiviliteChamp": "civilite"}
# SQLite's INTEGER is 64-bit signed; DS's BigInt (an integer champ, a file size) is a string of any length.
INT64 = range(-(2**63), 2**63)


class OutOfRange(ValueError):
    """A value that does not fit its typed column; kept as text with its original string."""


def _int64(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise OutOfRange(raw) from None
    if value not in INT64:
        raise OutOfRange(raw)
    return value


def _finite(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise OutOfRange(raw) from None
    if not math.isfinite(value):
        raise OutOfRange(raw)
    return value


def _iso_date(raw: Any, with_time: bool) -> str | None:
    if raw in (None, ""):
        return None
    try:
        if with_time:
            datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        else:
            date.fromisoformat(str(raw)[:10])
    except ValueError:
        raise OutOfRange(raw) from None
    return str(raw)


def _typed_value(champ: Mapping[str, Any]) -> Typed:
    """The champ's value in the column that fits its type, in CHAMP_COLUMNS order (BigInt strings become
    integers). Total: a value that does not fit raises `OutOfRange`, and the caller keeps it as text.

    A champ type the query does not name comes with `stringValue` only: no typed column is filled."""
    typename = champ.get("__typename")
    if typename in TEXT_KEYS:
        return champ.get(TEXT_KEYS[typename]), None, None, None, None, None
    if typename == "DecimalNumberChamp":
        return None, _finite(champ.get("decimal")), None, None, None, None
    if typename == "IntegerNumberChamp":
        return None, None, _int64(champ.get("integer")), None, None, None
    if typename in ("CheckboxChamp", "YesNoChamp"):
        value = champ.get("checked" if typename == "CheckboxChamp" else "yesNo")
        return None, None, None, None if value is None else int(bool(value)), None, None
    if typename in ("DateChamp", "DatetimeChamp"):
        with_time = typename == "DatetimeChamp"
        return None, None, None, None, _iso_date(champ.get("datetime" if with_time else "date"), with_time), None
    structured = {k: v for k, v in champ.items() if k not in NOT_STRUCTURED}
    return None, None, None, None, None, _encode(structured).decode() if structured else None


def _original(champ: Mapping[str, Any]) -> str:
    """The API's own string of a value that does not fit its column."""
    for key in ("integer", "decimal", "date", "datetime"):
        if champ.get(key) not in (None, ""):
            return str(champ[key])
    return str(champ.get("stringValue") or "")


def _champ_rows(number: int, kind: str, champs: Iterable[Mapping[str, Any]], champ_rows: list[tuple[Any, ...]],
                file_rows: list[tuple[Any, ...]], out_of_range: list[tuple[int, str]],
                parent_id: str | None = None, row_id: str | None = None) -> None:
    """Appends a row for each champ (and repetition row's champ) to `champ_rows`, for each file to `file_rows`,
    in TABLE_COLUMNS order; values that do not fit their typed column are kept as text and added to
    `out_of_range` as (dossier, champ label)."""
    for position, champ in enumerate(champs):
        champ_id = champ["id"]
        try:
            typed = _typed_value(champ)
        except OutOfRange:
            typed = (_original(champ), None, None, None, None, None)
            out_of_range.append((number, str(champ.get("label") or champ_id)))
        descriptor_id = champ.get("champDescriptorId")
        champ_rows.append((number, champ_id, descriptor_id, kind, parent_id, row_id, position, champ.get("__typename"),
                           champ.get("label"), champ.get("stringValue"), *typed, champ.get("updatedAt")))
        if files := champ.get("files"):
            for file_position, file in enumerate(files):
                size = file.get("byteSize")
                try:
                    byte_size, size_text = _int64(size), None
                except OutOfRange:
                    byte_size, size_text = None, str(size)
                    out_of_range.append((number, f"{champ.get('label') or champ_id} ({file.get('filename')})"))
                file_rows.append((number, champ_id, file_position, descriptor_id, file.get("filename"),
                                  file.get("contentType"), byte_size, file.get("checksum"), size_text))
        if rows := champ.get("rows"):
            for row in rows:
                _champ_rows(number, kind, row.get("champs") or (), champ_rows, file_rows, out_of_range,
                            champ_id, row["id"])


CHAMP_COLUMNS = ("value_text", "value_number", "value_integer", "value_boolean", "value_date", "value_json")


@dataclass
class PageCounts:
    nouveaux: int = 0
    modifies: int = 0
    restaures: int = 0
    inchanges: int = 0
    # (dossier number, champ label) of each value kept as text because it did not fit its column
    hors_limites: list[tuple[int, str]] = field(default_factory=list)


TABLE_COLUMNS = {
    "champs": ("dossier_number", "id", "descriptor_id", "kind", "parent_id", "row_id", "position", "type", "label",
               "string_value", *CHAMP_COLUMNS, "updated_at"),
    "files": ("dossier_number", "champ_id", "position", "descriptor_id", "filename", "content_type", "byte_size",
              "checksum", "byte_size_text"),
    "traitements": ("dossier_number", "position", "event", "state", "date_traitement", "email_agent_traitant",
                    "motivation"),
}


def _insert_many(db: sqlite_utils.Database, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                 conflict_key: str | None = None) -> None:
    """Plain executemany: a page's few thousand rows, without sqlite-utils' per-value type sniffing."""
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    if conflict_key:
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != conflict_key)
        sql += f" ON CONFLICT({conflict_key}) DO UPDATE SET {updates}"
    db.conn.executemany(sql, rows)


def save_dossiers(db: sqlite_utils.Database, demarche_number: int, nodes: Iterable[Mapping[str, Any] | None],
                  *, seen_run: int | None = None) -> PageCounts:
    """Upserts a page of dossiers with their champs, files and traitements. Call inside a transaction."""
    counts = PageCounts()
    page = [node for node in nodes if node is not None]
    numbers = [node["number"] for node in page]
    previous: dict[int, tuple[str | None, str | None]] = {}
    if numbers:
        marks = ",".join("?" * len(numbers))
        for number, raw, deletion in db.execute(
                f"SELECT number, raw, deletion_state FROM dossiers WHERE number IN ({marks})", numbers):
            previous[number] = (raw, deletion)
    dossiers: list[dict[str, Any]] = []
    children: dict[str, list[tuple[Any, ...]]] = {"champs": [], "files": [], "traitements": []}
    unchanged: list[int] = []
    existing: list[int] = []
    stamp = now()
    for node in page:
        number = node["number"]
        raw = raw_json(node)
        before = previous.get(number)
        if before is not None and before == (raw, None):
            counts.inchanges += 1
            unchanged.append(number)
            continue
        if before is None or before == (None, None):  # never seen, or a stub of an unreadable dossier
            counts.nouveaux += 1
        else:
            existing.append(number)
            if before[1] is not None:
                counts.restaures += 1
            else:
                counts.modifies += 1
        dossiers.append({**_dossier_row(demarche_number, node, raw), "seen_run": seen_run, "synced_at": stamp})
        for kind, key in (("champ", "champs"), ("annotation", "annotations")):
            _champ_rows(number, kind, node.get(key) or (), children["champs"], children["files"],
                        counts.hors_limites)
        for position, t in enumerate(node.get("traitements") or ()):
            children["traitements"].append((number, position, t.get("event"), t.get("state"), t.get("dateTraitement"),
                                            t.get("emailAgentTraitant"), t.get("motivation")))
    if unchanged and seen_run is not None:
        db.conn.executemany("UPDATE dossiers SET seen_run = ? WHERE number = ?", [(seen_run, n) for n in unchanged])
    if existing:
        marks = ",".join("?" * len(existing))
        for table in ("champs", "files", "traitements"):
            db.execute(f"DELETE FROM {table} WHERE dossier_number IN ({marks})", existing)
    if dossiers:
        columns = tuple(dossiers[0])
        _insert_many(db, "dossiers", columns, [tuple(d[c] for c in columns) for d in dossiers], conflict_key="number")
        for table, rows in children.items():
            _insert_many(db, table, TABLE_COLUMNS[table], rows)
    return counts


def save_stub(db: sqlite_utils.Database, demarche_number: int, node: Mapping[str, Any],
              *, seen_run: int | None = None) -> None:
    """Gives a dossier DS cannot serialise a row (raw NULL: not live) from a read without champs, unless it
    already has one; a full pull's mark keeps it from being taken for vanished. Call inside a transaction."""
    row = {**_dossier_row(demarche_number, node, None), "seen_run": seen_run, "synced_at": now()}
    row.pop("raw")
    columns = tuple(row)
    db.execute(f"INSERT INTO dossiers ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
               "ON CONFLICT(number) DO UPDATE SET seen_run = coalesce(excluded.seen_run, seen_run)",
               [row[c] for c in columns])


def incomplete_demandeurs(db: sqlite_utils.Database, demarche_number: int) -> list[int]:
    """Live dossiers whose company data DS could not fetch yet (PersonneMoraleIncomplete): DS completes
    them without touching the dossier, so only a re-read by number sees it."""
    return [n for (n,) in db.execute(
        "SELECT d.number FROM dossiers d WHERE d.demarche_number = ? AND d.demandeur_type = "
        f"'PersonneMoraleIncomplete' AND {LIVE} ORDER BY d.number", [demarche_number])]


def mark_deleted(db: sqlite_utils.Database, demarche_number: int, items: Iterable[Mapping[str, Any]],
                 state: str) -> int:
    """Marks dossiers hidden ("masque") or purged ("supprime") upstream; never erases a row.

    A dossier never seen here gets a tombstone row, so a first sync and an incremental one
    know the same deleted numbers. Returns how many dossiers became deleted.
    """
    changed = 0
    for item in items:
        number = item["number"]
        row = db.execute("SELECT deletion_state, deleted_at, deleted_reason FROM dossiers WHERE number = ?",
                         [number]).fetchone()
        values = (state, item.get("dateSupression"), item.get("reason"))
        if row is None:
            db.table("dossiers").insert({
                "number": number, "id": item.get("id"), "demarche_number": demarche_number,
                "state": item.get("state"), "deletion_state": state, "deleted_at": values[1],
                "deleted_reason": values[2], "synced_at": now(),
            }, pk="number")
            changed += 1
        elif tuple(row) != values and not (row[0] == "supprime" and state == "masque"):
            db.execute("UPDATE dossiers SET deletion_state = ?, deleted_at = ?, deleted_reason = ? WHERE number = ?",
                       [*values, number])
            changed += row[0] is None
    return changed


def mark_vanished(db: sqlite_utils.Database, demarche_number: int, run_id: int) -> int:
    """After a full pull: dossiers no longer listed and not known as deleted silently vanished upstream."""
    cursor = db.execute(
        "UPDATE dossiers SET deletion_state = 'disparu', deleted_at = ?, deleted_reason = 'absent_de_l_api' "
        "WHERE demarche_number = ? AND deletion_state IS NULL AND (seen_run IS NULL OR seen_run != ?)",
        [now(), demarche_number, run_id],
    )
    return cursor.rowcount


# ---------------------------------------------------------------- reading


def iter_dossiers(db: sqlite_utils.Database, *, include_deleted: bool = False,
                  demarche_key: str | None = None) -> Iterator[dict[str, Any]]:
    """Streams stored dossiers as {number, demarche_number, demarche_key, deletion_state,
    date_derniere_modification, raw (the API JSON, parsed)}; tombstones without data are skipped."""
    sql = ("SELECT d.number, d.demarche_number, m.key, d.deletion_state, d.date_derniere_modification, d.raw "
           "FROM dossiers d JOIN demarches m ON m.number = d.demarche_number WHERE d.raw IS NOT NULL")
    params: list[Any] = []
    if not include_deleted:
        sql += " AND d.deletion_state IS NULL"
    if demarche_key:
        sql += " AND m.key = ?"
        params.append(demarche_key)
    for number, demarche_number, key, deletion, modified, raw in db.execute(sql + " ORDER BY d.number", params):
        yield {"number": number, "demarche_number": demarche_number, "demarche_key": key,
               "deletion_state": deletion, "date_derniere_modification": modified, "raw": json.loads(raw)}


def applicant_name(raison_sociale: str | None, prenom: str | None, nom: str | None) -> str:
    """The applicant as people name it: the company's name, else first and last name ('' if none)."""
    return raison_sociale or " ".join(p for p in (prenom, nom) if p)


def ensure_synced(db: sqlite_utils.Database) -> None:
    """Raises StoreError unless a sync of at least one démarche ever completed."""
    if last_sync(db) is None:
        raise StoreError("La base n'a jamais été synchronisée jusqu'au bout : lancez d'abord « itn7 sync ».")


def last_sync(db: sqlite_utils.Database) -> str | None:
    """When the last complete sync of any démarche ended, or None if there never was one."""
    if "sync_state" not in db.table_names():
        return None
    row = db.execute("SELECT max(last_success_at) FROM sync_state").fetchone()
    return row[0] if row else None
