"""The GraphQL view of the dataset's objects, as the resolvers serve it (DS app/graphql/types/*)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import text
from .applicants import Applicant
from .forms import Descriptor, Revision, champ_id
from .model import Dossier, Row, paris, relay_id

if TYPE_CHECKING:
    from .dataset import Registry


def dossier_object(ds: Registry, d: Dossier) -> dict[str, Any]:
    """The Dossier object as the resolvers serve it, built once per change of the dossier."""
    cached = d._rendered
    if cached is not None:
        return cached
    demarche = ds.demarches[ds.numbers[d.key]]
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
        "revision": revision_object(ds, d.revision),
        "groupeInstructeur": groupe_object(ds, groupe),
        "usager": {"id": relay_id("User", d.db_id), "email": d.usager_email},
        "instructeurs": [{"id": relay_id("Instructeur", i), "email": ds.instructeurs[i]} for i in d.followers],
        "demandeur": d.applicant.to_graphql(),
        "traitements": list(d.traitements),
        "champs": _champs(d, d.revision.champs) + [dict(c) for c in d.extra_champs],
        "annotations": _champs(d, d.revision.annotations),
    }
    if d.bad_data and out["champs"]:
        # A value that breaks a non-null field: DS nulls the dossier (invalid_null), see engine._format.
        out["champs"][0] = {**out["champs"][0], "label": None}
    d._rendered = out
    return out


def revision_object(ds: Registry, rev: Revision) -> dict[str, Any]:
    """The Revision object (built once per revision)."""
    cached = ds.revision_objects.get(rev.number)
    if cached is None:
        cached = ds.revision_objects[rev.number] = _build_revision_object(rev)
    return cached


def _build_revision_object(rev: Revision) -> dict[str, Any]:
    return {
        "id": rev.id,
        "dateCreation": rev.created_at,
        "datePublication": rev.created_at,
        "champDescriptors": [c.to_graphql() for c in rev.champs],
        "annotationDescriptors": [c.to_graphql() for c in rev.annotations],
    }


def groupe_object(ds: Registry, g: dict[str, Any]) -> dict[str, Any]:
    """The GroupeInstructeur object."""
    return {
        "id": relay_id("GroupeInstructeur", g["number"]),
        "number": g["number"],
        "label": g["label"],
        "closed": g["closed"],
        "instructeurs": [
            {"id": relay_id("Instructeur", i), "email": ds.instructeurs[i]} for i in g["instructeurs"]
        ],
    }


def _champs(d: Dossier, descriptors: list[Descriptor], row: Row | None = None) -> list[dict[str, Any]]:
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
        _fill(champ, desc, value, d)
        out.append(champ)
    return out


def _fill(champ: dict[str, Any], desc: Descriptor, value: Any, d: Dossier) -> None:
    kind = desc.kind
    if kind == "Repetition":
        rows = value or []
        champ["rows"] = [
            {"id": relay_id("Row", row.row_id), "champs": _champs(d, desc.children, row)}
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


__all__ = ["dossier_object", "groupe_object", "revision_object"]
