"""The committee's decisions as the workbook names them, and the key that ties a workbook row to a dossier."""

from __future__ import annotations

import re

# Code → the label of the workbook's drop-down list, in the list's order.
DECISION_LABELS = {"retenu": "Retenu", "ajourne": "Ajourné", "refuse": "Refusé", "sans_suite": "Classé sans suite"}
DECISION_CODES = {label.casefold(): code for code, label in DECISION_LABELS.items()}

# The DS state each decision leads to (Ajourné leaves the dossier where it is).
TARGET_STATES = {"retenu": "accepte", "refuse": "refuse", "sans_suite": "sans_suite"}

KEY_PATTERN = re.compile(r"^itn7:s(\d+):n(\d+):m(.*)$")


def decision_key(session: int, number: int, modified: str | None) -> str:
    """The hidden key of a workbook row: session, dossier and DS's last-modified date at the export."""
    return f"itn7:s{session}:n{number}:m{modified or ''}"


def parse_key(text: str) -> tuple[int, int, str | None] | None:
    """(session, number, modified) of a key, or None when the text is not one."""
    match = KEY_PATTERN.match(text.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3) or None
