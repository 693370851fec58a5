"""Settings from the environment, `.env` and `itn7.toml`, validated once.

Precedence, lowest first: built-in defaults, `itn7.toml`, `.env` in the working directory,
the real environment. The API token lives only in the environment or `.env`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dotenv import dotenv_values

from .errors import ConfigError

DEFAULT_API_URL = "https://demarche.numerique.gouv.fr/api/v2/graphql"
LEGACY_API_URL = "https://www.demarches-simplifiees.fr/api/v2/graphql"
PARIS = ZoneInfo("Europe/Paris")
DEMARCHE_KEYS = ("general", "labo")
DEFAULT_SESSIONS = ("2021-05-30T23:59:59", "2021-08-15T23:59:59", "2021-10-15T23:59:59")

ENV_VARS = {
    "DS_API_TOKEN": "Jeton d'API Démarche Numérique (secret, jamais affiché)",
    "DS_API_URL": "Adresse de l'API GraphQL",
    "ITN7_DEMARCHE_GENERAL": "Numéro de la démarche générale",
    "ITN7_DEMARCHE_LABO": "Numéro de la démarche « laboratoire d'innovation »",
    "ITN7_DB": "Fichier de la base SQLite",
    "ITN7_FILES": "Dossier des pièces jointes téléchargées",
    "ITN7_TAILLE_MAX": "Taille maximale d'une pièce jointe téléchargée, en Mo",
    "ITN7_INSTRUCTEUR_ID": "Identifiant de l'instructeur qui écrit les annotations",
    "ITN7_CONFIG": "Fichier de configuration (par défaut itn7.toml)",
}


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    token: Secret = field(default_factory=lambda: Secret(""))
    api_url: str = DEFAULT_API_URL
    demarches: Mapping[str, int | None] = field(default_factory=lambda: {"general": None, "labo": None})
    db_path: Path = Path("itn7.db")
    files_dir: Path = Path("fichiers")
    max_file_mb: int = 200
    instructeur_id: str | None = None
    config_file: Path | None = None
    # Sync politeness: the API allows 400 requests/minute per token.
    requests_per_minute: int = 300
    # A first pull starts one stream per dossier state of each démarche (5 × 2) in the same instant.
    concurrency: int = 10
    timeout_seconds: float = 60.0
    # Call rules (RULES.md), all overridable in itn7.toml.
    sessions: tuple[datetime, ...] = field(
        default_factory=lambda: tuple(datetime.fromisoformat(s).replace(tzinfo=PARIS) for s in DEFAULT_SESSIONS)
    )
    plafond_commune: float = 30_000.0
    plafond_epci_statut: bool = False
    limite_porteur: int = 2
    taille_petite: int = 3_500
    taille_grande: int = 20_000
    fin_projet_max: date = date(2022, 12, 31)
    enveloppe: float = 1_780_000.0
    mapping: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Days a dossier deleted in DS keeps its personal data here before the purge erases it.
    delai_effacement_jours: int = 30
    # Sources of `itn7 refdata update` ([refdata] dgcl, zrr): an address, or a file read as is; None: the default.
    refdata_sources: Mapping[str, str] = field(default_factory=dict)

    def demarche_numbers(self, only: str | None = None) -> dict[str, int]:
        """The configured démarches as {key: number}, optionally only one; at least one is required."""
        keys = [only] if only else list(DEMARCHE_KEYS)
        chosen = {k: n for k in keys if (n := self.demarches.get(k)) is not None}
        if not chosen:
            names = " / ".join(f"ITN7_DEMARCHE_{k.upper()}" for k in keys)
            raise ConfigError(f"Aucun numéro de démarche configuré : renseignez {names}.")
        return chosen

    def require_token(self) -> str:
        if not self.token:
            raise ConfigError(
                "Jeton d'API manquant : renseignez DS_API_TOKEN dans l'environnement ou le fichier .env "
                "(jeton créé depuis « Mon profil » d'un compte administrateur)."
            )
        return self.token.reveal()

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value, source-free description) rows for display; the token is masked."""
        rows = [
            ("DS_API_TOKEN", "défini (masqué)" if self.token else "non défini", ENV_VARS["DS_API_TOKEN"]),
            ("DS_API_URL", self.api_url, ENV_VARS["DS_API_URL"]),
        ]
        for key in DEMARCHE_KEYS:
            var = f"ITN7_DEMARCHE_{key.upper()}"
            number = self.demarches.get(key)
            rows.append((var, str(number) if number is not None else "non défini", ENV_VARS[var]))
        rows += [
            ("ITN7_DB", str(self.db_path), ENV_VARS["ITN7_DB"]),
            ("ITN7_FILES", str(self.files_dir), ENV_VARS["ITN7_FILES"]),
            ("ITN7_TAILLE_MAX", f"{self.max_file_mb} Mo", ENV_VARS["ITN7_TAILLE_MAX"]),
            ("ITN7_INSTRUCTEUR_ID", self.instructeur_id or "non défini", ENV_VARS["ITN7_INSTRUCTEUR_ID"]),
            ("ITN7_CONFIG", str(self.config_file) if self.config_file else "aucun", ENV_VARS["ITN7_CONFIG"]),
            ("sessions", ", ".join(s.strftime("%d/%m/%Y %H:%M") for s in self.sessions), "Clôtures des sessions"),
            ("plafond_commune", f"{self.plafond_commune:,.0f} €".replace(",", " "), "Plafond pour une commune seule"),
            ("limite_porteur", str(self.limite_porteur), "Nombre de dossiers maximum par porteur"),
            ("enveloppe", f"{self.enveloppe:,.0f} €".replace(",", " "), "Enveloppe régionale"),
            ("delai_effacement_jours", f"{self.delai_effacement_jours} jours",
             "Délai avant l'effacement local d'un dossier supprimé dans Démarche Numérique"),
        ]
        rows += [(f"refdata.{name}", self.refdata_sources.get(name) or "adresse par défaut",
                  f"Source de « itn7 refdata update » ({label})")
                 for name, label in (("dgcl", "composition des EPCI, DGCL"), ("zrr", "classement ZRR, ANCT"))]
        return rows


def _int(value: Any, name: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} doit être un nombre entier (reçu « {value} »).") from None
    if number <= 0:
        raise ConfigError(f"{name} doit être un nombre positif (reçu « {value} »).")
    return number


def _days(value: Any, name: str) -> int:
    """A number of days, zero allowed (erase as soon as DS deletes)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} doit être un nombre de jours, entier et positif ou nul (reçu « {value} »).")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"Fichier de configuration illisible : {path} ({exc.strerror}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Fichier de configuration invalide : {path} ({exc}).") from None


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Fichier .env illisible : {path} ({exc}).") from None


def _sessions(values: Any) -> tuple[datetime, ...]:
    if not isinstance(values, list) or not values:
        raise ConfigError("[appel] sessions doit être une liste de dates de clôture.")
    closings = []
    for value in values:
        try:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"Date de clôture de session invalide : « {value} ».") from None
        closings.append(moment if moment.tzinfo else moment.replace(tzinfo=PARIS))
    return tuple(sorted(closings))


def _refdata_sources(section: Any, config_file: Path | None) -> dict[str, str]:
    """[refdata] dgcl / zrr: an http(s) address as is, a relative path from the folder of itn7.toml."""
    if not isinstance(section, dict):
        raise ConfigError("[refdata] doit être une section : dgcl = \"…\", zrr = \"…\".")
    sources = {}
    for name, value in section.items():
        if name not in ("dgcl", "zrr") or not isinstance(value, str) or not value.strip():
            raise ConfigError(f"[refdata] {name} : réglage inconnu ou vide (attendu : dgcl ou zrr, une adresse "
                              "ou un chemin de fichier).")
        value = value.strip()
        if "://" not in value and config_file is not None and not Path(value).expanduser().is_absolute():
            value = str(config_file.parent / value)
        sources[name] = value
    return sources


def load(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Builds the settings; raises ConfigError with a French message when something is wrong."""
    cwd = cwd or Path.cwd()
    real_env = dict(os.environ if environ is None else environ)
    env = {**_read_dotenv(cwd / ".env"), **real_env}

    config_file: Path | None = None
    toml: dict[str, Any] = {}
    if env.get("ITN7_CONFIG"):
        config_file = Path(env["ITN7_CONFIG"])
        if not config_file.is_absolute():
            config_file = cwd / config_file
        if not config_file.is_file():
            raise ConfigError(f"Fichier de configuration introuvable : {config_file}.")
    elif (cwd / "itn7.toml").is_file():
        config_file = cwd / "itn7.toml"
    if config_file:
        toml = _read_toml(config_file)

    ds = toml.get("ds", {})
    appel = toml.get("appel", {})
    demarches: dict[str, int | None] = {}
    for key in DEMARCHE_KEYS:
        var = f"ITN7_DEMARCHE_{key.upper()}"
        raw = env.get(var) or ds.get("demarches", {}).get(key)
        demarches[key] = _int(raw, var) if raw not in (None, "") else None

    kwargs: dict[str, Any] = {
        "token": Secret(env.get("DS_API_TOKEN", "").strip()),
        "api_url": (env.get("DS_API_URL") or ds.get("url") or DEFAULT_API_URL).strip(),
        "demarches": demarches,
        "db_path": Path(env.get("ITN7_DB") or toml.get("db") or "itn7.db"),
        "files_dir": Path(env.get("ITN7_FILES") or toml.get("fichiers") or "fichiers"),
        "instructeur_id": env.get("ITN7_INSTRUCTEUR_ID") or ds.get("instructeur_id") or None,
        "config_file": config_file,
        "mapping": toml.get("mapping", {}),
    }
    taille = env.get("ITN7_TAILLE_MAX") or toml.get("taille_max")
    if taille not in (None, ""):
        kwargs["max_file_mb"] = _int(taille, "ITN7_TAILLE_MAX")
    if not kwargs["api_url"].startswith(("http://", "https://")):
        raise ConfigError(f"DS_API_URL doit commencer par https:// (reçu « {kwargs['api_url']} »).")
    for name in ("requests_per_minute", "concurrency"):
        if name in ds:
            kwargs[name] = _int(ds[name], f"[ds] {name}")
    if "timeout_seconds" in ds:
        kwargs["timeout_seconds"] = float(_int(ds["timeout_seconds"], "[ds] timeout_seconds"))
    if "sessions" in appel:
        kwargs["sessions"] = _sessions(appel["sessions"])
    for name in ("plafond_commune", "enveloppe"):
        if name in appel:
            kwargs[name] = float(_int(appel[name], f"[appel] {name}"))
    for name in ("limite_porteur", "taille_petite", "taille_grande"):
        if name in appel:
            kwargs[name] = _int(appel[name], f"[appel] {name}")
    if "plafond_epci_statut" in appel:
        kwargs["plafond_epci_statut"] = bool(appel["plafond_epci_statut"])
    kwargs["refdata_sources"] = _refdata_sources(toml.get("refdata", {}), config_file)
    if "fin_projet_max" in appel:
        try:
            kwargs["fin_projet_max"] = date.fromisoformat(str(appel["fin_projet_max"]))
        except ValueError:
            raise ConfigError(f"[appel] fin_projet_max invalide : « {appel['fin_projet_max']} ».") from None
    donnees = toml.get("donnees", {})
    if "delai_effacement_jours" in donnees:
        kwargs["delai_effacement_jours"] = _days(donnees["delai_effacement_jours"], "[donnees] delai_effacement_jours")
    return Settings(**kwargs)
