"""Reference data: CSV import in the documented format, and the open-data update over local HTTP."""

from __future__ import annotations

import functools
import http.server
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils
from openpyxl import Workbook

from itn7cli import refdata, store
from itn7cli.errors import ApiError, ConfigError

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


# ---------------------------------------------------------------- update over local HTTP


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self) -> None:
        # Nagle + delayed ACK cost ~40 ms a request on loopback (STYLE.md).
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


@pytest.fixture
def open_data(tmp_path: Path) -> Iterator[str]:
    """A local server with an epcicom-like table and a ZRR-like sheet (4 note lines, labels, codes)."""
    (tmp_path / "epcicom.xlsx").write_bytes(xlsx([
        ["siren", "raison_sociale", "nature_juridique", "mode_financ", "insee", "siren_membre", "nom_membre",
         "ptot_2021", "pmun_2021"],
        ["248400251", "CA du Grand Avignon (COGA)", "CA", "FPU", "84007", "218400075", "Avignon", 93000, 91000],
        ["248400251", "CA du Grand Avignon (COGA)", "CA", "FPU", "30189", "213001894", "Les Angles", 8500, 8400],
        ["200067437", "CA Provence-Alpes-Agglomération", "CA", "FPU", "04001", "210400016", "Aiglun", 1460, 1432],
    ]))
    (tmp_path / "zrr.xlsx").write_bytes(xlsx([
        ["Zonages ZRR"], ["note"], ["note"], ["note"], ["Code géographique", "Libellé", "ZRR simplifié", "Zonage"],
        ["CODGEO", "LIBGEO", "ZRR_SIMP", "ZONAGE_ZRR"],
        ["04001", "Aiglun", "C - Classée en ZRR", "C - Classée en ZRR"],
        ["84007", "Avignon", "NC - Commune non classée", "NC - Commune non classée"],
    ]))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_update_builds_paca_communes_and_epci_from_the_official_tables(db: sqlite_utils.Database,
                                                                       open_data: str) -> None:
    counts = refdata.update(db, dgcl_url=f"{open_data}/epcicom.xlsx", zrr_url=f"{open_data}/zrr.xlsx")
    communes = [(r["code_insee"], r["dep"], r["siren"], r["pmun_2021"], r["zrr"])
                for r in db.table("ref_communes").rows_where(order_by="code_insee")]
    epci = db.table("ref_epci").get("248400251")
    assert (counts, communes, (epci["nb_communes"], epci["nb_communes_paca"], epci["departements"])) == (
        {"ref_communes": 2, "ref_epci": 2, "ref_collectivites": 7},
        [("04001", "04", "210400016", 1432, "C"), ("84007", "84", "218400075", 91000, "NC")],
        (2, 1, "30|84"))


def test_update_offline_fails_with_a_clear_french_message(db: sqlite_utils.Database) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/zrr.xls"
    with pytest.raises(ApiError, match=r"Téléchargement impossible de .*/zrr.xls : ConnectError \(hors ligne \?\)"):
        refdata.update(db, dgcl_url=url, zrr_url=url)


def test_update_reports_a_missing_file_by_its_http_status(db: sqlite_utils.Database, open_data: str) -> None:
    with pytest.raises(ApiError, match="réponse HTTP 404"):
        refdata.update(db, dgcl_url=f"{open_data}/absent.xlsx", zrr_url=f"{open_data}/zrr.xlsx")
