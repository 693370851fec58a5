"""Attachments: `sync --files` against the fake DS server over real HTTP, safe names, the session copy."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from itn7cli import config, files, store
from itn7cli.api import DSClient, RetryPolicy
from itn7cli.cli import app
from itn7cli.errors import StoreError
from itn7cli.export.pieces import gather_session
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.files import pool
from itn7cli.files.download import FileGone, LinkExpired, Refused, Retryable, size_of
from itn7cli.files.pool import Job
from itn7cli.files.run import FilesRun
from itn7cli.private import private_dir

TOKEN = "jeton-secret-4f9c2a"
DEVIS = "Devis de la prestation"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "RETRY", RetryPolicy(attempts=3, base=0.001, cap=0.01))


@pytest.fixture
def dataset() -> Dataset:
    # 40 general dossiers: every one of the dataset's six hostile file names is attached somewhere.
    return Dataset.generate(seed=5, counts={"general": 40, "labo": 6})


@pytest.fixture
def server(dataset: Dataset) -> Iterator[FakeDS]:
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}) as running:
        yield running


@pytest.fixture
def settings(server: FakeDS, dataset: Dataset, tmp_path: Path) -> config.Settings:
    return config.Settings(token=config.Secret(TOKEN), api_url=server.url, demarches=dict(dataset.numbers),
                           db_path=tmp_path / "itn7.db", files_dir=tmp_path / "fichiers", concurrency=3)


def run(settings: config.Settings, **kwargs: Any) -> files.FilesSummary:
    return files.sync_with_files(settings, settings.demarche_numbers(), **kwargs)[1]


def md5(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def rows(settings: config.Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    db = store.open_db(settings.db_path)
    try:
        return [tuple(r) for r in db.execute(sql, params or [])]
    finally:
        db.close()


def stored_files(settings: config.Settings) -> dict[tuple[int, str, int], str]:
    """The attachments the sync saw, keyed like file_downloads, with their checksum."""
    return {(n, c, p): s for n, c, p, s in rows(
        settings, "SELECT f.dossier_number, f.champ_id, f.position, f.checksum FROM files f "
                  "JOIN dossiers d ON d.number = f.dossier_number WHERE d.deletion_state IS NULL")}


def downloads(settings: config.Settings) -> dict[tuple[int, str, int], tuple[str, str | None, str]]:
    return {(n, c, p): (status, path, checksum) for n, c, p, status, path, checksum in rows(
        settings, "SELECT dossier_number, champ_id, position, status, path, checksum FROM file_downloads")}


def parts(root: Path) -> list[Path]:
    return list(root.rglob("*.part"))


def file_key(dataset: Dataset, filename_start: str) -> tuple[str, int]:
    spec = next(s for s in dataset.files.values() if s.filename.startswith(filename_start))
    return spec.key, int(spec.key.split("-")[0])


# ---------------------------------------------------------------- downloading


def test_sync_files_downloads_every_attachment_and_verifies_it(settings: config.Settings, server: FakeDS) -> None:
    summary = run(settings)

    expected = stored_files(settings)
    done = downloads(settings)
    assert len(expected) > 100
    assert set(done) == set(expected)
    assert {status for status, _, _ in done.values()} == {"ok"}
    for key, (_, path, checksum) in done.items():
        assert checksum == expected[key]
        assert md5(settings.files_dir / str(path)) == checksum
    assert summary.telecharges == len(expected) == server.stats.files_served
    assert summary.statuses["ok"] == len(expected)
    assert parts(settings.files_dir) == []


def test_files_land_in_a_tree_by_demarche_dossier_and_champ(settings: config.Settings) -> None:
    run(settings)

    paths = [PurePosixPath(p) for _, p, _ in downloads(settings).values()]
    assert {p.parts[0] for p in paths} == {"general", "labo"}
    assert all(len(p.parts) == 4 for p in paths)
    number, holder = rows(settings, "SELECT numero, porteur FROM v_dossiers WHERE demarche = 'general' "
                                    "ORDER BY numero LIMIT 1")[0]
    assert any(p.parts[1] == files.safe_component(f"{number}-{holder}", max_bytes=files.FOLDER_BYTES)
               for p in paths)


def test_a_second_run_downloads_nothing(settings: config.Settings, server: FakeDS) -> None:
    first = run(settings)
    server.stats.reset()

    second = run(settings)

    assert server.stats.files_served == 0
    assert server.stats.operations["getDossier"] == 0
    assert second.telecharges == 0
    assert second.deja_presents == first.telecharges


def test_a_plain_sync_then_sync_files_fetches_the_files_with_fresh_links(
        settings: config.Settings, server: FakeDS) -> None:
    from itn7cli import sync

    sync.sync_settings(settings, settings.demarche_numbers())

    summary = run(settings)

    assert summary.telecharges == len(stored_files(settings)) == server.stats.files_served
    assert server.stats.operations["getDossier"] == len({n for n, _, _ in stored_files(settings)})


def test_a_corrupted_file_is_retried_then_reported_and_not_kept(
        settings: config.Settings, server: FakeDS, dataset: Dataset) -> None:
    key, number = file_key(dataset, "presentation_projet_")
    server.faults.corrupt(key)

    summary = run(settings)

    bad = [(k, v) for k, v in downloads(settings).items() if v[0] != "ok"]
    assert [(k[0], v[0], v[1]) for k, v in bad] == [(number, "somme_invalide", None)]
    assert summary.statuses["somme_invalide"] == 1
    assert server.stats.files_served == len(stored_files(settings)) - 1 + pool.RETRY.attempts
    on_disk = [p for p in (settings.files_dir).rglob("presentation_projet_*") if p.parent.parent.name.startswith(
        f"{number}-")]
    assert on_disk == []
    assert parts(settings.files_dir) == []


def test_a_file_that_failed_is_fetched_again_on_the_next_run(
        settings: config.Settings, server: FakeDS, dataset: Dataset) -> None:
    key, _ = file_key(dataset, "presentation_projet_")
    server.faults.corrupt(key)
    run(settings)
    server.faults.corrupt(key, on=False)
    server.stats.reset()

    summary = run(settings)

    assert server.stats.files_served == 1
    assert summary.telecharges == 1
    assert {status for status, _, _ in downloads(settings).values()} == {"ok"}


def test_a_file_added_to_a_dossier_is_downloaded_on_the_next_run(
        settings: config.Settings, server: FakeDS, dataset: Dataset) -> None:
    run(settings)
    number = dataset.visible_numbers("general")[3]
    spec = dataset.attach_file(number, DEVIS, "devis_complementaire.pdf")
    server.stats.reset()

    run(settings)

    assert server.stats.files_served == 1
    [(status, path)] = rows(settings, "SELECT status, path FROM file_downloads WHERE dossier_number = ? AND "
                                      "filename = ?", [number, "devis_complementaire.pdf"])
    assert status == "ok"
    assert md5(settings.files_dir / path) == dataset.content.checksum(spec.key, spec.size)


def test_a_file_removed_from_its_dossier_leaves_the_files_directory(
        settings: config.Settings, dataset: Dataset) -> None:
    run(settings)
    number = next(n for n, c, p in stored_files(settings) if n in dataset.visible_numbers("general"))
    before = rows(settings, "SELECT path FROM file_downloads WHERE dossier_number = ?", [number])
    dataset.edit_champ(number, "Annexe 1 du cahier des charges", [])

    run(settings)

    after = rows(settings, "SELECT path FROM file_downloads WHERE dossier_number = ?", [number])
    gone = [p for (p,) in before if "Annexe 1" in p]
    assert gone and all(not (settings.files_dir / p).exists() for p in gone)
    assert [p for (p,) in after if "Annexe 1" in p] == []


def test_a_file_over_the_size_limit_is_recorded_too_big_and_not_downloaded(
        settings: config.Settings, server: FakeDS) -> None:
    summary = run(settings, max_bytes=60_000)

    sizes = dict(rows(settings, "SELECT f.dossier_number || f.champ_id || f.position, f.byte_size FROM files f"))
    big = {k for k, size in sizes.items() if size > 60_000}
    statuses = dict(rows(settings, "SELECT dossier_number || champ_id || position, status FROM file_downloads"))
    assert big and {statuses[k] for k in big} == {"trop_gros"}
    assert summary.statuses["trop_gros"] == len(big)
    assert server.stats.files_served == len(sizes) - len(big)


def test_the_api_token_appears_in_no_path_and_nowhere_in_the_database(settings: config.Settings) -> None:
    run(settings)

    assert TOKEN.encode() not in settings.db_path.read_bytes()
    assert all(TOKEN not in str(p) for p in settings.files_dir.rglob("*"))


# ---------------------------------------------------------------- expired links and the HTTP policy


def test_the_fake_refuses_an_expired_link_with_401_as_swift_does(server: FakeDS, dataset: Dataset) -> None:
    spec = next(iter(dataset.files.values()))
    url = server.sign(spec)
    assert httpx.get(url).status_code == 200

    server.storage.rotate()

    assert httpx.get(url).status_code == 401
    assert httpx.get(server.sign(spec)).status_code == 200
    assert server.storage.refused == 1


def test_links_expired_before_their_download_are_renewed_with_one_get_dossier_per_dossier(
        settings: config.Settings, server: FakeDS) -> None:
    from itn7cli import sync

    pages: list[tuple[int, dict[str, Any]]] = []
    sync.sync_settings(settings, settings.demarche_numbers(),
                       after_page=lambda demarche, nodes: pages.extend((demarche, n) for n in nodes))
    server.storage.rotate()  # every link the pages hold is dead before its download starts
    server.stats.reset()
    keys = {number: key for key, number in settings.demarche_numbers().items()}
    root = private_dir(settings.files_dir).resolve()

    with DSClient(server.url, TOKEN) as client:
        files_run = FilesRun(root, keys, {}, files.LinkRenewer(client, keys), workers=3)
        for demarche, node in pages:
            files_run.submit(demarche, node)
        files_run.finish()

    expected = stored_files(settings)
    assert files_run.summary.statuses["ok"] == len(expected) == server.stats.files_served
    assert server.storage.refused == len(expected)
    assert server.stats.operations["getDossier"] == len({number for number, _, _ in expected})


def fast_token_env(settings: config.Settings, server: FakeDS, tmp_path: Path, token: str) -> dict[str, str]:
    """The CLI's environment with one download worker and a limiter of its own (a token no other test uses)."""
    toml = tmp_path / "itn7.toml"
    toml.write_text("[ds]\nconcurrency = 1\nrequests_per_minute = 100000\n")
    return {**cli_env(settings), "DS_API_TOKEN": token, "ITN7_CONFIG": str(toml)}


def test_sync_files_completes_with_every_attachment_verified_when_every_link_expires(
        dataset: Dataset, tmp_path: Path) -> None:
    token = "jeton-liens-courts-77c1"
    # Links live 5 s, and each file served takes 10 s on the storage's clock: every link signed before
    # a download expires, the ones in the sync's pages and the renewed ones alike.
    with FakeDS(dataset, tokens={token: TokenSpec()}, url_ttl=5.0, rate_limit=100_000) as server:
        server.storage.seconds_per_file = 10.0
        cfg = config.Settings(token=config.Secret(token), api_url=server.url, demarches=dict(dataset.numbers),
                              db_path=tmp_path / "itn7.db", files_dir=tmp_path / "fichiers")

        result = CliRunner().invoke(app, ["sync", "--files"], env=fast_token_env(cfg, server, tmp_path, token))

        assert result.exit_code == 0, result.stderr
        expected = stored_files(cfg)
        assert {status for status, _, _ in downloads(cfg).values()} == {"ok"}
        assert set(downloads(cfg)) == set(expected)
        for _, path, checksum in downloads(cfg).values():
            assert md5(cfg.files_dir / str(path)) == checksum
        assert server.stats.files_served == len(expected)
        assert server.storage.refused >= len(expected) // 2
        assert f"{len(expected)} téléchargée(s)" in " ".join(result.stderr.split())


def test_a_link_refused_even_once_renewed_is_reported_and_the_run_ends(tmp_path: Path) -> None:
    token = "jeton-liens-morts-3b0e"
    dataset = Dataset.generate(seed=5, counts={"general": 6, "labo": 2})
    # Every link is born dead, renewed ones too (a clock far off, say).
    with FakeDS(dataset, tokens={token: TokenSpec()}, url_ttl=-10.0) as server:
        cfg = config.Settings(token=config.Secret(token), api_url=server.url, demarches=dict(dataset.numbers),
                              db_path=tmp_path / "itn7.db", files_dir=tmp_path / "fichiers", concurrency=3)

        summary = run(cfg)

        with_files = {number for number, _, _ in stored_files(cfg)}
        assert server.stats.files_served == 0
        assert server.stats.operations["getDossier"] == pool.RENEWALS * len(with_files)
    assert {status for status, _, _ in downloads(cfg).values()} == {"erreur"}
    assert summary.statuses["erreur"] == len(stored_files(cfg))
    messages = {m for (m,) in rows(cfg, "SELECT DISTINCT message FROM file_downloads")}
    assert messages == {"Lien de téléchargement refusé même renouvelé : vérifiez l'heure de ce poste, puis "
                        "relancez « itn7 sync --files »."}


def ref_to(url: str) -> files.FileRef:
    return files.FileRef(1, 7, "c1", 0, "devis.pdf", "AAAA", 4, url, PurePosixPath("general/7/Devis/devis.pdf"))


@pytest.mark.parametrize(("status", "problem"), [
    (401, LinkExpired), (403, LinkExpired), (404, FileGone), (410, FileGone), (408, Retryable), (425, Retryable),
    (429, Retryable), (500, Retryable), (503, Retryable), (400, Refused), (418, Refused), (451, Refused)])
def test_download_verified_names_each_status_renew_retry_or_report(
        tmp_path: Path, status: int, problem: type[Exception]) -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, content=b"x")))

    with pytest.raises(problem):
        files.download_verified(http, ref_to("https://stockage.example/f"), tmp_path / "devis.pdf")

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("status", "requests"), [(400, 1), (418, 1), (503, 3), (429, 3), (408, 3)])
def test_the_pool_asks_again_only_for_what_the_retry_rule_retries(
        tmp_path: Path, status: int, requests: int) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(status)

    download_pool = files.DownloadPool(tmp_path, files.LinkRenewer(None, {}), workers=1,
                                       transport=httpx.MockTransport(answer))
    download_pool.put(Job(ref_to("https://stockage.example/f")))
    download_pool.close()

    [outcome] = download_pool.results()
    assert outcome.status == "erreur"
    assert len(seen) == requests == (1 if status < 500 and status not in (408, 425, 429) else pool.RETRY.attempts)


def test_a_bug_in_a_worker_is_raised_not_reported_as_a_file_error(
        settings: config.Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        return 1 // 0

    monkeypatch.setattr(pool, "download_verified", broken)

    with pytest.raises(ZeroDivisionError):
        run(settings)


# ---------------------------------------------------------------- personal data


def modes(root: Path) -> tuple[set[str], set[str]]:
    """The permission bits of the folders and of the files under `root` (itself included)."""
    entries = [root, *root.rglob("*")]
    return ({oct(p.stat().st_mode & 0o777) for p in entries if p.is_dir()},
            {oct(p.stat().st_mode & 0o777) for p in entries if p.is_file()})


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_the_attachments_folder_and_everything_in_it_are_owner_only_whatever_the_umask(
        settings: config.Settings, umask: int) -> None:
    previous = os.umask(umask)
    try:
        run(settings)
    finally:
        os.umask(previous)

    assert modes(settings.files_dir) == ({"0o700"}, {"0o600"})
    assert len(list(settings.files_dir.rglob("*.pdf"))) > 10
    assert oct(Path(f"{settings.db_path}.files.lock").stat().st_mode & 0o777) == "0o600"


def test_attachments_an_older_version_left_readable_by_all_become_owner_only(settings: config.Settings) -> None:
    run(settings)
    for path in [settings.files_dir, *settings.files_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    run(settings)

    assert modes(settings.files_dir) == ({"0o700"}, {"0o600"})


def test_what_the_user_keeps_beside_the_demarche_folders_is_left_as_it_is(settings: config.Settings) -> None:
    settings.files_dir.mkdir()
    notes = settings.files_dir / "notes.txt"
    notes.write_text("à relire")
    notes.chmod(0o644)

    run(settings)

    assert oct(notes.stat().st_mode & 0o777) == "0o644"
    assert notes.read_text() == "à relire"


# ---------------------------------------------------------------- interruption


def named_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".part")]


def wait_until(condition: Callable[[], bool], child: subprocess.Popen[bytes]) -> None:
    """Waits for something another process does (no event crosses processes); fails if the process ends.
    The deadline only keeps a broken run from hanging the suite: it measures nothing."""
    hang_guard = time.monotonic() + 300
    while not condition():
        assert child.poll() is None, "the child ended before the condition held"
        assert time.monotonic() < hang_guard, "the condition never held"
        time.sleep(0.01)


def test_a_run_killed_mid_download_leaves_no_half_file_counted_as_valid(tmp_path: Path) -> None:
    dataset = Dataset.generate(seed=2, counts={"general": 6, "labo": 2}, files_size=6_000_000)
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}) as server:
        cfg = config.Settings(token=config.Secret(TOKEN), api_url=server.url, demarches=dict(dataset.numbers),
                              db_path=tmp_path / "itn7.db", files_dir=tmp_path / "fichiers", concurrency=2)
        env = {**os.environ, "DS_API_TOKEN": TOKEN, "DS_API_URL": server.url, "ITN7_DB": str(cfg.db_path),
               "ITN7_FILES": str(cfg.files_dir), "ITN7_DEMARCHE_GENERAL": str(dataset.numbers["general"]),
               "ITN7_DEMARCHE_LABO": str(dataset.numbers["labo"])}
        # Two files go out whole, then one stops half-way until released: the kill lands mid-file.
        server.storage.hold(after_files=2, after_bytes=1_000_000)
        child = subprocess.Popen([sys.executable, "-m", "itn7cli", "sync", "--files", "--quiet"], env=env,
                                 cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert server.storage.held.wait(120), "no download reached the hold"
            # The held file cannot end, so the child cannot either: wait for the two files served whole
            # to be verified and renamed, and for the held one's bytes to reach its .part.
            wait_until(lambda: len(named_files(cfg.files_dir)) >= 2
                       and any(size_of(p) for p in parts(cfg.files_dir)), child)
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
            server.storage.release()
        assert parts(cfg.files_dir)
        for _, path, checksum in downloads(cfg).values():
            if path:
                assert md5(cfg.files_dir / path) == checksum
        named = named_files(cfg.files_dir)
        assert len(named) >= 2
        assert all(md5(p) in set(stored_files(cfg).values()) for p in named)
        server.stats.reset()

        summary = run(cfg)

        # The verified files the killed run left are kept without being downloaded again.
        assert summary.deja_presents == len(named)
        assert server.stats.files_served == len(stored_files(cfg)) - len(named)
    assert {status for status, _, _ in downloads(cfg).values()} == {"ok"}
    assert set(downloads(cfg)) == set(stored_files(cfg))
    assert summary.statuses["ok"] == len(stored_files(cfg))
    assert parts(cfg.files_dir) == []


# ---------------------------------------------------------------- names


HOSTILE = ["../../etc/passwd", "/abs/x.pdf", "CON", "d" * 296 + ".pdf", "budget 📎 final 🚀.pdf",
           "ligne1\nligne2.pdf", "..", ".", "", "a/../../b.pdf", "\\\\serveur\\partage\\x.pdf", "nul.txt",
           "COM1.pdf", "lpt9", " .pdf. ", "é" * 200, "C:\\Windows\\x.exe", "tab\there.pdf", "rtl\u202egpj.exe"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_name_becomes_one_harmless_component(name: str) -> None:
    safe = files.safe_component(name)

    assert safe not in ("", ".", "..")
    assert "/" not in safe and "\\" not in safe and ":" not in safe
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in safe)
    assert safe.split(".")[0].upper() not in files.RESERVED
    assert not safe.startswith(".") and not safe.endswith((" ", "."))
    assert len(safe.encode()) <= files.NAME_BYTES


def test_a_long_name_is_cut_at_a_character_boundary_and_keeps_its_extension() -> None:
    safe = files.safe_component("🚀" * 100 + ".pdf")

    assert safe.endswith(".pdf")
    assert len(safe.encode()) <= files.NAME_BYTES
    assert set(safe[:-4]) == {"🚀"}


def test_same_names_in_one_folder_are_numbered_whatever_their_case() -> None:
    node = {"number": 7, "demandeur": {"entreprise": {"raisonSociale": "Commune de Nice"}},
            "champs": [{"id": "c1", "label": "Devis", "files": [
                {"filename": "devis.pdf", "checksum": "a", "byteSize": "1", "url": "u1"},
                {"filename": "DEVIS.pdf", "checksum": "b", "byteSize": "1", "url": "u2"},
                {"filename": "devis.pdf", "checksum": "c", "byteSize": "1", "url": "u3"}]}]}

    paths = [str(r.path) for r in files.dossier_files(1, "general", node)]

    assert paths == ["general/7-Commune de Nice/Devis/devis.pdf", "general/7-Commune de Nice/Devis/DEVIS (2).pdf",
                     "general/7-Commune de Nice/Devis/devis (3).pdf"]


def test_a_path_leading_outside_the_files_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "lien").symlink_to(tmp_path)

    for relative in ("../x", "/etc/passwd", "lien/x", "."):
        with pytest.raises(StoreError):
            files.inside(tmp_path / "root", relative)


def test_hostile_names_from_applicants_stay_inside_the_files_directory(
        settings: config.Settings, dataset: Dataset) -> None:
    number = dataset.visible_numbers("general")[0]
    for name in HOSTILE:
        dataset.attach_file(number, DEVIS, name)

    run(settings)

    root = settings.files_dir.resolve()
    written = [p for p in settings.db_path.parent.rglob("*") if p.is_file()]
    outside = [p for p in written if not p.resolve().is_relative_to(root)]
    assert sorted(p.name for p in outside) == sorted(p.name for p in settings.db_path.parent.glob("itn7.db*"))
    assert not Path("/abs/x.pdf").exists()
    names = {p.name for p in root.rglob("*") if p.is_file()}
    assert {"_.._etc_passwd", "_abs_x.pdf", "_CON", "budget 📎 final 🚀.pdf", "ligne1_ligne2.pdf"} <= names
    statuses = rows(settings, "SELECT status, count(*) FROM file_downloads GROUP BY status")
    assert statuses == [("ok", len(stored_files(settings)))]


# ---------------------------------------------------------------- the committee's copy


def session_of(settings: config.Settings) -> dict[int, int | None]:
    from itn7cli.rules.engine import session_for

    return {n: session_for(d, settings.sessions) for n, d in rows(settings, "SELECT number, date_depot FROM dossiers "
                                                                            "WHERE deletion_state IS NULL")}


def test_gather_session_links_the_sessions_verified_files_into_the_destination(
        settings: config.Settings, tmp_path: Path) -> None:
    run(settings)
    db = store.open_db(settings.db_path)
    wanted = {n for n, s in session_of(settings).items() if s == 1}

    folders = gather_session(db, settings, 1, tmp_path / "comite")

    with_files = {n for (n,) in db.execute("SELECT DISTINCT dossier_number FROM file_downloads WHERE status = 'ok'")}
    assert set(folders) == wanted & with_files
    for number, folder in folders.items():
        for (path,) in db.execute("SELECT path FROM file_downloads WHERE dossier_number = ?", [number]):
            copy = tmp_path / "comite" / path
            assert copy.parent.parent == tmp_path / "comite" / folder
            assert copy.samefile(settings.files_dir / path)


def test_gather_session_follows_the_session_written_by_the_check(settings: config.Settings, tmp_path: Path) -> None:
    run(settings)
    db = store.open_db(settings.db_path)
    number = next(n for n, s in session_of(settings).items() if s == 1 and n in {k[0] for k in downloads(settings)})
    db.table("checks").insert({"number": number, "session": 3})

    first = gather_session(db, settings, 1, tmp_path / "s1")
    third = gather_session(db, settings, 3, tmp_path / "s3", link=False)

    assert number not in first
    assert number in third
    copy = next((tmp_path / "s3" / third[number]).rglob("*.pdf"))
    assert copy.stat().st_nlink == 1


# ---------------------------------------------------------------- command line


def cli_env(settings: config.Settings) -> dict[str, str]:
    return {"DS_API_TOKEN": TOKEN, "DS_API_URL": settings.api_url, "ITN7_DB": str(settings.db_path),
            "ITN7_FILES": str(settings.files_dir), "ITN7_DEMARCHE_GENERAL": str(settings.demarches["general"]),
            "ITN7_DEMARCHE_LABO": str(settings.demarches["labo"])}


def test_sync_files_prints_its_summary_on_stderr_and_nothing_on_stdout(settings: config.Settings) -> None:
    result = CliRunner().invoke(app, ["sync", "--files"], env=cli_env(settings))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"{len(stored_files(settings))} téléchargée(s)" in " ".join(result.stderr.split())
    assert TOKEN not in result.stderr


def test_sync_files_quiet_prints_nothing(settings: config.Settings) -> None:
    result = CliRunner().invoke(app, ["sync", "--files", "--quiet"], env=cli_env(settings))

    assert result.exit_code == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
