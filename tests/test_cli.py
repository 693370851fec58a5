"""The command line as a user meets it: help everywhere, the demo end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from itn7cli import store
from itn7cli.cli import app
from itn7cli.rules.engine import RULE_IDS


def command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: object, prefix: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*prefix, name])
        else:
            paths.append(prefix)

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_every_command_has_french_help_with_an_example(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Exemple" in result.stdout, result.stdout


def test_the_core_commands_exist() -> None:
    assert {"sync", "check", "demo", "config"} <= {p[0] for p in command_paths()}


def test_demo_syncs_and_checks_the_embedded_data_without_token_or_network(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--dossier", str(tmp_path / "demo")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    db = store.open_db(tmp_path / "demo" / "itn7-demo.db", must_exist=True)
    live = db.execute("SELECT count(*) FROM dossiers WHERE deletion_state IS NULL").fetchone()[0]
    assert live == 360
    assert db.execute("SELECT count(*) FROM checks").fetchone()[0] == live
    assert db.execute("SELECT count(*) FROM ref_communes").fetchone()[0] > 0
    assert "Démonstration prête" in result.stdout
    assert "300 nouveau(x)" in result.stderr
    # Plausible verdicts: most dossiers eligible, and every rule of RULES.md fires at least once.
    statuses = dict(db.execute("SELECT status, count(*) FROM checks GROUP BY status").fetchall())
    assert statuses["eligible"] > live / 2
    fired = {r[0] for r in db.execute("SELECT DISTINCT rule FROM check_findings WHERE status != 'eligible'")}
    assert fired == set(RULE_IDS)
    workbooks = sorted(p.name for p in (tmp_path / "demo").glob("itn7-comite-session-*.xlsx"))
    assert [name[:len("itn7-comite-session-1")] for name in workbooks] == [
        "itn7-comite-session-1", "itn7-comite-session-2", "itn7-comite-session-3"]


def test_a_folder_that_cannot_be_created_gives_one_french_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "fichier"
    blocker.write_text("pas un dossier")
    result = CliRunner().invoke(app, ["demo", "--dossier", str(blocker / "demo")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Erreur : accès au fichier impossible")
    assert str(blocker) in result.stderr and "Traceback" not in result.stderr


def test_help_screens_use_french_for_typers_fixed_strings() -> None:
    result = CliRunner().invoke(app, ["sync", "--help"], env={"COLUMNS": "200"})
    assert "[par défaut : " in result.stdout and "[variable : ITN7_DB]" in result.stdout
    assert "[default:" not in result.stdout and "env var" not in result.stdout
