"""The CLI's error wrapper: expected failures in one French line, a bug surfacing as a bug."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from itn7cli import refdata
from itn7cli.cli import BUG_EXIT_CODE, app, friendly
from itn7cli.errors import ConfigError


def test_a_bug_says_it_is_one_and_where_to_report_it_then_shows_the_traceback_without_locals(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        token = "jeton-tres-secret"  # a local a traceback with locals would show
        raise ZeroDivisionError(f"division by zero ({len(token)})")

    monkeypatch.setattr(refdata, "update", broken)
    result = CliRunner().invoke(app, ["refdata", "update", "--db", str(tmp_path / "itn7.db")])
    assert result.exit_code == BUG_EXIT_CODE == 70
    first, *rest = result.stderr.splitlines()
    assert first == ("Erreur interne : c'est un bogue d'itn7, pas une erreur de votre part ; signalez-le à l'équipe "
                     "qui maintient itn7 au SGAR PACA, en joignant la commande lancée, la version (itn7 --version) et "
                     "le texte ci-dessous.")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ZeroDivisionError: division by zero (17)"
    assert "jeton-tres-secret" not in result.stderr and result.stdout == ""


def test_an_expected_failure_stays_one_french_line_with_its_exit_code(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise ConfigError("[refdata] dgcl : fichier introuvable.")

    monkeypatch.setattr(refdata, "update", refused)
    result = CliRunner().invoke(app, ["refdata", "update", "--db", str(tmp_path / "itn7.db")])
    assert (result.exit_code, result.stderr) == (2, "Erreur : [refdata] dgcl : fichier introuvable.\n")


@pytest.mark.parametrize("exit_code", [0, 1, 3])
def test_typer_exit_passes_through_untouched(exit_code: int) -> None:
    @friendly
    def command() -> None:
        raise typer.Exit(exit_code)

    with pytest.raises(typer.Exit) as caught:
        command()
    assert caught.value.exit_code == exit_code


def test_ctrl_c_is_still_an_interruption_not_a_bug() -> None:
    @friendly
    def command() -> None:
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as caught:
        command()
    assert caught.value.exit_code == 130
