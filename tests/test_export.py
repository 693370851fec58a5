"""The committee workbook, read back with openpyxl: sheets, rows, types, links, and no formula from dossier data.

The database comes from the fake DS server through the real sync, with hostile texts typed into
dossiers of session 2 beforehand; the check then runs as `itn7 check` would.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.workbook.workbook import Workbook
from typer.testing import CliRunner

from itn7cli import check, config, export, store
from itn7cli.cli import app
from itn7cli.export.cells import EXCEL_CELL_LIMIT, TRUNCATED, clean_text, text_cell
from itn7cli.export.data import dossier_url
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.fakeds.dataset import paris
from itn7cli.rules import session_for

from .syncutil import TOKEN, env_for, run_sync

SESSION = 2
INJECTIONS = {
    "formula": '=HYPERLINK("http://x","y")',
    "at": "@SUM(A1)",
    "plus": "+33 6 12 34 56 78",
    "minus": "-1+1",
    "error": "#N/A",
}
CONTROL = "Ligne\x00avec\x07des\x1bcontrôles\x0b"
LONG = "Très long. " * 4000  # 44 000 characters
SHEETS = ["Synthèse", "Dossiers", "04 Alpes-de-Haute-Provence", "05 Hautes-Alpes", "06 Alpes-Maritimes",
          "13 Bouches-du-Rhône", "83 Var", "84 Vaucluse", "Dépenses", "Contrôles"]
HEADERS = ["Démarche", "N° dossier", "État DS", "Date de dépôt", "Porteur", "SIRET", "Type de collectivité",
           "Département", "Groupe instructeur", "Intitulé du projet", "Thématique", "Coût total HT",
           "Subvention sollicitée", "Montant plafonné", "Statut d'éligibilité", "Motifs", "ZRR (part des communes)",
           "Taille", "Score de priorité (sur 9)", "Avis du référent", "Montant proposé",
           # issue 11: the committee's columns and the hidden key the import reads
           "Décision du comité", "Montant attribué (€)", "Motivation", "Clé itn7 (ne pas modifier)"]


@dataclass
class Built:
    """A synced, checked database, the workbook of session 2, and which dossier got which hostile text."""

    db_path: Path
    workbook_path: Path
    workbook: Workbook
    targets: dict[str, int]
    hidden: int
    numbers: dict[str, int]


def _session_numbers(dataset: Dataset) -> list[int]:
    sessions = config.Settings().sessions
    return [n for key in ("general", "labo") for n in dataset.visible_numbers(key)
            if session_for(paris(dataset.dossier(n).depose_at), sessions) == SESSION]


def _plant(dataset: Dataset) -> tuple[dict[str, int], int]:
    """Types the hostile texts into distinct general dossiers of the session; hides one, refuses one, closes one."""
    general = [n for n in _session_numbers(dataset) if dataset.dossier(n).key == "general"]
    targets = dict(zip([*INJECTIONS, "control", "long", "avis"], general, strict=False))
    for name, value in INJECTIONS.items():
        dataset.edit_champ(targets[name], "Intitulé du projet", value)
    dataset.edit_champ(targets["control"], "Intitulé du projet", CONTROL)
    dataset.edit_champ(targets["long"], "Description de la situation existante et des besoins identifiés", LONG)
    dataset.edit_champ(targets["long"], "Intitulé du projet", LONG)
    dataset.edit_champ(targets["avis"], "Avis du référent départemental", "=1+1")
    hidden, refused, closed = general[len(targets):len(targets) + 3]
    commune = next(n for n in general[len(targets) + 3:] if dataset.dossier(n).applicant.cj == "7210")
    dataset.edit_champ(commune, "Le projet est-il porté par plusieurs collectivités ?", False)
    dataset.edit_champ(commune, "Montant de la subvention sollicitée (€)", 45_000.0)
    dataset.hide(hidden)
    dataset.set_state(refused, "refuse", "Projet hors du champ de l'appel.")
    dataset.set_state(closed, "sans_suite", "Dossier abandonné par la commune.")
    return {**targets, "refused": refused, "closed": closed, "commune": commune}, hidden


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("export")
    dataset = Dataset.generate(seed=11, counts={"general": 60, "labo": 15})
    targets, hidden = _plant(dataset)
    db_path = folder / "itn7.db"
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}) as server:
        run_sync(server, db_path, dataset.numbers)
    db = store.open_db(db_path)
    settings = config.Settings()
    check.run(db, settings)
    path = folder / "comite.xlsx"
    export.export_session(db, settings, SESSION, path)
    db.close()
    return Built(db_path, path, openpyxl.load_workbook(path), targets, hidden, dict(dataset.numbers))


def _rows(ws: Any) -> list[dict[str, Any]]:
    """The data rows of a table sheet as {header: cell}."""
    rows = list(ws.iter_rows())
    headers = [c.value for c in rows[0]]
    return [dict(zip(headers, row, strict=False)) for row in rows[1:]]


def _by_number(built: Built, sheet: str = "Dossiers") -> dict[int, dict[str, Any]]:
    return {int(r["N° dossier"].value): r for r in _rows(built.workbook[sheet])}


def _expected_numbers(built: Built) -> set[int]:
    db = store.open_db(built.db_path, must_exist=True)
    rows = db.execute("SELECT c.number FROM checks c JOIN dossiers d ON d.number = c.number "
                      "WHERE c.session = ? AND d.deletion_state IS NULL", [SESSION]).fetchall()
    return {n for (n,) in rows}


# ---------------------------------------------------------------- layout


def test_the_workbook_has_the_committee_sheets_in_order(built: Built) -> None:
    assert built.workbook.sheetnames == SHEETS


def test_the_dossiers_sheet_and_every_departement_sheet_have_the_headers_of_issue_4(built: Built) -> None:
    for name in ["Dossiers", *SHEETS[2:8]]:
        assert [c.value for c in built.workbook[name][1]] == HEADERS, name


def test_the_dossiers_sheet_is_frozen_filtered_and_set_up_for_printing(built: Built) -> None:
    ws = built.workbook["Dossiers"]
    setup = (ws.freeze_panes, ws.auto_filter.ref, ws.page_setup.orientation, ws.page_setup.fitToWidth,
             ws.page_setup.fitToHeight, ws.sheet_properties.pageSetUpPr.fitToPage, ws.print_title_rows)
    assert setup == ("C2", f"A1:Y{ws.max_row}", "landscape", 1, 0, True, "$1:$1")
    assert ws.column_dimensions["P"].width == 55


# ---------------------------------------------------------------- which dossiers


def test_the_dossiers_sheet_holds_exactly_one_row_per_dossier_of_the_session(built: Built) -> None:
    numbers = [int(r["N° dossier"].value) for r in _rows(built.workbook["Dossiers"])]
    assert sorted(numbers) == sorted(_expected_numbers(built))
    assert len(numbers) == len(set(numbers)) > 10


def test_dossiers_of_other_sessions_are_left_out(built: Built) -> None:
    db = store.open_db(built.db_path, must_exist=True)
    others = {n for (n,) in db.execute("SELECT number FROM checks WHERE session IS NOT ? ", [SESSION])}
    assert others and not others & set(_by_number(built))


def test_a_dossier_deleted_upstream_is_left_out(built: Built) -> None:
    db = store.open_db(built.db_path, must_exist=True)
    state = db.execute("SELECT deletion_state FROM dossiers WHERE number = ?", [built.hidden]).fetchone()[0]
    assert state is not None
    assert built.hidden not in _by_number(built)
    assert all(built.hidden != r["N° dossier"].value for r in _rows(built.workbook["Dépenses"]))


def test_refused_and_sans_suite_dossiers_are_shown_with_their_state(built: Built) -> None:
    rows = _by_number(built)
    assert (rows[built.targets["refused"]]["État DS"].value, rows[built.targets["closed"]]["État DS"].value) == (
        "Refusé", "Classé sans suite")


def test_each_departement_sheet_holds_the_dossiers_of_its_groupe_instructeur(built: Built) -> None:
    everyone = _by_number(built)
    seen: list[int] = []
    for name in SHEETS[2:8]:
        rows = _by_number(built, name)
        assert all(r["Groupe instructeur"].value.startswith(name[:2]) for r in rows.values()), name
        seen += rows
    assert sorted(seen) == sorted(everyone)


# ---------------------------------------------------------------- types and links


def test_amounts_are_numbers_in_euros_and_the_filing_date_is_a_date(built: Built) -> None:
    row = next(iter(_by_number(built).values()))
    for header in ("Coût total HT", "Subvention sollicitée", "Montant plafonné"):
        assert isinstance(row[header].value, int | float), header  # whole numbers come back as int
        assert "€" in row[header].number_format
    assert isinstance(row["Date de dépôt"].value, datetime)
    assert row["Date de dépôt"].value.tzinfo is None
    assert isinstance(row["Score de priorité (sur 9)"].value, int | float)


def test_the_filing_date_is_shown_in_paris_time(built: Built) -> None:
    db = store.open_db(built.db_path, must_exist=True)
    number, row = next(iter(_by_number(built).items()))
    stored = db.execute("SELECT date_depot FROM dossiers WHERE number = ?", [number]).fetchone()[0]
    assert row["Date de dépôt"].value == datetime.fromisoformat(stored).astimezone(config.PARIS).replace(tzinfo=None)


def test_each_dossier_number_links_to_its_page_for_instructeurs(built: Built) -> None:
    for number, row in _by_number(built).items():
        demarche = built.numbers["general" if row["Démarche"].value == "Générale" else "labo"]
        assert row["N° dossier"].hyperlink.target == (
            f"https://demarche.numerique.gouv.fr/procedures/{demarche}/dossiers/{number}")


def test_links_follow_the_api_host_when_it_is_the_legacy_one() -> None:
    settings = config.Settings(api_url=config.LEGACY_API_URL)
    assert dossier_url(settings, 84211, 4601036) == (
        "https://www.demarches-simplifiees.fr/procedures/84211/dossiers/4601036")


def test_a_single_commune_over_the_cap_gets_a_capped_amount(built: Built) -> None:
    rows = _by_number(built)
    capped = [n for n, r in rows.items() if r["Subvention sollicitée"].value != r["Montant plafonné"].value]
    assert capped == [built.targets["commune"]]
    row = rows[built.targets["commune"]]
    assert (row["Subvention sollicitée"].value, row["Montant plafonné"].value) == (45_000, 30_000)


# ---------------------------------------------------------------- hostile texts


def _sheet_xml(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()
                if name.startswith("xl/worksheets/sheet")}


def test_not_a_single_cell_of_the_workbook_is_a_formula(built: Built) -> None:
    for name, xml in _sheet_xml(built.workbook_path).items():
        assert not re.search(r"<f[ >]", xml), name
    for ws in built.workbook.worksheets:
        assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type in ("f", "e")], ws.title


@pytest.mark.parametrize("name", list(INJECTIONS))
def test_an_injected_text_stays_text_with_a_quote_prefix(built: Built, name: str) -> None:
    cell = _by_number(built)[built.targets[name]]["Intitulé du projet"]
    assert (cell.value, cell.data_type) == (INJECTIONS[name], "s")
    assert cell.quotePrefix is (name != "error")


def test_an_annotation_starting_with_equals_stays_text(built: Built) -> None:
    cell = _by_number(built)[built.targets["avis"]]["Avis du référent"]
    assert (cell.value, cell.data_type, cell.quotePrefix) == ("=1+1", "s", True)


def test_control_characters_are_removed(built: Built) -> None:
    assert _by_number(built)[built.targets["control"]]["Intitulé du projet"].value == "Ligneavecdescontrôles"


def test_a_text_beyond_the_excel_limit_is_cut_with_a_visible_mark(built: Built) -> None:
    value = _by_number(built)[built.targets["long"]]["Intitulé du projet"].value
    assert len(value) == EXCEL_CELL_LIMIT
    assert value.endswith(TRUNCATED)
    assert value.startswith(LONG.strip()[:1000])


def test_a_string_that_looks_like_an_error_value_is_written_as_text() -> None:
    ws = openpyxl.Workbook(write_only=True).create_sheet()
    assert [(text_cell(ws, v).value, text_cell(ws, v).xml.split(">")[0].split(" t=")[1])
            for v in ("#N/A", "=1", "12")] == [("#N/A", '"inlineStr"'), ("=1", '"inlineStr"'), ("12", '"inlineStr"')]


def test_clean_text_keeps_line_breaks_and_tabs() -> None:
    assert clean_text("a\r\nb\tc\x0cd") == "a\nb\tcd"


def test_clean_text_drops_a_lone_surrogate_and_keeps_astral_characters() -> None:
    assert clean_text(json.loads('"a\\ud83db \\ud83d\\ude00"')) == "ab \U0001f600"


# ---------------------------------------------------------------- Dépenses, Contrôles, Synthèse


def test_expense_lines_say_whether_their_nature_is_eligible(built: Built) -> None:
    rows = _rows(built.workbook["Dépenses"])
    verdicts = {(r["Nature de la dépense"].value, r["Nature éligible"].value) for r in rows}
    assert ("Frais de personnel", "non") in verdicts or ("Achat de matériel informatique", "non") in verdicts
    assert all(v == ("non" if n in ("Frais de personnel", "Achat de matériel informatique") else "oui")
               for n, v in verdicts)
    assert all(isinstance(r["Montant HT"].value, int | float) for r in rows)
    assert {int(r["N° dossier"].value) for r in rows} <= _expected_numbers(built)


def test_the_controles_sheet_has_one_row_per_finding_of_the_session(built: Built) -> None:
    db = store.open_db(built.db_path, must_exist=True)
    expected = db.execute("SELECT count(*) FROM check_findings f JOIN checks c ON c.number = f.dossier_number "
                          "JOIN dossiers d ON d.number = c.number WHERE c.session = ? AND d.deletion_state IS NULL",
                          [SESSION]).fetchone()[0]
    rows = _rows(built.workbook["Contrôles"])
    assert len(rows) == expected > 0
    assert [c.value for c in built.workbook["Contrôles"][1]] == [
        "Démarche", "N° dossier", "Porteur", "Groupe", "Règle", "Statut", "Message"]


def _synthese(built: Built) -> list[list[Any]]:
    return [[c.value for c in row] for row in built.workbook["Synthèse"].iter_rows()]


def test_the_synthese_counts_per_status_add_up_to_the_dossiers_sheet(built: Built) -> None:
    rows = _synthese(built)
    start = next(i for i, r in enumerate(rows) if r[0] == "Par statut d'éligibilité")
    counts = {}
    for row in rows[start + 1:]:
        counts[row[0]] = row[1]
        if row[0] == "Total":
            break
    statuses = [r["Statut d'éligibilité"].value for r in _rows(built.workbook["Dossiers"])]
    assert counts == {**{s: statuses.count(s) for s in set(statuses)}, "Total": len(statuses)}


def test_the_envelope_table_cumulates_requested_amounts_of_the_sessions_so_far(built: Built) -> None:
    rows = _synthese(built)
    start = next(i for i, r in enumerate(rows) if str(r[0]).startswith("Enveloppe régionale : 1"))
    session1, session2 = rows[start + 1], rows[start + 2]
    requested = sum(r["Subvention sollicitée"].value or 0 for r in _rows(built.workbook["Dossiers"]))
    assert (session1[0], session2[0]) == ("Session 1", "Session 2")
    assert session2[2] == pytest.approx(requested)
    assert session2[3] == pytest.approx(session1[2] + requested)
    assert session2[4] == pytest.approx(session2[3] / 1_780_000)


# ---------------------------------------------------------------- command line


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["export", *args], env={"COLUMNS": "200"})


def _copy(built: Built, tmp_path: Path) -> Path:
    path = tmp_path / "copie.db"
    shutil.copy(built.db_path, path)
    return path


def test_export_writes_the_default_file_name_and_prints_its_path(built: Built, tmp_path: Path) -> None:
    result = _invoke("--session", "2", "--db", str(_copy(built, tmp_path)))
    assert result.exit_code == 0, result.stderr
    name = f"itn7-comite-session-2-{datetime.now(config.PARIS):%Y-%m-%d}.xlsx"
    assert result.stdout == f"{name}\n"
    assert (tmp_path / name).is_file()  # the autouse fixture runs every test in tmp_path
    assert "Classeur de la session 2" in result.stderr


def test_export_refuses_a_database_that_was_never_synced(tmp_path: Path) -> None:
    store.open_db(tmp_path / "vide.db").close()
    result = _invoke("--session", "1", "--db", str(tmp_path / "vide.db"))
    assert (result.exit_code, result.stdout) == (5, "")
    assert "jamais été synchronisée" in result.stderr
    assert not list(tmp_path.glob("*.xlsx"))


def test_export_refuses_a_missing_database(tmp_path: Path) -> None:
    result = _invoke("--session", "1", "--db", str(tmp_path / "absente.db"))
    assert (result.exit_code, result.stdout) == (5, "")
    assert "lancez d'abord « itn7 sync »" in result.stderr


def test_export_refuses_a_session_the_call_does_not_have(built: Built, tmp_path: Path) -> None:
    result = _invoke("--session", "4", "--db", str(_copy(built, tmp_path)))
    assert (result.exit_code, result.stdout) == (2, "")
    assert "Session inconnue : 4" in result.stderr


def test_export_runs_the_check_when_there_is_no_stored_result_and_says_so(built: Built, tmp_path: Path) -> None:
    path = _copy(built, tmp_path)
    db = store.open_db(path)
    db.execute("DELETE FROM check_findings")
    db.execute("DELETE FROM checks")
    db.conn.commit()
    result = _invoke("--session", "2", "--db", str(path), "--output", str(tmp_path / "c.xlsx"))
    assert result.exit_code == 0, result.stderr
    assert "Aucun contrôle enregistré : contrôle relancé" in result.stderr
    assert openpyxl.load_workbook(tmp_path / "c.xlsx")["Dossiers"].max_row == len(_expected_numbers(built)) + 1


def test_export_reruns_a_check_older_than_the_last_sync(built: Built, tmp_path: Path) -> None:
    path = _copy(built, tmp_path)
    db = store.open_db(path)
    db.execute("UPDATE dossiers SET synced_at = '2099-01-01T00:00:00+00:00' WHERE number = ?",
               [built.targets["formula"]])
    db.conn.commit()
    result = _invoke("--session", "2", "--db", str(path), "--output", str(tmp_path / "c.xlsx"))
    assert result.exit_code == 0, result.stderr
    assert "antérieurs à la dernière synchronisation : contrôle relancé (1 dossier(s)" in result.stderr


def test_export_does_not_recheck_fresh_results(built: Built, tmp_path: Path) -> None:
    result = _invoke("--session", "2", "--db", str(_copy(built, tmp_path)), "-o", str(tmp_path / "c.xlsx"))
    assert result.exit_code == 0, result.stderr
    assert "contrôle relancé" not in result.stderr


def test_export_of_one_demarche_keeps_only_its_dossiers(built: Built, tmp_path: Path) -> None:
    result = _invoke("-s", "2", "-d", "labo", "--db", str(_copy(built, tmp_path)), "-o", str(tmp_path / "l.xlsx"))
    assert result.exit_code == 0, result.stderr
    rows = _rows(openpyxl.load_workbook(tmp_path / "l.xlsx")["Dossiers"])
    assert rows and {r["Démarche"].value for r in rows} == {"Laboratoire"}


def test_quiet_export_prints_only_the_path(built: Built, tmp_path: Path) -> None:
    result = _invoke("-s", "1", "-q", "--db", str(_copy(built, tmp_path)), "-o", str(tmp_path / "q.xlsx"))
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{tmp_path / 'q.xlsx'}\n", "")


def test_export_with_files_gathers_the_attachments_and_links_each_dossier_to_its_folder(tmp_path: Path) -> None:
    dataset = Dataset.generate(seed=5, counts={"general": 12, "labo": 3})
    db_path = tmp_path / "itn7.db"
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}) as server:
        env = {**env_for(server, db_path, dataset.numbers), "ITN7_FILES": str(tmp_path / "fichiers")}
        synced = CliRunner().invoke(app, ["sync", "--files", "-q"], env=env)
        assert synced.exit_code == 0, synced.stderr
    output = tmp_path / "comite.xlsx"
    result = CliRunner().invoke(app, ["export", "-s", "2", "--files", "-o", str(output)], env=env)
    assert result.exit_code == 0, result.stderr
    rows = _rows(openpyxl.load_workbook(output)["Dossiers"])
    targets = [r["Pièces"].hyperlink.target for r in rows if r["Pièces"].value]
    assert rows and len(targets) == len(rows)
    for target in targets:
        assert target.startswith("comite-pieces/") and not Path(target).is_absolute()
        assert any((tmp_path / target).iterdir())
    assert "Pièces jointes de" in result.stderr


def test_row_heights_count_word_wrapping_and_wide_capitals() -> None:
    from itn7cli.export.cells import lines_needed

    # 30 characters would fit in 26 width units (31 average characters), but capitals are wider.
    assert lines_needed("COMMUNE DE TOUËT-DE-L'ESCARÈNE", 26) == 2
    assert lines_needed("commune de touët-de-l'escarène", 26) == 1
    # A word that does not fit on the line starts the next one.
    assert lines_needed("aaaa bbbb cccc", 8) == 2
    assert lines_needed("un\ndeux", 40) == 2


# ---------------------------------------------------------------- unreadable dossiers, openpyxl hook


def test_an_unreadable_dossier_is_listed_with_what_is_known_and_its_finding(built: Built, tmp_path: Path) -> None:
    import sqlite3

    db_path = tmp_path / "itn7.db"
    shutil.copy(built.db_path, db_path)
    number = 9_990_001
    with sqlite3.connect(db_path) as conn:  # as the sync and the check helper leave such a dossier
        conn.execute("INSERT INTO dossiers (number, demarche_number, state, date_depot, date_derniere_modification, "
                     "raw) VALUES (?, ?, 'en_instruction', '2021-06-01T10:00:00+02:00', "
                     "'2021-06-02T10:00:00+02:00', NULL)", [number, built.numbers["general"]])
        conn.execute("INSERT INTO unreadable_dossiers (number, demarche_number, message, first_seen_at, "
                     "last_tried_at) VALUES (?, ?, 'Cannot return null for non-nullable field', '2026-11-01', "
                     "'2026-11-01')", [number, built.numbers["general"]])
        conn.execute("INSERT INTO checks (number, demarche_number, session, status) VALUES (?, ?, ?, 'a_verifier')",
                     [number, built.numbers["general"], SESSION])
    db = store.open_db(db_path)
    path = tmp_path / "comite.xlsx"
    export.export_session(db, config.Settings(), SESSION, path)
    db.close()
    workbook = openpyxl.load_workbook(path)
    # Its groupe is unknown: it goes to the sheet of dossiers routed outside the six, placed after them.
    assert workbook.sheetnames[2 + 6] == "Autres départements"
    row = _by_number(Built(db_path, path, workbook, {}, 0, built.numbers))[number]
    assert (row["Démarche"].value, row["État DS"].value, row["Statut d'éligibilité"].value) == (
        "Générale", "En instruction", "À vérifier")
    assert row["Date de dépôt"].value == datetime(2021, 6, 1, 10, 0)
    assert "Cannot return null for non-nullable field" in row["Motifs"].value
    assert row["Clé itn7 (ne pas modifier)"].value == f"itn7:s{SESSION}:n{number}:m2021-06-02T10:00:00+02:00"


def test_every_table_row_goes_through_the_row_stream_and_lands_in_its_sheet(
        built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """export/rows.py writes the table sheets' rows itself, into the XML openpyxl writes around them: every
    row written must be in the workbook, where openpyxl reads it back."""
    from itn7cli.export import rows

    written: Counter[str] = Counter()
    original = rows.RowStream.write

    def counting(stream: Any, row: Any) -> None:
        written[stream.ws.title] += 1
        original(stream, row)

    monkeypatch.setattr(rows.RowStream, "write", counting)
    db = store.open_db(built.db_path)
    export.export_session(db, config.Settings(), SESSION, tmp_path / "comite.xlsx")
    db.close()
    workbook = openpyxl.load_workbook(tmp_path / "comite.xlsx", read_only=True)
    assert written["Dossiers"] == len(_expected_numbers(built)) + 1  # and the header
    assert set(written) == set(workbook.sheetnames) - {"Synthèse"}
    assert {title: sum(1 for _ in workbook[title].iter_rows()) for title in written} == written


def _cells_of_every_kind(ws: Any, fast: bool) -> list[tuple[list[Any], float | None]]:
    """Rows of every kind of cell the export writes: made by export/cells.py (`fast`), or as openpyxl's own
    cells with the same values and styles."""
    from openpyxl.cell import WriteOnlyCell

    from itn7cli.export import cells as c

    def own(value: Any, *, alignment: Any = c.TOP, link: tuple[str, str] | None = None, quote: bool = False,
            **styles: Any) -> WriteOnlyCell:
        cell = WriteOnlyCell(ws)
        cell.alignment, cell.quotePrefix = alignment, quote
        for name, style in styles.items():
            setattr(cell, name, style)
        cell.value = value  # after the number format: a date would get openpyxl's default one first
        if isinstance(value, str):
            cell.data_type = "s"
        if link is not None:
            cell.hyperlink = link[0]
            cell.hyperlink.tooltip = link[1]
        return cell

    target = ("https://example.org/dossiers/4601012?a=1&b=2", "Ouvrir « ici »")
    when = datetime(2021, 3, 21, 16, 29, 25)
    if fast:
        return [
            (c.header_cells(ws, [c.Column("N° dossier", 10), c.Column("Montant", 12)]), 30.0),
            ([c.text_cell(ws, "Générale"), c.link_cell(ws, "4601012", target[0], tooltip=target[1]),
              c.text_cell(ws, "  espaces  ", wrap=True), c.text_cell(ws, "a < b & c > d \"e\" 'f'\tg\nh"),
              c.text_cell(ws, "=1+1"), c.text_cell(ws, "𝄞 € «»")], None),
            ([None, c.number_cell(ws, 46_250, c.AMOUNT_FORMAT), c.number_cell(ws, 0.1 + 0.2, "0.0"),
              c.number_cell(ws, None, "0"), c.date_cell(ws, when), c.input_cell(ws, None),
              c.input_cell(ws, 1234.5, number_format=c.AMOUNT_FORMAT), c.input_cell(ws, "Retenu", wrap=True),
              c.status_cell(ws, "ineligible", "Inéligible")], 409.0),
        ]
    return [
        ([own(h, alignment=c.HEADER_ALIGNMENT, font=c.HEADER_FONT, fill=c.HEADER_FILL)
          for h in ("N° dossier", "Montant")], 30.0),
        ([own("Générale"), own("4601012", font=c.LINK_FONT, link=target), own("  espaces  ", alignment=c.WRAP),
          own("a < b & c > d \"e\" 'f'\tg\nh"), own("=1+1", quote=True), own("𝄞 € «»")], None),
        ([None, own(46_250, number_format=c.AMOUNT_FORMAT), own(0.1 + 0.2, number_format="0.0"), None,
          own(when, number_format=c.DATETIME_FORMAT), own(None, fill=c.DECISION_FILL, protection=c.UNLOCKED),
          own(1234.5, fill=c.DECISION_FILL, number_format=c.AMOUNT_FORMAT, protection=c.UNLOCKED),
          own("Retenu", alignment=c.WRAP, fill=c.DECISION_FILL, protection=c.UNLOCKED),
          own("Inéligible", fill=c.STATUS_FILLS["ineligible"], font=c.STATUS_FONTS["ineligible"])], 409.0),
    ]


def _written(path: Path) -> list[bytes]:
    from lxml import etree

    with zipfile.ZipFile(path) as archive:
        return [etree.tostring(etree.fromstring(archive.read(name)), method="c14n")
                for name in ("xl/worksheets/sheet1.xml", "xl/worksheets/_rels/sheet1.xml.rels", "xl/styles.xml")]


def test_the_row_writer_writes_the_xml_openpyxl_writes_for_the_same_cells(tmp_path: Path) -> None:
    from itn7cli.export import rows

    for fast in (True, False):
        workbook = openpyxl.Workbook(write_only=True)
        ws = workbook.create_sheet("Dossiers")
        stream = rows.RowStream(ws) if fast else None
        for index, (cells, height) in enumerate(_cells_of_every_kind(ws, fast), start=1):
            if stream is not None:
                stream.write(rows.prepare(cells, height))
                continue
            if height is not None:
                ws.row_dimensions[index].height = height
            ws.append(cells)
        if stream is not None:
            stream.close()
        workbook.save(tmp_path / f"{fast}.xlsx")
    assert _written(tmp_path / "True.xlsx") == _written(tmp_path / "False.xlsx")


def test_session_0_writes_one_workbook_of_the_dossiers_of_every_session(built: Built, tmp_path: Path) -> None:
    result = _invoke("--session", "0", "--db", str(_copy(built, tmp_path)))
    assert result.exit_code == 0, result.stderr
    name = f"itn7-comite-toutes-sessions-{datetime.now(config.PARIS):%Y-%m-%d}.xlsx"
    assert result.stdout == f"{name}\n"
    workbook = openpyxl.load_workbook(tmp_path / name)
    db = store.open_db(built.db_path, must_exist=True)
    every = {n for (n,) in db.execute("SELECT c.number FROM checks c JOIN dossiers d ON d.number = c.number "
                                      "WHERE c.session IS NOT NULL AND d.deletion_state IS NULL")}
    numbers = [int(r["N° dossier"].value) for r in _rows(workbook["Dossiers"])]
    assert sorted(numbers) == sorted(every) and every > _expected_numbers(built)
    synthese = [c.value for row in workbook["Synthèse"].iter_rows() for c in row if c.value is not None]
    assert "ITN7 Axe 3 (PACA) — dossiers de toutes les sessions" in synthese
    assert "Toutes sessions" in synthese and not any(str(v).startswith("Session ") for v in synthese)
