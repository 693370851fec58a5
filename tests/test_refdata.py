"""Reference data: CSV import in the documented format, and `update` from the official tables in their real
formats (tests/data/make_refdata_fixtures.py), from local files and over local HTTP."""

from __future__ import annotations

import functools
import http.server
import io
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from openpyxl import Workbook, load_workbook
from typer.testing import CliRunner

from itn7cli import refdata, store
from itn7cli.cli import app
from itn7cli.errors import ApiError, ConfigError, Itn7Error
from itn7cli.refdata import opendata

DATA = Path(__file__).with_name("data")


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    return store.open_db(tmp_path / "itn7.db")


def test_a_folder_of_csv_files_fills_the_three_tables_and_their_meta(db: sqlite_utils.Database) -> None:
    counts = refdata.import_csv(db, [DATA])
    meta = [(m["name"], m["source"], m["rows"]) for m in refdata.meta(db)]
    assert (counts, meta) == (
        {"ref_collectivites": 7, "ref_communes": 6, "ref_epci": 3},
        [("ref_collectivites", "collectivites.csv", 7), ("ref_communes", "communes.csv", 6),
         ("ref_epci", "epci.csv", 3)])


def test_commune_codes_stay_strings_with_their_leading_zero(db: sqlite_utils.Database) -> None:
    refdata.import_csv(db, [DATA / "communes.csv"])
    assert db.table("ref_communes").get("04001") == {
        "code_insee": "04001", "nom": "Aiglun", "dep": "04", "siren": "210400016", "epci_siren": "200067437",
        "epci_nom": "CA Provence-Alpes-Agglomération", "epci_nature": "CA", "pmun_2021": 1432, "ptot_2021": 1460,
        "zrr": "C", "zrr_modalite": "C", "codes_postaux": "04510"}


def test_a_second_import_replaces_the_table(db: sqlite_utils.Database, tmp_path: Path) -> None:
    refdata.import_csv(db, [DATA / "communes.csv"])
    lines = (DATA / "communes.csv").read_text(encoding="utf-8").splitlines()[:2]
    (tmp_path / "une.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    refdata.import_csv(db, [tmp_path / "une.csv"])
    assert [r["code_insee"] for r in db.table("ref_communes").rows] == ["04001"]


def test_a_csv_with_unknown_columns_is_refused_in_french(db: sqlite_utils.Database, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="Colonnes non reconnues : a, b"):
        refdata.import_csv(db, [tmp_path / "x.csv"])


def test_a_population_that_is_not_a_number_names_file_and_line(db: sqlite_utils.Database, tmp_path: Path) -> None:
    text = (DATA / "epci.csv").read_text(encoding="utf-8").replace(",47382,", ",beaucoup,")
    (tmp_path / "epci.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"epci.csv, ligne 2 : pmun_2021 n'est pas un entier \(« beaucoup »\)"):
        refdata.import_csv(db, [tmp_path / "epci.csv"])


def test_without_import_there_is_no_reference_data(db: sqlite_utils.Database) -> None:
    assert refdata.load(db) is None


# ---------------------------------------------------------------- update from the official tables

DGCL = DATA / "epcicom2021.xlsx"
ZRR = DATA / "zrr-cog2021.xls"
ZRR_CUT = DATA / "zrr-cog2021-tronque.xls"
# The fixtures hold 47 communes in the ZRR table (42 of PACA): the real 30 000 cannot hold on them.
SMALL = refdata.Checks(zrr_min_communes=40)


def xlsx(rows: list[list[Any]], title: str = "Feuil1") -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def dgcl_rows() -> list[list[Any]]:
    sheet = load_workbook(DGCL, read_only=True).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def write(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def update(db: sqlite_utils.Database, dgcl: Path | str = DGCL, zrr: Path | str = ZRR,
           checks: refdata.Checks = SMALL) -> dict[str, int]:
    return refdata.update(db, dgcl=str(dgcl), zrr=str(zrr), checks=checks)


def snapshot(db: sqlite_utils.Database) -> tuple[list[Any], ...]:
    return tuple(list(db.table(t).rows) for t in ("ref_communes", "ref_epci", "ref_collectivites", "ref_meta"))


def test_update_reads_an_anct_xls_and_a_dgcl_xlsx_in_their_real_layouts(db: sqlite_utils.Database) -> None:
    counts = update(db)
    assert counts == {"ref_communes": 42, "ref_epci": 6, "ref_collectivites": 7}
    assert db.table("ref_communes").get("04027") == {
        "code_insee": "04027", "nom": "Bevons", "dep": "04", "siren": "210400271", "epci_siren": "200071033",
        "epci_nom": "CC Jabron-Lure-Vançon-Durance", "epci_nature": "CC", "pmun_2021": 247, "ptot_2021": 302,
        "zrr": "C", "zrr_modalite": "M", "codes_postaux": None}
    assert db.table("ref_epci").get("200071033") == {
        "epci_siren": "200071033", "epci_nom": "CC Jabron-Lure-Vançon-Durance", "epci_nature": "CC",
        "mode_financement": "FPU", "pmun_2021": 5236, "ptot_2021": 5415, "nb_communes": 14, "nb_communes_paca": 13,
        "nb_communes_zrr": 7, "departements": "04|26"}


def test_the_default_checks_are_the_real_figures_and_refuse_the_small_fixture(db: sqlite_utils.Database) -> None:
    assert (refdata.DEFAULT_CHECKS, refdata.Checks()) == (
        refdata.Checks(30_000, 0.99, ("04", "05", "06", "13", "83", "84")),) * 2
    with pytest.raises(ConfigError, match="la table ZRR ne compte que 47 communes, au moins 30 000 attendues"):
        refdata.update(db, dgcl=str(DGCL), zrr=str(ZRR))
    assert refdata.load(db) is None


def synthetic(paca: int, found: int, national: int) -> tuple[dict[str, opendata.Epci], dict[str, tuple[str, str]]]:
    """One EPCI per PACA département holding `paca` communes, `found` of them in a ZRR table of `national`."""
    epcis = {}
    codes = [f"{dep}{n:03d}" for n in range(paca) for dep in opendata.PACA][:paca]
    for dep in opendata.PACA:
        members = [{"code_insee": c, "dep": dep, "pmun_2021": 10, "ptot_2021": 11} for c in codes if c[:2] == dep]
        epcis[dep] = opendata.Epci(f"2000000{dep}", f"CC {dep}", "CC", "FPU",
                                   (len(members), 10 * len(members), 11 * len(members)), members)
    zrr = {c: ("C", "C") for c in codes[:found]}
    zrr.update({f"99{n:03d}{n}": ("NC", "NC") for n in range(national - len(zrr))})
    return epcis, zrr


def test_a_zrr_table_of_30_000_communes_passes_the_default_size_check_and_29_999_fails() -> None:
    assert opendata.failed_checks(*synthetic(946, 946, 30_000), refdata.DEFAULT_CHECKS) == []
    assert opendata.failed_checks(*synthetic(946, 946, 29_999), refdata.DEFAULT_CHECKS) == [
        "la table ZRR ne compte que 29 999 communes, au moins 30 000 attendues (feuille tronquée ?)"]


def test_99_percent_of_paca_communes_in_the_zrr_table_pass_the_default_check_and_fewer_fail() -> None:
    assert opendata.failed_checks(*synthetic(1000, 990, 30_000), refdata.DEFAULT_CHECKS) == []
    [failure] = opendata.failed_checks(*synthetic(1000, 989, 30_000), refdata.DEFAULT_CHECKS)
    assert failure.startswith("989 communes de PACA sur 1 000 trouvées dans la table ZRR (98,9 %), au moins 99 % "
                              "attendues (absentes, par exemple : ")


def test_a_zrr_sheet_cut_to_two_communes_is_refused_and_the_current_data_stays(db: sqlite_utils.Database) -> None:
    refdata.import_csv(db, [DATA])
    before = snapshot(db)
    with pytest.raises(ConfigError) as caught:
        update(db, zrr=ZRR_CUT)
    assert str(caught.value) == (
        "Données de référence refusées, rien n'a été remplacé : la table ZRR ne compte que 2 communes, au moins 40 "
        "attendues (feuille tronquée ?) ; 0 communes de PACA sur 42 trouvées dans la table ZRR (0 %), au moins 99 % "
        "attendues (absentes, par exemple : 04013, 04027, 04051, 04053, 04067).")
    assert snapshot(db) == before


def test_a_dgcl_table_without_a_paca_departement_is_refused(db: sqlite_utils.Database, tmp_path: Path) -> None:
    rows = [r for r in dgcl_rows() if r[8] != "05"]  # dep_com: the whole CC du Pays des Ecrins goes
    with pytest.raises(ConfigError, match=r"la table DGCL ne couvre pas tous les départements de PACA : aucune "
                                          r"commune en 05 \(5 sur 6 couverts\)"):
        update(db, dgcl=write(tmp_path / "epcicom.xlsx", xlsx(rows, "Epcicom2021")))


def test_an_epci_whose_members_miss_its_announced_total_is_refused(db: sqlite_utils.Database, tmp_path: Path) -> None:
    rows = [r for r in dgcl_rows() if r[9] != "26200"]  # the Drôme member of a straddling EPCI is lost
    with pytest.raises(ConfigError, match="1 EPCI sur 6 dont les communes ne font pas le total annoncé par la table "
                                          "DGCL, dont 200071033 CC Jabron-Lure-Vançon-Durance : 13 communes, "
                                          "population municipale 5 160 et totale 5 338 recalculées, pour 14, 5 236 "
                                          "et 5 415 annoncées"):
        update(db, dgcl=write(tmp_path / "epcicom.xlsx", xlsx(rows, "Epcicom2021")))


def test_a_dgcl_table_of_another_year_is_named_as_such(db: sqlite_utils.Database, tmp_path: Path) -> None:
    rows = dgcl_rows()
    rows[0] = [{"pmun_2021": "pmun_2020", "ptot_2021": "ptot_2020"}.get(h, h) for h in rows[0]]
    with pytest.raises(ConfigError, match=r"epcicom2020.xlsx : table DGCL du millésime 2020 ; il faut celle de 2021"):
        update(db, dgcl=write(tmp_path / "epcicom2020.xlsx", xlsx(rows)))


def test_a_zrr_workbook_without_the_cog_2021_sheet_names_the_sheets_it_has(db: sqlite_utils.Database,
                                                                           tmp_path: Path) -> None:
    path = write(tmp_path / "zrr.xlsx", xlsx([["CODGEO", "ZRR_SIMP"], ["04001", "C - Classée en ZRR"]],
                                             "Classement ZRR (COG 2017)"))
    with pytest.raises(ConfigError, match=r"aucune feuille « Classement ZRR \(COG 2021\) » \(feuilles : "
                                          r"Classement ZRR \(COG 2017\)\)"):
        update(db, zrr=path)


def test_an_unknown_zrr_label_is_refused_with_its_line(db: sqlite_utils.Database, tmp_path: Path) -> None:
    path = write(tmp_path / "zrr.xlsx", xlsx([["note"], [], ["CODGEO", "LIBGEO", "ZRR_SIMP", "ZONAGE_ZRR"],
                                              ["04001", "Aiglun", "FRR - France ruralités", "FRR"]],
                                             "Classement ZRR (COG 2021)"))
    with pytest.raises(ConfigError, match=r"ligne 4 : classement ZRR non reconnu \(« FRR - France ruralités » pour "
                                          r"la commune « 04001 »\)"):
        update(db, zrr=path)


# ---------------------------------------------------------------- what came back instead of a workbook

CUT_XLS = ZRR.read_bytes()[: len(ZRR.read_bytes()) // 2]
CUT_XLSX = DGCL.read_bytes()[: len(DGCL.read_bytes()) // 2]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "le fichier est vide, pas un classeur"),
    (b"  \n", "le fichier est vide, pas un classeur"),
    (b"<!DOCTYPE html><html><head><title>Accueil</title></head></html>",
     "ce fichier est une page HTML, pas un classeur (page web enregistrée à la place du fichier ?)"),
    (b"%PDF-1.7\n", "le fichier est un document PDF, pas un classeur"),
    (b"siren;insee\n200067437;04001\n", "le fichier n'est pas un classeur .xlsx ou .xls (début : « siren;insee "
                                         "200067437;04001 »)"),
    (CUT_XLS, "classeur .xls abîmé ou tronqué, illisible"),
    (CUT_XLSX, "classeur .xlsx abîmé ou tronqué"),
], ids=["vide", "blancs", "html", "pdf", "texte", "xls-tronque", "xlsx-tronque"])
def test_a_local_file_that_is_not_a_workbook_is_named_in_one_french_line(db: sqlite_utils.Database, tmp_path: Path,
                                                                         content: bytes, message: str) -> None:
    path = write(tmp_path / "zrr.xls", content)
    with pytest.raises(ConfigError) as caught:
        update(db, zrr=path)
    assert str(caught.value).startswith(f"{path} : {message}")
    assert "\n" not in str(caught.value)


def test_a_zip_that_is_not_a_workbook_asks_to_unzip_it(db: sqlite_utils.Database, tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "epcicom2021.zip", "w") as archive:
        archive.writestr("epcicom2021.xlsx", DGCL.read_bytes())
    with pytest.raises(ConfigError, match=r"archive zip qui n'est pas un classeur \.xlsx ; décompressez-la"):
        update(db, dgcl=tmp_path / "epcicom2021.zip")


def corruptions(content: bytes, seed: int, count: int) -> Iterator[bytes]:
    """Deterministic damage: cut at various places, or bytes overwritten past the magic number."""
    rng = random.Random(seed)
    for _ in range(count):
        if rng.random() < 0.3:
            yield content[: rng.randrange(8, len(content))]
        else:
            damaged = bytearray(content)
            start = rng.randrange(8, len(content) - 64)
            damaged[start:start + rng.choice((1, 8, 64))] = rng.randbytes(rng.choice((1, 8, 64)))
            yield bytes(damaged)


@pytest.mark.parametrize("fixture", [ZRR, DGCL], ids=["xls", "xlsx"])
def test_no_corruption_of_a_workbook_gives_anything_but_a_named_error(db: sqlite_utils.Database, tmp_path: Path,
                                                                     fixture: Path) -> None:
    outcomes = set()
    for i, content in enumerate(corruptions(fixture.read_bytes(), seed=2021, count=150)):
        path = write(tmp_path / f"{i}{fixture.suffix}", content)
        try:
            update(db, **{"zrr" if fixture == ZRR else "dgcl": path})
            outcomes.add("lu")
        except Itn7Error as exc:
            assert "\n" not in str(exc)
            outcomes.add(type(exc).__name__)
    assert "ConfigError" in outcomes


def test_a_missing_local_file_is_named(db: sqlite_utils.Database, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"Fichier introuvable : {tmp_path / 'absent.xls'}.")):
        update(db, zrr=tmp_path / "absent.xls")


def test_a_failure_while_writing_rolls_every_table_back(db: sqlite_utils.Database,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    refdata.import_csv(db, [DATA])
    before = snapshot(db)
    real_tables = opendata.tables

    def broken(*args: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        communes, epci = real_tables(*args)
        return communes, [{**epci[0], "colonne_inconnue": 1}]  # refused by SQLite after ref_communes is written

    monkeypatch.setattr(opendata, "tables", broken)
    with pytest.raises(sqlite3.OperationalError, match="colonne_inconnue"):
        update(db)
    assert snapshot(db) == before


# ---------------------------------------------------------------- over local HTTP


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self) -> None:
        # Nagle + delayed ACK cost ~40 ms a request on loopback (STYLE.md).
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


@pytest.fixture
def open_data(tmp_path: Path) -> Iterator[str]:
    """A local server with the two fixtures, a portal page (HTML, answered 200) and an empty file."""
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "epcicom2021.xlsx").write_bytes(DGCL.read_bytes())
    (folder / "zrr.xls").write_bytes(ZRR.read_bytes())
    (folder / "portail.xls").write_bytes(b"<!DOCTYPE html>\n<html lang='fr'><body>Nouveau portail</body></html>")
    (folder / "vide.xls").write_bytes(b"")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_update_downloads_both_tables_from_their_addresses(db: sqlite_utils.Database, open_data: str) -> None:
    counts = update(db, dgcl=f"{open_data}/epcicom2021.xlsx", zrr=f"{open_data}/zrr.xls")
    meta = {m["name"]: m["source"] for m in refdata.meta(db)}
    assert (counts, meta["ref_epci"]) == ({"ref_communes": 42, "ref_epci": 6, "ref_collectivites": 7},
                                          f"{open_data}/epcicom2021.xlsx")


def test_an_html_page_answered_200_says_the_address_may_have_moved(db: sqlite_utils.Database,
                                                                     open_data: str) -> None:
    with pytest.raises(ConfigError) as caught:
        update(db, zrr=f"{open_data}/portail.xls")
    assert str(caught.value) == (f"{open_data}/portail.xls : la page reçue est du HTML, pas un classeur : l'adresse "
                                 "a peut-être changé (voir README, « Données de référence »).")


def test_an_empty_answer_is_named(db: sqlite_utils.Database, open_data: str) -> None:
    with pytest.raises(ConfigError, match=r"/vide.xls : la page reçue est vide, pas un classeur"):
        update(db, zrr=f"{open_data}/vide.xls")


def test_update_offline_fails_with_a_clear_french_message(db: sqlite_utils.Database) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/zrr.xls"
    with pytest.raises(ApiError, match=r"Téléchargement impossible de .*/zrr.xls : ConnectError \(hors ligne \?\)"):
        update(db, dgcl=url, zrr=url)


def test_a_missing_address_gives_its_http_status_and_the_hint_that_it_moved(db: sqlite_utils.Database,
                                                                          open_data: str) -> None:
    with pytest.raises(ApiError, match=r"/absent.xlsx : réponse HTTP 404 : l'adresse a peut-être changé"):
        update(db, dgcl=f"{open_data}/absent.xlsx", zrr=f"{open_data}/zrr.xls")


# ---------------------------------------------------------------- the command, as a user runs it


def test_refdata_update_with_two_local_files_works_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(opendata, "DEFAULT_CHECKS", SMALL)
    result = CliRunner().invoke(app, ["refdata", "update", "--dgcl", str(DGCL), "--zrr", str(ZRR),
                                      "--db", str(tmp_path / "itn7.db")])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", (
        "ref_communes : 42 ligne(s) importée(s).\nref_epci : 6 ligne(s) importée(s).\n"
        "ref_collectivites : 7 ligne(s) importée(s).\n"))


def test_refdata_update_reads_its_sources_from_itn7_toml_relative_to_its_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(opendata, "DEFAULT_CHECKS", SMALL)
    (tmp_path / "conf" / "donnees").mkdir(parents=True)
    (tmp_path / "conf" / "donnees" / "epcicom2021.xlsx").write_bytes(DGCL.read_bytes())
    (tmp_path / "conf" / "donnees" / "zrr.xls").write_bytes(ZRR.read_bytes())
    (tmp_path / "conf" / "itn7.toml").write_text(
        '[refdata]\ndgcl = "donnees/epcicom2021.xlsx"\nzrr = "donnees/zrr.xls"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["refdata", "update", "--db", str(tmp_path / "itn7.db")],
                                env={"ITN7_CONFIG": str(tmp_path / "conf" / "itn7.toml")})
    assert result.exit_code == 0, result.stderr
    sources = {m["name"]: m["source"] for m in refdata.meta(store.open_db(tmp_path / "itn7.db"))}
    assert sources["ref_epci"] == str(tmp_path / "conf" / "donnees" / "epcicom2021.xlsx")


def test_refdata_update_on_the_real_thresholds_refuses_in_one_line_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["refdata", "update", "--dgcl", str(DGCL), "--zrr", str(ZRR_CUT),
                                      "--db", str(tmp_path / "itn7.db")])
    assert result.exit_code == ConfigError.exit_code
    assert result.stderr.startswith("Erreur : Données de référence refusées, rien n'a été remplacé : la table ZRR "
                                    "ne compte que 2 communes, au moins 30 000 attendues")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_an_unknown_refdata_setting_in_itn7_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "itn7.toml").write_text('[refdata]\nepci = "x.xlsx"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["refdata", "update"])
    assert (result.exit_code, result.stderr.startswith("Erreur : [refdata] epci : réglage inconnu")) == (2, True)


def test_a_damaged_xls_through_the_command_keeps_stdout_clean_of_xlrds_warnings(tmp_path: Path) -> None:
    """A real process: xlrd's default log file is the sys.stdout of import time, which CliRunner cannot see."""
    damaged = write(tmp_path / "zrr.xls", CUT_XLS)  # its size is no multiple of 512: xlrd warns about it
    result = subprocess.run([sys.executable, "-m", "itn7cli", "refdata", "update", "--dgcl", str(DGCL), "--zrr",
                             damaged, "--db", str(tmp_path / "itn7.db")], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "1000"}, check=False)
    assert (result.returncode, result.stdout) == (ConfigError.exit_code, "")
    assert result.stderr.startswith(f"Erreur : {damaged} : classeur .xls abîmé ou tronqué, illisible (")
    assert result.stderr.count("\n") == 1
