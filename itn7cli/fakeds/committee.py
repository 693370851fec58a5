"""For `itn7 demo`: a committee secretary filling the decision columns of a session workbook.

Demo data only: eligible dossiers are retained for their capped amount, ineligible ones refused
with their first reason, the others postponed. The workbook is edited with openpyxl, as a person's
spreadsheet program would save it.
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

DECISION, AMOUNT, MOTIVATION = "Décision du comité", "Montant attribué (€)", "Motivation"


def fill_decisions(path: Path, sheet: str = "Dossiers", budget: float = 590_000.0) -> int:
    """Fills the decision columns of `sheet` from each row's eligibility, retaining eligible dossiers
    while `budget` lasts (a third of the envelope); returns how many rows were filled."""
    wb = load_workbook(path)
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    at = {name: header.index(name) for name in (DECISION, AMOUNT, MOTIVATION, "Statut d'éligibilité", "Motifs",
                                                 "Montant plafonné")}
    filled = 0
    for row in ws.iter_rows(min_row=2):
        status = row[at["Statut d'éligibilité"]].value
        amount = row[at["Montant plafonné"]].value
        if status == "Éligible" and amount and amount <= budget:
            budget -= amount
            row[at[DECISION]].value = "Retenu"
            row[at[AMOUNT]].value = row[at["Montant plafonné"]].value
            row[at[MOTIVATION]].value = "Projet retenu par le comité de programmation ITN7."
        elif status == "Inéligible":
            reason = str(row[at["Motifs"]].value or "").split("\n")[0].removeprefix("• ")
            row[at[DECISION]].value = "Refusé"
            row[at[MOTIVATION]].value = f"Dossier inéligible à l'appel à projets : {reason}"
        else:
            row[at[DECISION]].value = "Ajourné"
        filled += 1
    wb.save(path)
    return filled
