"""The `itn7` command line: parse options, call the library, render. Nothing else prints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from . import config as config_mod
from .console import err, out
from .errors import Itn7Error

app = typer.Typer(
    help="Instruction des dossiers ITN7 Axe 3 (PACA) : synchronisation depuis Démarche Numérique, "
    "contrôles d'éligibilité et classeur du comité.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    # Locals may hold the API token: a traceback must never show them.
    pretty_exceptions_show_locals=False,
)

F = TypeVar("F", bound=Callable[..., Any])

# Options shared by several commands, defined once.
DbOption = Annotated[Path | None, typer.Option("--db", envvar="ITN7_DB", help="Fichier de la base SQLite.",
                                               show_default="itn7.db")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="N'affiche que les erreurs.")]
DemarcheOption = Annotated[str | None, typer.Option(
    "--demarche", "-d", help="Seulement cette démarche : general ou labo.", case_sensitive=False)]


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", help="Affiche la version et quitte.")] = False,
) -> None:
    """Instruction des dossiers ITN7 Axe 3 (PACA) : [bold]itn7 demo[/] pour tout voir sans jeton."""
    if version:
        from . import __version__

        out.print(f"itn7 {__version__}")
        raise typer.Exit()


def friendly(func: F) -> F:
    """Turns the expected failures into a one-line French message on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Itn7Error as exc:
            err.print(f"[bold red]Erreur :[/] {exc}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]Interrompu.[/] La base reste cohérente : relancez la commande pour reprendre.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings(db: Path | None = None) -> config_mod.Settings:
    """The settings, with the --db option winning over ITN7_DB and itn7.toml."""
    loaded = config_mod.load()
    if db is not None:
        loaded = config_mod.Settings(**{**loaded.__dict__, "db_path": db})
    return loaded


def check_demarche_key(value: str | None) -> str | None:
    if value is not None and value.lower() not in config_mod.DEMARCHE_KEYS:
        raise config_mod.ConfigError(f"Démarche inconnue « {value} » : choisissez general ou labo.")
    return value.lower() if value else None


@app.command("config")
@friendly
def show_config() -> None:
    """Affiche la configuration effective (le jeton est masqué).

    Exemple : [bold]itn7 config[/]
    """
    table = Table(title="Configuration effective", show_lines=False)
    table.add_column("Réglage", style="bold")
    table.add_column("Valeur")
    table.add_column("Rôle", style="dim")
    for name, value, role in settings().describe():
        table.add_row(name, value, role)
    out.print(table)


def main() -> None:
    app()
