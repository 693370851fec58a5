"""The command line as a user meets it: help everywhere, the demo end to end."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from itn7cli import store, usage
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
    assert "Affiche cette aide." in result.stdout and "Show this message" not in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["exprt"], "Commande inconnue : exprt. Vouliez-vous dire export ?"),
    (["decisions", "importt"], "Commande inconnue : importt. Vouliez-vous dire import ?"),
    (["export", "--sesion", "2"], "Option inconnue : --sesion. Vouliez-vous dire --session ?"),
    (["annotate", "--dossier", "3"], "Option inconnue : --dossier."),
    (["check", "--format"], "L'option --format attend une valeur."),
    (["check", "--quiet=3"], "L'option --quiet ne prend pas de valeur."),
    (["check", "encore"], "Argument en trop : encore."),
    (["decisions", "import"], "Il manque l'argument CLASSEUR."),
    (["refdata", "import"], "Il manque l'argument FICHIERS."),
    (["export", "--session", "deux"], "Valeur refusée pour --session / -s : un nombre entier est attendu."),
    (["sync", "--taille-max", "0"], "Valeur refusée pour --taille-max : au moins 1."),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_mistyped_command_is_told_in_french(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert message in result.stderr, result.stderr


def test_a_usage_error_this_tool_does_not_know_is_shown_as_typer_wrote_it() -> None:
    assert usage.french(click.UsageError("Something new in a later Typer")) is None
    unknown_reason = click.BadParameter("Value must be blue", param=click.Option(["--colour"]))
    assert usage.french(unknown_reason) is None
    known_reason = click.BadParameter("'x' is not a valid integer.", param=click.Option(["--colour"]))
    assert usage.french(known_reason) == "Valeur refusée pour --colour : « x » n'est pas un nombre entier."

