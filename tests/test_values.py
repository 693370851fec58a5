"""Converting API values into typed columns is total: what does not fit is kept as text and named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from itn7cli import store


def champ(typename: str, label: str, **value: Any) -> dict[str, Any]:
    return {"__typename": typename, "id": f"id-{label}", "champDescriptorId": f"d-{label}", "label": label,
            "stringValue": str(next(iter(value.values()), "")), "updatedAt": "2025-01-01T00:00:00+01:00", **value}


def dossier(number: int, champs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"D{number}", "number": number, "state": "en_construction", "champs": champs, "annotations": []}


def test_a_page_mixing_values_beyond_the_columns_with_normal_ones_is_stored_whole(tmp_path: Path) -> None:
    db = store.open_db(tmp_path / "a.db")
    pieces = {"__typename": "PieceJustificativeChamp", "id": "id-pj", "champDescriptorId": "d-pj", "label": "Devis",
              "stringValue": "devis.pdf", "files": [
                  {"filename": "devis.pdf", "contentType": "application/pdf", "checksum": "x", "byteSize": "2048"},
                  {"filename": "enorme.pdf", "contentType": "application/pdf", "checksum": "y",
                   "byteSize": "99999999999999999999999"}]}
    page = [
        dossier(1, [champ("IntegerNumberChamp", "Entier", integer="42"),
                    champ("IntegerNumberChamp", "Trop grand", integer="-9223372036854775809"),
                    champ("DecimalNumberChamp", "Infini", decimal=float("inf")),
                    champ("DecimalNumberChamp", "Montant", decimal=1250.5)]),
        dossier(2, [champ("DateChamp", "Date impossible", date="2024-13-01"),
                    champ("DatetimeChamp", "Horodatage", datetime="2024-02-30T10:00:00+01:00"),
                    champ("DateChamp", "Date", date="2024-02-29"), pieces]),
    ]
    with db.atomic():
        db.table("demarches").insert({"number": 7, "key": "general"})
        counts = store.save_dossiers(db, 7, page)
    assert counts.nouveaux == 2
    assert counts.hors_limites == [(1, "Trop grand"), (1, "Infini"), (2, "Date impossible"), (2, "Horodatage"),
                                   (2, "Devis (enorme.pdf)")]
    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT label, value_text, value_number, value_integer, value_date FROM champs")}
    assert rows == {
        "Entier": (None, None, 42, None), "Trop grand": ("-9223372036854775809", None, None, None),
        "Infini": ("inf", None, None, None), "Montant": (None, 1250.5, None, None),
        "Date impossible": ("2024-13-01", None, None, None),
        "Horodatage": ("2024-02-30T10:00:00+01:00", None, None, None), "Date": (None, None, None, "2024-02-29"),
        "Devis": (None, None, None, None),
    }
    assert sorted(db.execute("SELECT filename, byte_size, byte_size_text FROM files").fetchall()) == [
        ("devis.pdf", 2048, None), ("enorme.pdf", None, "99999999999999999999999")]
