"""Settings: precedence, validation, and a token that never shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from itn7cli import config
from itn7cli.cli import app
from itn7cli.errors import ConfigError

TOKEN = "TEST-TOKEN-4f1c2a9e-ne-doit-jamais-apparaitre"


def test_real_environment_wins_over_dotenv_which_wins_over_toml(tmp_path: Path) -> None:
    (tmp_path / "itn7.toml").write_text('[ds]\ndemarches = { general = 1, labo = 2 }\nurl = "https://toml.example/api"\n')
    (tmp_path / ".env").write_text("ITN7_DEMARCHE_GENERAL=10\nDS_API_URL=https://dotenv.example/api\n")
    settings = config.load({"ITN7_DEMARCHE_GENERAL": "100"}, cwd=tmp_path)
    assert dict(settings.demarches) == {"general": 100, "labo": 2}
    assert settings.api_url == "https://dotenv.example/api"


def test_a_non_numeric_demarche_number_is_a_french_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ITN7_DEMARCHE_LABO doit être un nombre entier"):
        config.load({"ITN7_DEMARCHE_LABO": "douze"}, cwd=tmp_path)


def test_an_invalid_toml_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "itn7.toml").write_text("[ds\n")
    with pytest.raises(ConfigError, match=r"itn7\.toml"):
        config.load({}, cwd=tmp_path)


def test_session_closings_from_toml_are_read_as_paris_time(tmp_path: Path) -> None:
    (tmp_path / "itn7.toml").write_text('[appel]\nsessions = ["2021-06-30T23:59:59"]\n')
    settings = config.load({}, cwd=tmp_path)
    assert [s.isoformat() for s in settings.sessions] == ["2021-06-30T23:59:59+02:00"]


def test_missing_token_is_reported_with_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DS_API_TOKEN"):
        config.load({}, cwd=tmp_path).require_token()


def test_the_token_never_appears_in_the_settings_repr(tmp_path: Path) -> None:
    settings = config.load({"DS_API_TOKEN": TOKEN}, cwd=tmp_path)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.token)
    assert settings.require_token() == TOKEN


def test_config_command_masks_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DS_API_TOKEN", TOKEN)
    monkeypatch.setenv("ITN7_DEMARCHE_GENERAL", "4242")
    result = CliRunner().invoke(app, ["config"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "4242" in result.stdout and "masqué" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_bad_configuration_gives_one_french_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITN7_DEMARCHE_GENERAL", "abc")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().startswith("Erreur : ITN7_DEMARCHE_GENERAL doit être un nombre entier")
    assert "Traceback" not in result.stderr


def test_the_attachment_size_limit_is_read_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ITN7_TAILLE_MAX=50\n")
    assert config.load({}, cwd=tmp_path).max_file_mb == 50
    with pytest.raises(ConfigError, match="ITN7_TAILLE_MAX doit être un nombre entier"):
        config.load({"ITN7_TAILLE_MAX": "beaucoup"}, cwd=tmp_path)


def test_itn7_config_shows_the_reference_data_sources(tmp_path: Path) -> None:
    (tmp_path / "itn7.toml").write_text('[refdata]\nzrr = "zrr-cog2021.xls"\n')
    rows = {name: value for name, value, _ in config.load({}, cwd=tmp_path).describe()}
    assert rows["refdata.dgcl"] == "adresse par défaut"
    assert rows["refdata.zrr"].endswith("zrr-cog2021.xls")
