"""The `itn7` command line: parse options, call the library, render. Nothing else prints."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import config as config_mod
from . import sync as sync_mod
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



# ---------------------------------------------------------------- sync

DEMARCHE_LABELS = {"general": "Démarche générale", "labo": "Démarche laboratoire d'innovation"}


def render_sync(summaries: list[sync_mod.Summary]) -> None:
    table = Table(title="Synchronisation terminée")
    table.add_column("Démarche", style="bold")
    for name in ("Mode", "Pages", "Nouveaux", "Modifiés", "Supprimés", "Restaurés", "Inchangés"):
        table.add_column(name, justify="right")
    for s in summaries:
        table.add_row(f"{DEMARCHE_LABELS.get(s.key, s.key)} (n° {s.number})", s.mode, str(s.pages),
                      str(s.nouveaux), str(s.modifies), str(s.supprimes), str(s.restaures), str(s.inchanges))
    err.print(table)


def run_sync(cfg: config_mod.Settings, demarches: dict[str, int], *, full: bool, quiet: bool) -> None:
    """Runs the sync with a progress line per démarche on stderr, then its summary."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[dossiers]} dossiers · {task.fields[pages]} pages"), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=quiet, transient=False) as progress:
        tasks = {number: progress.add_task(f"{DEMARCHE_LABELS[key]} (n° {number})", total=None, dossiers=0, pages=0)
                 for key, number in demarches.items()}

        def show(summary: sync_mod.Summary) -> None:
            progress.update(tasks[summary.number], dossiers=summary.dossiers, pages=summary.pages)

        summaries = sync_mod.sync_settings(cfg, demarches, full=full, progress=show)
        for task in tasks.values():
            progress.update(task, total=1, completed=1)
    if not quiet:
        render_sync(summaries)


@app.command()
@friendly
def sync(
    demarche: DemarcheOption = None,
    full: Annotated[bool, typer.Option("--full", help="Tout retélécharger et repérer les dossiers disparus.")] = False,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Récupère les dossiers des deux démarches depuis Démarche Numérique dans la base locale.

    La première fois, tout est téléchargé ; ensuite, seuls les dossiers modifiés, supprimés ou
    restaurés. Une synchronisation interrompue reprend là où elle s'était arrêtée.

    Exemples : [bold]itn7 sync[/] · [bold]itn7 sync --demarche labo[/] · [bold]itn7 sync --full[/]
    """
    cfg = settings(db)
    run_sync(cfg, cfg.demarche_numbers(check_demarche_key(demarche)), full=full, quiet=quiet)


def main() -> None:
    app()
