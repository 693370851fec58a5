"""Personal data at rest: owner-only files, and dossiers DS deleted erased here after a grace period."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from itn7cli import config, donnees, store
from itn7cli.cli import app
from itn7cli.errors import StoreError
from itn7cli.fakeds import Dataset, FakeDS

from .syncutil import content, env_for, run_sync

COUNTS = {"general": 30, "labo": 12}
PROJECT_TITLE = "Q2hhbXAtMTAxMg=="  # Intitulé du projet
SECRET = "Projet-effaçable-7f3a9c"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- private by default


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_the_database_and_its_wal_and_shm_are_owner_only_whatever_the_umask(umask: int, tmp_path: Path) -> None:
    path = tmp_path / "itn7.db"
    db = store.open_db(path)
    db.execute("INSERT INTO ref_meta (name, source) VALUES ('x', 'y')")
    db.conn.commit()
    side = [path, path.with_name("itn7.db-wal"), path.with_name("itn7.db-shm")]
    assert all(p.exists() for p in side)  # open: SQLite keeps its side files
    assert {p.name: mode(p) for p in side} == {p.name: 0o600 for p in side}
    db.close()


def test_an_older_database_with_wider_modes_is_tightened_with_a_one_line_notice(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "itn7.db"
    sqlite3.connect(path).close()
    os.chmod(path, 0o664)
    wal = path.with_name("itn7.db-wal")
    wal.write_bytes(b"")
    os.chmod(wal, 0o644)
    with caplog.at_level(logging.WARNING):
        store.open_db(path).close()
    assert mode(path) == 0o600
    assert [r.getMessage() for r in caplog.records] == [
        f"Base {path} : droits resserrés au seul propriétaire (itn7.db, itn7.db-wal)."]
    caplog.clear()
    store.open_db(path).close()
    assert caplog.records == []


def test_the_cli_prints_the_tightening_notice_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "itn7.db"
    store.open_db(path).close()
    os.chmod(path, 0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DS_", "ITN7_"))}
    result = subprocess.run([sys.executable, "-m", "itn7cli", "donnees", "purge", "--db", str(path)],
                            capture_output=True, text=True, env={**env, "COLUMNS": "200"}, check=False)
    assert result.returncode == 0, result.stderr
    assert f"Attention : Base {path} : droits resserrés au seul propriétaire (itn7.db)." in result.stderr.splitlines()
    assert result.stdout == "" and mode(path) == 0o600


def test_a_file_that_is_not_a_database_is_reported_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "itn7.db"
    path.write_text("des notes, pas une base\n" * 200)
    with pytest.raises(StoreError, match="illisible"):
        store.open_db(path)


def test_a_permission_error_says_so_and_never_calls_the_database_unreadable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(path: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store.schema.private, "private_file", refused)
    with pytest.raises(StoreError, match="droits insuffisants") as caught:
        store.open_db(tmp_path / "itn7.db")
    assert "illisible" not in str(caught.value)


def test_a_bug_while_migrating_propagates_instead_of_calling_the_database_unreadable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(db: Any) -> None:
        db.execute("SELECT no_such_column FROM sqlite_master")

    monkeypatch.setattr(store.schema.migrations, "apply", broken)
    with pytest.raises(sqlite3.OperationalError, match="no_such_column"):
        store.open_db(tmp_path / "itn7.db")


# ---------------------------------------------------------------- the purge


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.generate(seed=5, counts=COUNTS)


def settings_for(tmp_path: Path, name: str = "a.db", **kwargs: Any) -> config.Settings:
    return config.Settings(db_path=tmp_path / name, files_dir=tmp_path / "fichiers", **kwargs)


def attach(tmp_path: Path, db_name: str, number: int,
           names: tuple[str, ...] = ("devis.pdf", "statuts.pdf")) -> list[Path]:
    """Puts attachments of dossier `number` on disk and in file_downloads, as `sync --files` leaves them."""
    db = store.open_db(tmp_path / db_name)
    demarche = db.execute("SELECT demarche_number FROM dossiers WHERE number = ?", [number]).fetchone()[0]
    paths = []
    for position, name in enumerate(names):
        relative = f"{demarche}/{number}-Porteur/Pieces/{name}"
        target = tmp_path / "fichiers" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(SECRET.encode())
        db.execute("INSERT INTO file_downloads (dossier_number, champ_id, position, demarche_number, path, status) "
                   "VALUES (?, 'pj', ?, ?, ?, 'ok')", [number, position, demarche, relative])
        paths.append(target)
    db.conn.commit()
    db.close()
    return paths


def row(path: Path, number: int) -> dict[str, Any]:
    db = store.open_db(path)
    found = dict(next(db.query("SELECT * FROM dossiers WHERE number = ?", [number])))
    db.close()
    return found


def rows_about(path: Path, number: int) -> dict[str, int]:
    """How many rows each table other than dossiers holds about dossier `number`."""
    db = store.open_db(path)
    counts = {table: db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", [number]).fetchone()[0]
              for table, column in (("champs", "dossier_number"), ("files", "dossier_number"),
                                    ("traitements", "dossier_number"), ("file_downloads", "dossier_number"),
                                    ("checks", "number"), ("check_findings", "dossier_number"),
                                    ("annotations_written", "dossier_number"))}
    db.close()
    return counts


def add_check(path: Path, number: int) -> None:
    """A check result with a finding and an annotation written to DS, as check and annotate leave them."""
    db = store.open_db(path)
    db.execute("INSERT INTO checks (number, status) VALUES (?, 'eligible')", [number])
    db.execute("INSERT INTO check_findings (dossier_number, position, rule, message) VALUES (?, 0, 'r', ?)",
               [number, SECRET])
    db.execute("INSERT INTO annotations_written (dossier_number, value) VALUES (?, ?)", [number, SECRET])
    db.conn.commit()
    db.close()


def purge(tmp_path: Path, moment: datetime, name: str = "a.db", **kwargs: Any) -> donnees.Report:
    cfg = settings_for(tmp_path, name, **kwargs)
    db = store.open_db(cfg.db_path)
    try:
        return donnees.run(db, cfg, apply=True, moment=moment)
    finally:
        db.close()


def test_a_dossier_deleted_in_ds_keeps_only_its_tombstone_once_the_grace_period_has_run(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    number = dataset.visible_numbers("general")[3]
    dataset.edit_champ(number, PROJECT_TITLE, SECRET)
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    files = attach(tmp_path, "a.db", number)
    add_check(tmp_path / "a.db", number)
    dataset.purge(number)
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    deleted = row(tmp_path / "a.db", number)
    assert deleted["deletion_state"] == "supprime" and deleted["raw"] is not None
    deleted_at = donnees.parse_moment(deleted["deleted_at"])
    assert deleted_at is not None

    early = purge(tmp_path, deleted_at + timedelta(days=29))
    assert number not in [s.number for s in early.erased] and number in [s.number for s in early.later]
    assert row(tmp_path / "a.db", number)["raw"] is not None and all(f.exists() for f in files)

    report = purge(tmp_path, deleted_at + timedelta(days=31))
    assert number in [s.number for s in report.erased]
    tombstone = {k: v for k, v in row(tmp_path / "a.db", number).items() if v is not None}
    assert set(tombstone) == {"number", "id", "demarche_number", "state", "deletion_state", "deleted_at",
                              "deleted_reason", "seen_run", "synced_at", "erased_at"}
    assert (tombstone["deletion_state"], tombstone["deleted_at"]) == ("supprime", deleted["deleted_at"])
    assert rows_about(tmp_path / "a.db", number) == dict.fromkeys(rows_about(tmp_path / "a.db", number), 0)
    assert not any(f.exists() for f in files)
    assert not (tmp_path / "fichiers" / str(deleted["demarche_number"])).exists()  # folders named after the porteur
    # VACUUM and an emptied WAL: the erased text is nowhere in the database's files.
    for path in tmp_path.glob("a.db*"):
        assert SECRET.encode() not in path.read_bytes(), path.name
    # The other dossiers keep everything.
    other = dataset.visible_numbers("general")[4]
    assert row(tmp_path / "a.db", other)["raw"] is not None


def test_vacuum_leaves_no_erased_text_in_free_pages_even_where_sqlite_keeps_deleted_bytes(
        server: FakeDS, dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some SQLite builds zero deleted content (SECURE_DELETE), others do not: VACUUM must suffice alone.
    monkeypatch.setattr(donnees.store_purge, "secure_delete",
                        lambda db: db.execute("PRAGMA secure_delete = OFF"))
    number = dataset.visible_numbers("general")[3]
    dataset.edit_champ(number, PROJECT_TITLE, SECRET)
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    dataset.purge(number)
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    report = purge(tmp_path, datetime.now(UTC) + timedelta(days=31))
    assert number in [s.number for s in report.erased]
    for path in tmp_path.glob("a.db*"):
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_a_hidden_dossier_is_kept_until_ds_purges_it(server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    number = dataset.visible_numbers("general")[2]
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    dataset.hide(number, by="administration")
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    purge(tmp_path, datetime.now(UTC) + timedelta(days=365))
    hidden = row(tmp_path / "a.db", number)
    assert hidden["deletion_state"] == "masque" and hidden["raw"] is not None


def test_a_dossier_processed_longer_ago_than_the_demarches_retention_is_erased(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    labo = dataset.numbers["labo"]
    dataset.demarches[labo].duree_conservation_dossiers = 12
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    db = store.open_db(tmp_path / "a.db")
    assert dict(db.execute("SELECT number, duree_conservation_dossiers FROM demarches").fetchall()) == {
        dataset.numbers["general"]: 120, labo: 12}
    processed = [dict(r) for r in db.query(
        "SELECT number, demarche_number, date_traitement FROM dossiers WHERE deletion_state IS NULL "
        "AND state IN ('accepte', 'refuse', 'sans_suite')")]
    pending = [r[0] for r in db.execute("SELECT number FROM dossiers WHERE deletion_state IS NULL "
                                        "AND state IN ('en_construction', 'en_instruction') AND demarche_number = ?",
                                        [labo])]
    db.close()
    labo_processed = [r for r in processed if r["demarche_number"] == labo]
    assert labo_processed and pending
    first = min(labo_processed, key=lambda r: r["date_traitement"])
    ends = donnees.add_months(donnees.parse_moment(first["date_traitement"]), 12)  # type: ignore[arg-type]

    report = purge(tmp_path, ends + timedelta(days=29))
    assert first["number"] not in [s.number for s in report.erased]
    report = purge(tmp_path, ends + timedelta(days=31))
    assert first["number"] in [s.number for s in report.erased]
    erased = row(tmp_path / "a.db", first["number"])
    assert (erased["deletion_state"], erased["deleted_reason"], erased["raw"]) == (
        "expire", "duree_conservation_echue", None)

    purge(tmp_path, datetime.now(UTC))
    states = {n: row(tmp_path / "a.db", n) for n in [r["number"] for r in processed] + pending}
    assert all(states[r["number"]]["raw"] is None for r in labo_processed)
    assert all(states[r["number"]]["raw"] is not None for r in processed if r["demarche_number"] != labo)
    assert all(states[n]["raw"] is not None for n in pending)


def test_ds_expiry_date_wins_when_it_is_later_than_the_retention_computed_here() -> None:
    record = {"date_traitement": "2021-03-31T10:00:00+02:00", "duree_conservation_dossiers": 11,
              "date_expiration": None}
    assert donnees.expiry(record) == datetime.fromisoformat("2022-02-28T10:00:00+02:00")
    extended = {**record, "date_expiration": "2023-02-28T10:00:00+01:00"}
    assert donnees.expiry(extended) == datetime.fromisoformat("2023-02-28T10:00:00+01:00")


def test_erasure_on_request_is_immediate_and_repeated_when_a_sync_brings_the_dossier_back(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    number = dataset.visible_numbers("general")[1]
    dataset.edit_champ(number, PROJECT_TITLE, SECRET)
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    files = attach(tmp_path, "a.db", number)
    add_check(tmp_path / "a.db", number)
    env = env_for(server, tmp_path / "a.db", dataset.numbers)

    refused = CliRunner().invoke(app, ["donnees", "efface", "--dossier", str(number)], input="12\n", env=env)
    assert refused.exit_code == 1 and "rien n'a été effacé" in refused.stderr
    assert row(tmp_path / "a.db", number)["raw"] is not None

    result = CliRunner().invoke(app, ["donnees", "efface", "--dossier", str(number)], input=f"{number}\n", env=env)
    assert result.exit_code == 0, result.output
    assert f"Dossier n° {number} effacé localement (2 pièce(s) jointe(s) supprimée(s))" in result.stderr
    erased = row(tmp_path / "a.db", number)
    assert (erased["deletion_state"], erased["deleted_reason"], erased["raw"]) == (
        "efface", "demande_effacement", None)
    assert not any(f.exists() for f in files)
    assert rows_about(tmp_path / "a.db", number) == dict.fromkeys(rows_about(tmp_path / "a.db", number), 0)
    for path in tmp_path.glob("a.db*"):
        assert SECRET.encode() not in path.read_bytes(), path.name

    dataset.edit_champ(number, PROJECT_TITLE, SECRET + " modifié")  # still live in DS: the sync brings it back
    synced = CliRunner().invoke(app, ["sync"], env={**env, "COLUMNS": "200"})
    assert synced.exit_code == 0, synced.output
    assert "1 dossier(s) effacé(s) localement" in synced.stderr
    assert row(tmp_path / "a.db", number)["raw"] is None
    for path in tmp_path.glob("a.db*"):
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_erasing_a_dossier_that_is_not_stored_names_it(tmp_path: Path) -> None:
    store.open_db(tmp_path / "a.db").close()
    result = CliRunner().invoke(app, ["donnees", "efface", "--dossier", "99", "--oui"],
                                env={"ITN7_DB": str(tmp_path / "a.db")})
    assert result.exit_code == StoreError.exit_code
    assert "Dossier n° 99 absent de la base locale" in result.stderr


def test_the_purge_command_is_a_dry_run_unless_told_to_apply(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    number = dataset.visible_numbers("general")[5]
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    dataset.purge(number)
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    env = {"ITN7_DB": str(tmp_path / "a.db"), "COLUMNS": "200"}
    db = store.open_db(tmp_path / "a.db")
    db.execute("UPDATE dossiers SET deleted_at = '2021-01-01T00:00:00+01:00' WHERE number = ?", [number])
    db.conn.commit()
    db.close()

    dry = CliRunner().invoke(app, ["donnees", "purge"], env=env)
    assert dry.exit_code == 0, dry.output
    assert str(number) in dry.stdout and "supprimé dans Démarche Numérique" in dry.stdout
    assert "1 dossier(s) à effacer maintenant" in dry.stderr and "Rien n'a été effacé" in dry.stderr
    assert row(tmp_path / "a.db", number)["raw"] is not None

    applied = CliRunner().invoke(app, ["donnees", "purge", "--apply"], env=env)
    assert applied.exit_code == 0, applied.output
    assert "1 dossier(s) effacé(s)" in applied.stderr
    assert row(tmp_path / "a.db", number)["raw"] is None


KILLER = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from itn7cli import config, donnees, store
    from itn7cli.store import purge

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[3] == "after_commit":  # the first dossier committed, one of its files deleted, not the next
        remove = donnees._remove
        def killing_remove(root, relative):
            remove(root, relative)
            die()
        donnees._remove = killing_remove
    else:  # inside the first dossier's transaction, some rows already deleted
        children = purge._children
        def killing_children(db, parent):
            for item in children(db, parent):
                if item[0] == "traitements":
                    die()
                yield item
        purge._children = killing_children
    settings = config.Settings(db_path=Path(sys.argv[1]), files_dir=Path(sys.argv[2]))
    donnees.run(store.open_db(settings.db_path), settings, apply=True, moment=datetime(2040, 1, 1, tzinfo=UTC))
""")


@pytest.mark.parametrize("point", ["after_commit", "inside_transaction"])
def test_a_purge_killed_midway_leaves_a_consistent_database_and_the_next_run_finishes(
        server: FakeDS, dataset: Dataset, tmp_path: Path, point: str) -> None:
    numbers = dataset.visible_numbers("general")[6:9]
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    files = [f for n in numbers for f in attach(tmp_path, "a.db", n)]
    for n in numbers:
        dataset.purge(n)
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    before = {n: row(tmp_path / "a.db", n) for n in numbers}

    killed = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "a.db"), str(tmp_path / "fichiers"), point],
                            capture_output=True, text=True, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    db = store.open_db(tmp_path / "a.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    erased = [n for n in numbers if row(tmp_path / "a.db", n)["raw"] is None]
    first = min(numbers)
    if point == "after_commit":
        assert erased == [first] and sum(f.exists() for f in files) == len(files) - 1
        assert len(donnees.store_purge.pending_files(db)) == 2  # both still queued: one is re-deleted, idempotently
    else:
        assert erased == [] and all(f.exists() for f in files)
        assert rows_about(tmp_path / "a.db", first)["traitements"] > 0
        assert row(tmp_path / "a.db", first) == before[first]
    db.close()

    purge(tmp_path, datetime(2040, 1, 1, tzinfo=UTC))
    assert all(row(tmp_path / "a.db", n)["raw"] is None for n in numbers)
    assert not any(f.exists() for f in files)
    db = store.open_db(tmp_path / "a.db")
    assert donnees.store_purge.pending_files(db) == []
    db.close()


def test_incremental_syncs_stay_exact_around_tombstones(server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    general = dataset.visible_numbers("general")
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    purged, expired, hidden, edited = general[10], general[11], general[12], general[13]
    dataset.purge(purged)
    dataset.hide(expired, by="expired")  # drops out without a trace: `disparu` after a full sync
    dataset.hide(hidden, by="administration")
    run_sync(server, tmp_path / "a.db", dataset.numbers, full=True)
    report = purge(tmp_path, datetime.now(UTC) + timedelta(days=31))
    assert {purged, expired} <= {s.number for s in report.erased} and hidden not in {s.number for s in report.erased}

    dataset.restore(expired)  # back in DS after its local data was erased
    dataset.purge(hidden)
    dataset.edit_champ(edited, PROJECT_TITLE, "Guichet numérique")
    new = dataset.add_dossier("general")
    summaries = run_sync(server, tmp_path / "a.db", dataset.numbers)
    run_sync(server, tmp_path / "fresh.db", dataset.numbers)

    assert content(tmp_path / "a.db") == content(tmp_path / "fresh.db")
    assert (summaries[0].nouveaux, summaries[0].restaures, summaries[0].supprimes) == (1, 1, 0)  # masque → supprime
    assert row(tmp_path / "a.db", expired)["raw"] is not None and row(tmp_path / "a.db", new)["raw"] is not None
    again = run_sync(server, tmp_path / "a.db", dataset.numbers)
    assert all(s.nouveaux == s.modifies == s.supprimes == s.restaures == 0 for s in again)
