"""The sheets of the committee workbook: what each column holds, in which order, how it looks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import PurePosixPath
from typing import Any
from weakref import WeakKeyDictionary

from openpyxl.chart import BarChart, Reference
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.properties import PageSetupProperties

from .. import labels
from ..config import Settings
from ..decisions.labels import DECISION_LABELS, decision_key
from ..labels import STATUSES as STATUS_LABELS
from ..rules import engine as rules_engine
from .cells import (
    AMOUNT_FORMAT,
    BOLD,
    NOTE_FONT,
    PAPERSIZE_A3,
    PAPERSIZE_A4,
    PERCENT_FORMAT,
    RIGHT,
    SCORE_FORMAT,
    SECTION_FONT,
    STATUS_FILLS,
    STATUS_FONTS,
    TITLE_FONT,
    TOTAL_BORDER,
    Column,
    date_cell,
    finish_table,
    height,
    input_cell,
    lines_needed,
    link_cell,
    number_cell,
    set_up_table,
    status_cell,
    styled,
    text_cell,
)
from .data import DEPARTEMENTS, Freshness, Row, SessionTotals, dossier_url
from .rows import PreparedCell, PreparedRow, prepare

RULE_LABELS = rules_engine.rule_titles()  # « Hors région »: the rule registry's titles
STATUSES = {status: label.capitalize() for status, label in STATUS_LABELS.items()}  # « À vérifier »
FINDING_LABELS = {**STATUSES, "eligible": "Information"}
STATUS_ORDER = ("ineligible", "a_verifier", "eligible")
OTHER_DEPARTEMENTS = "Autres départements"


def departement_sheet_title(code: str) -> str:
    """« 04 Alpes-de-Haute-Provence »: Excel allows 31 characters, no « / \\ ? * [ ] : »."""
    return f"{code} {DEPARTEMENTS[code]}"[:31]


def _motifs(row: Row) -> str:
    return "\n".join(f"• {message}" for _, _, message in row.findings)


DOSSIER_COLUMNS = (
    Column("Démarche", 11, repeat=True), Column("N° dossier", 10), Column("État DS", 15, wrap=True, repeat=True),
    Column("Date de dépôt", 16), Column("Porteur", 24, wrap=True), Column("SIRET", 15),
    Column("Type de collectivité", 11, wrap=True, repeat=True), Column("Département", 12, repeat=True),
    Column("Groupe instructeur", 16, wrap=True, repeat=True), Column("Intitulé du projet", 32, wrap=True),
    Column("Thématique", 22, wrap=True, repeat=True), Column("Coût total HT", 13),
    Column("Subvention sollicitée", 13), Column("Montant plafonné", 13), Column("Statut d'éligibilité", 11),
    Column("Motifs", 55, wrap=True), Column("ZRR (part des communes)", 11), Column("Taille", 9, repeat=True),
    Column("Score de priorité (sur 9)", 9), Column("Avis du référent", 11, wrap=True, repeat=True),
    Column("Montant proposé", 13),
)
PIECES_COLUMN = Column("Pièces", 10)
# Filled by the committee, read back by `itn7 decisions import`; the key (hidden) finds the dossier
# whatever the sorting or filtering.
DECISION_HEADER, AMOUNT_HEADER, MOTIVATION_HEADER, KEY_HEADER = (
    "Décision du comité", "Montant attribué (€)", "Motivation", "Clé itn7 (ne pas modifier)")
EMPTY_INPUTS: tuple[dict[str, Any], ...] = ({}, {"number_format": AMOUNT_FORMAT}, {"wrap": True})
DECISION_COLUMNS = (Column(DECISION_HEADER, 15), Column(AMOUNT_HEADER, 14), Column(MOTIVATION_HEADER, 40, wrap=True),
                    Column(KEY_HEADER, 6, hidden=True))


REPEATED_CELLS = 2_000  # per sheet: few distinct values in the columns marked `repeat`, but never unbounded


class Table:
    """A table sheet: set up before its first row, rows appended with their height, autofilter at the end."""

    def __init__(self, ws: WriteOnlyWorksheet, columns: Sequence[Column], footer: str, *,
                 paper: str = PAPERSIZE_A4) -> None:
        self.ws = ws
        self.columns = columns
        self.rows = 0  # below the header
        # Cells of the columns whose values repeat (démarche, état, statut…) are made once and written
        # many times: a cell holds no row of its own until written.
        self._repeated: dict[tuple[Any, ...], PreparedCell] = {}
        self._stream = set_up_table(ws, columns, freeze="C2", footer=footer, paper=paper)

    def cells(self, values: Sequence[Any]) -> tuple[list[PreparedCell | None], float | None]:
        """Cells for a row whose str values are dossier texts (cells given as such are kept), and its height."""
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for the {len(self.columns)} columns of « {self.ws.title} »")
        cells, lines = self.some_cells(values)
        return cells, height(lines)

    def some_cells(self, values: Sequence[Any], start: int = 0) -> tuple[list[PreparedCell | None], int]:
        """`cells` of the columns from `start` on, one per value, and the lines their wrapped texts need:
        cells several rows share (a dossier's, on each of its lines) are made once."""
        cells: list[PreparedCell | None] = []
        lines = 1
        columns = self.columns[start:start + len(values)]
        for index, (column, value) in enumerate(zip(columns, values, strict=True), start=start):
            if not isinstance(value, str):
                cells.append(value)
                text = value.value if value is not None else None  # a pre-filled cell may wrap too
            elif not value:
                cells.append(None)  # nothing to write
                continue
            elif column.repeat:  # looked up without building a maker: most values are found
                cells.append(self._repeated.get((index, value))
                             or self._share((index, value), text_cell(self.ws, value, wrap=column.wrap)))
                text = value
            else:
                cells.append(text_cell(self.ws, value, wrap=column.wrap))
                text = value
            if column.wrap and text and isinstance(text, str):
                lines = max(lines, lines_needed(text, column.width))
        return cells, lines

    def dossier_lead(self, row: Row) -> tuple[list[PreparedCell | None], int]:
        """The first four cells of each of a dossier's lines (démarche, number, porteur, groupe), for `lines`."""
        return self.some_cells([labels.demarche(row.demarche_key, short=True), number_cell(self.ws, row.number, "0"),
                                row.porteur, row.groupe_departement])

    def lines(self, lead: tuple[list[PreparedCell | None], int], values: Sequence[Any]) -> None:
        """Appends a row made of a dossier's `lead` cells (`some_cells` of the first columns) and `values`."""
        if len(lead[0]) + len(values) != len(self.columns):
            raise ValueError(f"{len(lead[0])} + {len(values)} values for the {len(self.columns)} columns of "
                             f"« {self.ws.title} »")
        cells, lines = self.some_cells(values, len(lead[0]))
        self.write(prepare(lead[0] + cells, height(max(lead[1], lines))))

    def status(self, status: str | None, label: str) -> PreparedCell:
        """A coloured status cell, shared by every row with that status."""
        return self._shared(("status", status, label), partial(status_cell, self.ws, status, label))

    def _shared(self, key: tuple[Any, ...], make: Callable[[], PreparedCell]) -> PreparedCell:
        cell = self._repeated.get(key)
        return cell if cell is not None else self._share(key, make())

    def _share(self, key: tuple[Any, ...], cell: PreparedCell) -> PreparedCell:
        if len(self._repeated) < REPEATED_CELLS:
            self._repeated[key] = cell
        return cell

    def write(self, row: PreparedRow) -> None:
        self._stream.write(row)
        self.rows += 1

    def finish(self) -> None:
        """The autofilter, then the sheet closed with its rows: nothing can be added after."""
        finish_table(self.ws, self.columns, self.rows)
        self._stream.close()


class DossierTable(Table):
    """A sheet with one row per dossier: « Dossiers » and each département's sheet (A3: 21 columns)."""

    def __init__(self, ws: WriteOnlyWorksheet, settings: Settings, footer: str, *, pieces: bool) -> None:
        super().__init__(ws, DOSSIER_COLUMNS + ((PIECES_COLUMN,) if pieces else ()) + DECISION_COLUMNS, footer,
                         paper=PAPERSIZE_A3)
        self.settings = settings
        self.pieces = pieces
        self._choices = DataValidation(type="list", formula1='"' + ",".join(DECISION_LABELS.values()) + '"',
                                       allow_blank=True, showErrorMessage=True, errorTitle="Décision du comité",
                                       error="Choisissez dans la liste : " + ", ".join(DECISION_LABELS.values()) + ".")
        self._amounts = DataValidation(type="decimal", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
                                       showErrorMessage=True, errorTitle="Montant attribué",
                                       error="Un montant en euros, positif ou nul.")
        ws.data_validations.append(self._choices)
        ws.data_validations.append(self._amounts)
        # Protected without a password: nothing but the decision columns is edited by mistake, and
        # sorting and filtering stay allowed.
        protection = ws.protection
        protection.sheet = True
        protection.sort = protection.autoFilter = False
        protection.formatColumns = protection.formatRows = False

    def add(self, row: Row, pieces: PurePosixPath | None = None, *, also: DossierTable | None = None) -> None:
        """Writes the dossier's row here and, when given, in `also` (its département's sheet).

        The row is prepared once for both sheets (the same workbook: the same styles)."""
        ws = self.ws
        state = labels.STATES.get(row.state, row.state) + (" (archivé)" if row.archived else "")
        links = self._links(row, pieces)
        values: list[Any] = [
            labels.demarche(row.demarche_key, short=True), links[0],
            state, date_cell(ws, row.date_depot), row.porteur, row.siret, row.type_collectivite, row.departement,
            row.groupe, row.intitule, row.thematique, number_cell(ws, row.cout_total, AMOUNT_FORMAT),
            number_cell(ws, row.subvention, AMOUNT_FORMAT), number_cell(ws, row.plafonne, AMOUNT_FORMAT),
            self.status(row.status, STATUSES[row.status]), _motifs(row),
            number_cell(ws, row.zrr, PERCENT_FORMAT), row.taille, number_cell(ws, row.score, SCORE_FORMAT),
            row.avis, number_cell(ws, row.montant_propose, AMOUNT_FORMAT), *links[1:], *self._decision(row),
        ]
        prepared = prepare(*self.cells(values))
        self.write(prepared)
        if also is not None:
            also.write(prepared)

    def _decision(self, row: Row) -> list[PreparedCell]:
        """The committee's cells, pre-filled from a recorded decision, and the row's hidden key."""
        ws = self.ws
        if row.decision is None:  # most rows: three empty cells, made once per sheet
            empty = [self._shared(("decision", index), partial(input_cell, ws, None, **options))
                     for index, options in enumerate(EMPTY_INPUTS)]
        else:
            empty = [input_cell(ws, DECISION_LABELS.get(row.decision)),
                     input_cell(ws, row.decision_amount, number_format=AMOUNT_FORMAT),
                     input_cell(ws, row.decision_motivation, wrap=True)]
        return [*empty, text_cell(ws, decision_key(row.session, row.number, row.modified))]

    def finish(self) -> None:
        first = len(self.columns) - len(DECISION_COLUMNS) + 1
        last_row = max(self.rows + 1, 2)
        self._choices.sqref = f"{get_column_letter(first)}2:{get_column_letter(first)}{last_row}"
        self._amounts.sqref = f"{get_column_letter(first + 1)}2:{get_column_letter(first + 1)}{last_row}"
        super().finish()  # closes the sheet: after everything written at its end

    def _links(self, row: Row, pieces: PurePosixPath | None) -> list[PreparedCell | None]:
        """The dossier's link to DS, and the link to its attachments when the sheet has that column."""
        links: list[PreparedCell | None] = [link_cell(self.ws, str(row.number),
                                              dossier_url(self.settings, row.demarche_number, row.number),
                                              tooltip="Ouvrir le dossier dans Démarche Numérique")]
        if self.pieces:
            links.append(link_cell(self.ws, "Ouvrir", f"{pieces}/", tooltip="Dossier des pièces jointes")
                         if pieces is not None else None)
        return links


EXPENSE_COLUMNS = (
    Column("Démarche", 11, repeat=True), Column("N° dossier", 10), Column("Porteur", 30, wrap=True),
    Column("Groupe", 8, repeat=True), Column("Ligne", 6), Column("Nature de la dépense", 30, wrap=True, repeat=True),
    Column("Description", 50, wrap=True), Column("Montant HT", 13), Column("Nature éligible", 9),
)


class ExpenseTable(Table):
    """« Dépenses »: every expense line of every dossier, with whether its nature is eligible."""

    def __init__(self, ws: WriteOnlyWorksheet, footer: str) -> None:
        super().__init__(ws, EXPENSE_COLUMNS, footer)

    def add(self, row: Row) -> None:
        ws = self.ws
        if not row.expenses:
            return
        lead = self.dossier_lead(row)
        for position, expense in enumerate(row.expenses, start=1):
            self.lines(lead, [
                number_cell(ws, position, "0"), expense.nature, expense.description,
                number_cell(ws, expense.amount, AMOUNT_FORMAT),
                self.status(None if expense.eligible else "ineligible", "oui" if expense.eligible else "non"),
            ])


FINDING_COLUMNS = (
    Column("Démarche", 11, repeat=True), Column("N° dossier", 10), Column("Porteur", 30, wrap=True),
    Column("Groupe", 8, repeat=True), Column("Règle", 20, repeat=True), Column("Statut", 11),
    Column("Message", 80, wrap=True),
)


class FindingTable(Table):
    """« Contrôles »: one row per finding of the check."""

    def __init__(self, ws: WriteOnlyWorksheet, footer: str) -> None:
        super().__init__(ws, FINDING_COLUMNS, footer)

    def add(self, row: Row) -> None:
        if not row.findings:
            return
        lead = self.dossier_lead(row)
        for rule, status, message in row.findings:
            self.lines(lead, [RULE_LABELS.get(rule, rule), self.status(status, FINDING_LABELS[status]), message])


# ---------------------------------------------------------------- Synthèse


@dataclass
class Tally:
    """Counts and amounts of a group of dossiers."""

    dossiers: int = 0
    requested: float = 0.0
    capped: float = 0.0
    proposed: float = 0.0
    attributed: float = 0.0  # the committee's « Retenu » amounts recorded by `itn7 decisions import`

    def add(self, row: Row) -> None:
        self.dossiers += 1
        self.requested += row.subvention or 0.0
        self.capped += row.plafonne or 0.0
        self.proposed += row.montant_propose or 0.0
        if row.decision == "retenu":
            self.attributed += row.decision_amount or 0.0


@dataclass
class Summary:
    """What the Synthèse sheet counts while the dossiers stream by."""

    total: Tally = field(default_factory=Tally)
    by_status: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_demarche: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_departement: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_state: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))

    def add(self, row: Row) -> None:
        self.total.add(row)
        self.by_status[row.status].add(row)
        self.by_demarche[row.demarche_key].add(row)
        self.by_departement[row.groupe_departement].add(row)
        self.by_state[row.state].add(row)


SYNTHESE_WIDTHS = (44, 16, 22, 22, 22, 22, 22, 22)
_ROWS: WeakKeyDictionary[WriteOnlyWorksheet, int] = WeakKeyDictionary()


def _append(ws: WriteOnlyWorksheet, cells: list[Any]) -> int:
    """Appends a row to the Synthèse; returns its number (the chart refers to rows by number)."""
    _ROWS[ws] = _ROWS.get(ws, 0) + 1
    ws.append(cells)
    return _ROWS[ws]


TALLY_HEADERS = ("Dossiers", "Subvention sollicitée", "Montant plafonné", "Montant proposé")


@dataclass
class Context:
    """Everything the Synthèse states besides the counts."""

    session: int
    closing: datetime
    demarche: str | None
    freshness: Freshness
    generated_at: datetime
    settings: Settings


def _tally_row(ws: WriteOnlyWorksheet, label: str, tally: Tally, *, total: bool = False,
               status: str | None = None) -> list[Any]:
    border = TOTAL_BORDER if total else None
    font = BOLD if total else None
    first = styled(ws, label, font=font, border=border)
    if status is not None:
        first.fill = STATUS_FILLS[status]
        first.font = STATUS_FONTS[status]
    return [first, styled(ws, tally.dossiers, font=font, number_format="0", border=border),
            *(styled(ws, amount, font=font, number_format=AMOUNT_FORMAT, border=border)
              for amount in (tally.requested, tally.capped, tally.proposed))]


def _section(ws: WriteOnlyWorksheet, title: str, headers: tuple[str, ...] = TALLY_HEADERS) -> None:
    _append(ws, [])
    _append(ws, [styled(ws, title, font=SECTION_FONT), *(styled(ws, h, font=BOLD, alignment=RIGHT) for h in headers)])


def _table(ws: WriteOnlyWorksheet, title: str, groups: Mapping[str, Tally], labels: Mapping[str, str],
           order: tuple[str, ...], total: Tally, *, statuses: bool = False) -> None:
    _section(ws, title)
    keys = [k for k in order if k in groups] + sorted(k for k in groups if k not in order)
    for key in keys:
        _append(ws, _tally_row(ws, labels.get(key, key or "inconnu"), groups[key], status=key if statuses else None))
    _append(ws, _tally_row(ws, "Total", total, total=True))


def _euros(amount: float) -> str:
    return f"{amount:,.0f} €".replace(",", "\u202f")  # French thousands: narrow no-break space


def _paris(moment: datetime | None) -> str:
    return moment.strftime("%d/%m/%Y à %H:%M") if moment else "jamais"


def write_synthese(ws: WriteOnlyWorksheet, summary: Summary, earlier: Mapping[int, SessionTotals],
                   ctx: Context) -> None:
    """The first sheet: what the session holds, how fresh it is, and the envelope."""
    for index, width in enumerate(SYNTHESE_WIDTHS):
        ws.column_dimensions[get_column_letter(index + 1)].width = width
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.orientation = "portrait"
    ws.page_setup.paperSize = PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    scope = f" — démarche {labels.demarche(ctx.demarche, short=True).lower()} seulement" if ctx.demarche else ""
    which = f"comité de la session {ctx.session}" if ctx.session else "dossiers de toutes les sessions"
    _append(ws, [styled(ws, f"ITN7 Axe 3 (PACA) — {which}{scope}", font=TITLE_FONT)])
    _append(ws, [styled(ws, "Ce classeur contient des données personnelles : réservé aux membres du comité.",
                        font=BOLD)])
    fresh = ctx.freshness
    for label, value in (
        ("Dossiers déposés jusqu'au", ctx.closing.strftime("%d/%m/%Y à %H:%M")),
        ("Données synchronisées le", _paris(fresh.synced_at)),
        ("Contrôles d'éligibilité du", f"{_paris(fresh.checked_at)} (règles {fresh.ruleset or '—'})"),
        ("Classeur produit le", _paris(ctx.generated_at)),
    ):
        _append(ws, [styled(ws, label, font=BOLD), styled(ws, value)])
    _append(ws, [styled(ws, "Heures de Paris. Les dossiers modifiés dans Démarche Numérique après la synchronisation "
                          "n'y figurent pas sous leur dernière forme.", font=NOTE_FONT)])

    _table(ws, "Par statut d'éligibilité", summary.by_status, STATUSES, STATUS_ORDER, summary.total,
           statuses=True)
    _table(ws, "Par démarche", summary.by_demarche, {k: v.long for k, v in labels.DEMARCHES.items()},
           tuple(labels.DEMARCHES), summary.total)
    _table(ws, "Par département (groupe instructeur)", summary.by_departement,
           {code: f"{code} {name}" for code, name in DEPARTEMENTS.items()}, tuple(DEPARTEMENTS), summary.total)
    _table(ws, "Par état dans Démarche Numérique", summary.by_state, labels.STATES, tuple(labels.STATES),
           summary.total)
    _envelope(ws, summary, earlier, ctx)

    _append(ws, [])
    for note in (
        f"Montant plafonné : la subvention sollicitée, limitée à {_euros(ctx.settings.plafond_commune)} pour une "
        "commune seule.",
        "Montant proposé : annotation « Montant proposé par le référent » saisie dans Démarche Numérique.",
        f"Non repris : {fresh.deleted} dossier(s) supprimé(s) ou masqué(s) dans Démarche Numérique, "
        f"{fresh.out_of_session} dossier(s) déposé(s) après la dernière clôture"
        + (", et les dossiers des autres sessions." if ctx.session else "."),
    ):
        _append(ws, [styled(ws, note, font=NOTE_FONT)])


def _envelope(ws: WriteOnlyWorksheet, summary: Summary, earlier: Mapping[int, SessionTotals], ctx: Context) -> None:
    envelope = ctx.settings.enveloppe
    headers = ("Dossiers", "Subvention sollicitée", "Cumul sollicité", "Part de l'enveloppe", "Montant proposé",
               "Montant attribué", "Reste de l'enveloppe")
    _section(ws, f"Enveloppe régionale : {_euros(envelope)}", headers)
    # ctx.session 0 (every session): one line « Toutes sessions ».
    sessions = {**earlier, ctx.session: SessionTotals(summary.total.dossiers, summary.total.requested,
                                                      summary.total.proposed, summary.total.attributed)}
    cumulated = proposed = attributed = 0.0
    first = last = 0
    for number in sorted(sessions):
        totals = sessions[number]
        cumulated += totals.requested
        proposed += totals.proposed
        attributed += totals.attributed
        last = _append(ws, [
            styled(ws, f"Session {number}" if number else "Toutes sessions",
                   font=BOLD if number == ctx.session else None),
            styled(ws, totals.dossiers, number_format="0"),
            styled(ws, totals.requested, number_format=AMOUNT_FORMAT),
            styled(ws, cumulated, number_format=AMOUNT_FORMAT),
            styled(ws, cumulated / envelope if envelope else None, number_format=PERCENT_FORMAT),
            styled(ws, totals.proposed, number_format=AMOUNT_FORMAT),
            styled(ws, totals.attributed, number_format=AMOUNT_FORMAT),
            styled(ws, envelope - attributed, number_format=AMOUNT_FORMAT)])
        first = first or last
    _append(ws, [styled(ws, "Reste de l'enveloppe après les montants proposés", font=BOLD, border=TOTAL_BORDER),
                 *(styled(ws, None, border=TOTAL_BORDER) for _ in range(4)),
                 styled(ws, envelope - proposed, font=BOLD, number_format=AMOUNT_FORMAT, border=TOTAL_BORDER)])
    _append(ws, [styled(ws, "Reste de l'enveloppe après les montants attribués par le comité", font=BOLD),
                 *(styled(ws, None) for _ in range(5)),
                 styled(ws, envelope - attributed, font=BOLD, number_format=AMOUNT_FORMAT)])
    _append(ws, [styled(ws, "Les montants sollicités comprennent tous les dossiers déposés, y compris refusés ou "
                            "classés sans suite. Montant attribué : décisions « Retenu » importées par "
                            "« itn7 decisions import ».", font=NOTE_FONT)])
    if first:
        ws.add_chart(_envelope_chart(ws, first, last), "J2")


def _envelope_chart(ws: WriteOnlyWorksheet, first: int, last: int) -> BarChart:
    """Attributed and remaining amounts per session, stacked: the envelope at a glance."""
    chart = BarChart()
    chart.type = "col"
    chart.grouping = "stacked"
    chart.overlap = 100
    chart.title = "Enveloppe : attribué et restant par session"
    chart.y_axis.title = "€"
    chart.y_axis.numFmt = "#,##0"
    chart.add_data(Reference(ws, min_col=7, max_col=8, min_row=first - 1, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=first, max_row=last))
    chart.width, chart.height = 16, 8
    return chart
