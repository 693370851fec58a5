"""What `itn7 demo` needs from the fake world: a dataset, a server, and reference data as CSV files."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

REFDATA = Path(__file__).with_name("refdata.json")


def _records(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    columns = data[f"{name}_columns"]
    return [dict(zip(columns, row, strict=True)) for row in data[name]]


def write_refdata_csv(folder: Path) -> list[Path]:
    """Writes the embedded PACA sample in the CSV format `itn7 refdata import` documents.

    It is a sample (the communes and EPCI the demo applicants come from); columns the sample
    does not know are left empty, as the import allows.
    """
    data = json.loads(REFDATA.read_text(encoding="utf-8"))
    communes, epcis = _records(data, "communes"), _records(data, "epci")
    by_siren = {e["siren"]: e for e in epcis}
    zrr_counts = Counter(c["epci_siren"] for c in communes if c["zrr"] in ("C", "P"))
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        "communes": (
            ["code_insee", "nom", "dep", "siren", "epci_siren", "epci_nom", "epci_nature", "pmun_2021", "ptot_2021",
             "zrr", "zrr_modalite", "codes_postaux"],
            [[c["insee"], c["nom"], c["insee"][:3] if c["insee"].startswith("97") else c["insee"][:2], c["siren"],
              c["epci_siren"], by_siren.get(c["epci_siren"], {}).get("nom", ""),
              by_siren.get(c["epci_siren"], {}).get("nature", ""), c["pmun_2021"], "", c["zrr"], c["zrr"],
              c["code_postal"]] for c in communes]),
        "epci": (
            ["epci_siren", "epci_nom", "epci_nature", "mode_financement", "pmun_2021", "ptot_2021", "nb_communes",
             "nb_communes_paca", "nb_communes_zrr", "departements"],
            [[e["siren"], e["nom"], e["nature"], "", e["pmun_2021"], "", e["nb_communes"], e["nb_communes"],
              zrr_counts.get(e["siren"], 0), e["dep"]] for e in epcis]),
        "collectivites": (
            ["niveau", "code", "nom", "siren", "cj_attendue"],
            [[c["niveau"], c["code"], c["nom"], c["siren"], c["cj"]] for c in _records(data, "collectivites")]),
    }
    paths = []
    for name, (header, rows) in tables.items():
        path = folder / f"demo_{name}_2021.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        paths.append(path)
    return paths
