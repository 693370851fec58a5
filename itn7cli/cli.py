"""The `itn7` command line: parse options, call the library, render. Nothing else prints."""

from __future__ import annotations

import functools
import logging
import sqlite3
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import config as config_mod
from . import sync as sync_mod
from . import usage
from .console import err, out
from .errors import Itn7Error, StoreError
from .files import STATUSES, FilesSummary

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
BUG_EXIT_CODE = 70  # EX_SOFTWARE: an internal error
BUG_REPORT = ("signalez-le à l'équipe qui maintient itn7 au SGAR PACA, en joignant la commande lancée, la "
              "version (itn7 --version) et le texte ci-dessous.")

usage.install()  # Typer's own texts (help screens, usage errors) in French

# Options shared by several commands, defined once.
DbOption = Annotated[Path | None, typer.Option("--db", envvar="ITN7_DB", help="Fichier de la base SQLite.",
                                               show_default="itn7.db")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="N'affiche que les erreurs.")]
SessionFilterOption = Annotated[int | None, typer.Option("--session", "-s", help="Seulement cette session (1, 2, 3).")]
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
    """Turns the expected failures into a one-line French message on stderr and a non-zero exit.

    Anything else is a bug of itn7: it is said to be one, with where to report it, then its traceback
    (never the local variables, which may hold the token), and the exit code is 70 (EX_SOFTWARE).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Itn7Error as exc:  # plain text: « [refdata] dgcl » is not rich markup
            err.print(f"[bold red]Erreur :[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]Interrompu.[/] La base reste cohérente : relancez la commande pour reprendre.")
            raise typer.Exit(130) from None
        except sqlite3.Error as exc:  # a locked, full or damaged database: say so, the data is safe
            err.print(f"[bold red]Erreur :[/] base de données inutilisable ({exc}).", soft_wrap=True)
            raise typer.Exit(StoreError.exit_code) from None
        except OSError as exc:  # disk full, permission denied, missing folder
            where = f" : {exc.filename}" if exc.filename else ""
            err.print(f"[bold red]Erreur :[/] accès au fichier impossible ({exc.strerror or exc}){where}.",
                      soft_wrap=True)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # the ways out of a command (typer's own in recent versions, click's in older ones)
        except Exception:
            err.print("[bold red]Erreur interne :[/] c'est un bogue d'itn7, pas une erreur de votre part ; "
                      + BUG_REPORT, soft_wrap=True)
            err.print(traceback.format_exc().rstrip(), markup=False, soft_wrap=True)
            raise typer.Exit(BUG_EXIT_CODE) from None

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
    """One sentence per démarche: readable in any terminal width; then one line per unreadable dossier,
    value kept as text and field hidden from the token."""
    for s in summaries:
        err.print(f"[bold]{DEMARCHE_LABELS.get(s.key, s.key)} (n° {s.number})[/], synchronisation {s.mode} : "
                  f"{s.nouveaux} nouveau(x), {s.modifies} modifié(s), {s.supprimes} supprimé(s), "
                  f"{s.restaures} restauré(s), {s.inchanges} inchangé(s) — {s.pages} page(s).")
        if s.hors_limites:
            count = len(s.hors_limites)
            what = "1 valeur hors limites conservée" if count == 1 else f"{count} valeurs hors limites conservées"
            where = " ; ".join(f"dossier {n}, champ {label}" for n, label in s.hors_limites)
            err.print(f"[yellow]{what} en texte[/] : {where}", soft_wrap=True)
        for warning in s.avertissements:
            err.print(f"[yellow]Avertissement :[/] champ non visible avec ce jeton ({warning})", soft_wrap=True)


def render_unreadable(summaries: list[sync_mod.Summary]) -> None:
    """One stderr line per dossier Démarche Numérique could not serialise (always shown, even with --quiet)."""
    for s in summaries:
        for number in s.illisibles:
            err.print(f"[bold yellow]Dossier n° {number} illisible[/] : Démarche Numérique n'a pas pu le fournir "
                      "(erreur de son côté) ; il sera relu à chaque synchronisation.", soft_wrap=True)


def render_files(s: FilesSummary) -> None:
    """One sentence for the attachments of `sync --files`, problems named by status."""
    labels = dict(zip(STATUSES, ("vérifiée(s)", "manquante(s)", "somme de contrôle invalide",
                                 "trop volumineuse(s)", "en erreur"), strict=True))
    problems = ", ".join(f"{n} {labels[k]}" for k, n in s.statuses.items() if n and k != "ok")
    err.print(f"[bold]Pièces jointes[/] : {s.fichiers} pièce(s), {s.telecharges} téléchargée(s) "
              f"({s.octets / 2**20:.1f} Mo), {s.deja_presents} déjà présente(s) et vérifiée(s)"
              + (f" — [red]{problems}[/] (détail : vue v_pieces)." if problems else "."))


def run_sync(cfg: config_mod.Settings, demarches: dict[str, int], *, full: bool, quiet: bool,
             files: bool = False, max_mo: int | None = None) -> None:
    """Runs the sync with a progress line per démarche on stderr, then its summary."""
    from . import check as check_mod

    before = check_mod.stored_revisions(cfg.db_path)  # to name the revisions this sync brings
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=quiet, transient=False) as progress:
        tasks = {number: progress.add_task(f"{DEMARCHE_LABELS[key]} (n° {number})", total=None,
                                           detail="0 dossiers · 0 pages") for key, number in demarches.items()}

        def show(summary: sync_mod.Summary) -> None:
            progress.update(tasks[summary.number], detail=f"{summary.dossiers} dossiers · {summary.pages} pages")

        if files:
            from . import files as files_mod

            file_task = progress.add_task("Pièces jointes", total=None, detail="")

            def show_files(f: FilesSummary) -> None:
                progress.update(file_task, total=f.attendus or None, completed=f.octets,
                                detail=f"{f.fichiers - f.en_cours} / {f.fichiers} fichiers · {f.octets / 2**20:.1f} Mo")

            summaries, file_summary = files_mod.sync_with_files(cfg, demarches, full=full, progress=show,
                                                                file_progress=show_files,
                                                                max_bytes=(max_mo or cfg.max_file_mb) * 2**20)
        else:
            summaries = sync_mod.sync_settings(cfg, demarches, full=full, progress=show)
        for task in tasks.values():
            progress.update(task, total=1, completed=1)
    if not quiet:
        render_sync(summaries)
        for line in check_mod.revision_news_at(cfg, before):
            err.print(line[:1].upper() + line[1:] + ".", soft_wrap=True)
        if files:
            render_files(file_summary)
    # What DS deleted, itn7 forgets: the purge runs once the sync has released the database.
    from . import donnees

    purged = donnees.after_sync(cfg)
    if not quiet:
        render_purge_line(purged)
    render_unreadable(summaries)
    if any(s.illisibles for s in summaries):  # complete except those dossiers
        raise typer.Exit(sync_mod.EXIT_INCOMPLETE)


@app.command()
@friendly
def sync(
    demarche: DemarcheOption = None,
    full: Annotated[bool, typer.Option("--full", help="Tout retélécharger et repérer les dossiers disparus.")] = False,
    files: Annotated[bool, typer.Option("--files", help="Télécharger aussi les pièces jointes, vérifiées, dans "
                                        "ITN7_FILES (./fichiers) : <démarche>/<numéro>-<porteur>/<champ>/.")] = False,
    max_mo: Annotated[int | None, typer.Option("--taille-max", min=1, show_default="ITN7_TAILLE_MAX, sinon 200",
                                               help="Taille maximale d'une pièce jointe, en Mo.")] = None,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Récupère les dossiers des deux démarches depuis Démarche Numérique dans la base locale.

    La première fois, tout est téléchargé ; ensuite, seuls les dossiers modifiés, supprimés ou
    restaurés. Une synchronisation interrompue reprend là où elle s'était arrêtée. Code de sortie 1 :
    synchronisation complète sauf des dossiers illisibles (nommés, relus à chaque synchronisation).

    Exemples : [bold]itn7 sync[/] · [bold]itn7 sync --demarche labo[/] · [bold]itn7 sync --full[/] ·
    [bold]itn7 sync --files[/]
    """
    cfg = settings(db)
    run_sync(cfg, cfg.demarche_numbers(check_demarche_key(demarche)), full=full, quiet=quiet, files=files,
             max_mo=max_mo)


# ---------------------------------------------------------------- check, refdata, champs

STATUS_STYLES = {"eligible": "green", "a_verifier": "yellow", "ineligible": "red"}
StatusOption = Annotated[str | None, typer.Option(
    "--status", help="Seulement ce statut : eligible, a_verifier ou ineligible.", case_sensitive=False)]


def reason(title: str, message: str, style: str) -> str:
    """« Titre : message » with the title in the status colour; the title once when the message starts with it."""
    from rich.markup import escape

    if message.casefold().startswith(title.casefold()):
        return f"[{style}]{escape(message[:len(title)])}[/]{escape(message[len(title):])}"
    return f"[{style}]{escape(title)}[/] : {escape(message)}"


def render_check(rows: list[dict[str, Any]]) -> None:
    """The results table, then the counts per status and per session."""
    from collections import Counter

    from . import labels
    from .rules import engine

    titles = engine.rule_titles()
    table = Table(title="Contrôle d'éligibilité", show_lines=True)
    for name in ("Démarche", "N°", "Session", "Statut", "Score", "Motifs"):
        table.add_column(name, overflow="fold")
    for row in rows:
        style = STATUS_STYLES[row["status"]]
        reasons = "\n".join(reason(titles.get(f["rule"], f["rule"]), f["message"], STATUS_STYLES[f["status"]])
                            for f in row["findings"])
        score = row["priority"].get("score")
        table.add_row(labels.demarche(row["demarche"], short=True), str(row["number"]),
                      str(row["session"] or "hors session"), f"[{style}]{labels.STATUSES[row['status']]}[/]",
                      "" if score is None else str(score), reasons)
    out.print(table)
    statuses = Counter(row["status"] for row in rows)
    sessions = Counter(row["session"] for row in rows)
    out.print("Par statut : " + " · ".join(f"{labels.STATUSES[s]} {statuses[s]}" for s in STATUS_STYLES))
    out.print("Par session : " + " · ".join(f"{'hors session' if k is None else f'session {k}'} {v}"
                                            for k, v in sorted(sessions.items(), key=lambda i: (i[0] is None, i[0]))))


@app.command("check")
@friendly
def check_command(
    session: SessionFilterOption = None,
    demarche: DemarcheOption = None,
    status: StatusOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Tout recontrôler, même les dossiers inchangés.")] = False,
    output: Annotated[str, typer.Option("--format", "-f", help="table ou json (tableau JSON sur la sortie).",
                                        case_sensitive=False)] = "table",
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Contrôle l'éligibilité des dossiers synchronisés et affiche les motifs.

    Seuls les dossiers modifiés depuis leur dernier contrôle sont recontrôlés (ou tous si les règles ou
    la configuration ont changé). Le code de sortie vaut 0 quels que soient les verdicts.

    Exemples : [bold]itn7 check[/] · [bold]itn7 check --session 2 --status a_verifier[/] ·
    [bold]itn7 check --format json > controles.json[/]
    """
    import json

    from . import check as check_mod
    from . import store

    if output.lower() not in ("table", "json"):
        raise config_mod.ConfigError(f"Format inconnu « {output} » : choisissez table ou json.")
    if status is not None and status.lower() not in STATUS_STYLES:
        raise config_mod.ConfigError(f"Statut inconnu « {status} » : choisissez eligible, a_verifier ou ineligible.")
    cfg = settings(db)
    database = store.open_db(cfg.db_path, must_exist=True)
    summary = check_mod.run(database, cfg, force=all_)
    if not quiet:
        err.print(f"{summary.checked} dossier(s) contrôlé(s) sur {summary.total}.")
    rows = check_mod.results(database, session, check_demarche_key(demarche), status.lower() if status else None)
    if output.lower() == "json":
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        render_check(rows)


refdata_app = typer.Typer(help="Données de référence : communes, EPCI, ZRR, populations 2021.", no_args_is_help=True)
app.add_typer(refdata_app, name="refdata")


@refdata_app.command("import")
@friendly
def refdata_import(
    paths: Annotated[list[Path], typer.Argument(metavar="FICHIERS",
                                                help="Fichiers CSV, ou dossiers qui en contiennent.")],
    db: DbOption = None,
) -> None:
    """Importe les données de référence depuis des fichiers CSV (format décrit dans le README).

    Exemple : [bold]itn7 refdata import donnees/[/] · [bold]itn7 refdata import communes.csv epci.csv[/]
    """
    from . import refdata, store

    counts = refdata.import_csv(store.open_db(settings(db).db_path), paths)
    for table, rows in counts.items():
        err.print(f"{table} : {rows} ligne(s) importée(s).")


@refdata_app.command("update")
@friendly
def refdata_update(
    dgcl: Annotated[str | None, typer.Option(
        "--dgcl", metavar="ADRESSE_OU_FICHIER", show_default="[refdata] dgcl d'itn7.toml, sinon l'adresse de 2021",
        help="Table DGCL « epcicom2021 » (.xlsx ou .xls) : adresse à télécharger ou fichier déjà téléchargé.")] = None,
    zrr: Annotated[str | None, typer.Option(
        "--zrr", metavar="ADRESSE_OU_FICHIER", show_default="[refdata] zrr d'itn7.toml, sinon data.gouv.fr",
        help="Table ANCT « diffusion-zonages-zrr-cog2021.xls » : adresse à télécharger ou fichier déjà "
        "téléchargé.")] = None,
    db: DbOption = None,
) -> None:
    """Remplace les données de référence par les données ouvertes officielles (DGCL, ANCT).

    Chaque source est une adresse (téléchargée) ou un fichier local (lu tel quel). Les deux tables sont
    reconnues et vérifiées avant usage ; au moindre problème, rien n'est remplacé.

    Exemples : [bold]itn7 refdata update[/] ·
    [bold]itn7 refdata update --dgcl epcicom2021.xlsx --zrr diffusion-zonages-zrr-cog2021.xls[/]
    """
    from . import refdata, store

    cfg = settings(db)
    sources = {"dgcl": refdata.DGCL_URL, "zrr": refdata.ZRR_URL, **cfg.refdata_sources}
    counts = refdata.update(store.open_db(cfg.db_path), dgcl=dgcl or sources["dgcl"], zrr=zrr or sources["zrr"])
    for table, rows in counts.items():
        err.print(f"{table} : {rows} ligne(s) importée(s).")


def render_champs(view: Any) -> None:
    """One démarche's roles: champ id, label per revision, where missing or retyped; the itn7.toml lines."""
    from rich.markup import escape

    from . import labels

    days = ", ".join(r.day or r.id for r in view.revisions)
    table = Table(title=f"{labels.demarche(view.key)} (n° {view.number}) — révisions : {days}", show_lines=True)
    for name in ("Rôle", "Identifiant du champ", "Libellé (révision)", "Absent des révisions", "Remarque"):
        table.add_column(name, overflow="fold")
    for role in view.roles:
        names = "\n".join(f"{escape(label)} [dim]({when})[/]" for when, label in role.labels)
        note = escape(role.problem or "") or (
            f"[red]type modifié dans : {', '.join(role.retyped)}[/]" if role.retyped else "")
        table.add_row(role.role, role.descriptor_id or "[red]—[/]", names or f"[dim]cherché : {escape(role.label)}[/]",
                      ", ".join(role.missing) or "", note)
    out.print(table)
    out.print("Pour fixer chaque rôle à son champ (résiste à tout renommage), à coller dans itn7.toml :")
    out.print(f"[mapping.{view.key}]", markup=False, highlight=False)
    for role in view.roles:
        if role.toml_line:
            out.print(role.toml_line, markup=False, highlight=False)
    if view.unnamed:
        out.print("Champs d'un type que la requête ne nomme pas (valeur gardée en texte seulement) :")
        for descriptor_id, label, type_ in view.unnamed:
            out.print(f"  [yellow]{escape(type_)}[/] « {escape(label)} » {descriptor_id}")
    out.print()


@app.command("champs")
@friendly
def champs_command(db: DbOption = None) -> None:
    """Montre, pour chaque démarche, le champ que les contrôles lisent pour chaque rôle, et son libellé dans
    chaque révision du formulaire.

    Un rôle est trouvé par son libellé (celui par défaut ou celui d'itn7.toml) dans une révision, puis
    suivi par l'identifiant du champ dans toutes les révisions, même renommé. Sont signalés : les
    révisions où le champ manque ou a changé de type (contrôles illisibles pour leurs dossiers), les
    libellés ambigus ou introuvables, et les champs d'un type que la requête ne nomme pas. Les lignes
    affichées sous [bold]\\[mapping.general][/] se collent dans itn7.toml pour fixer chaque rôle à son
    identifiant.

    Exemple : [bold]itn7 champs[/]
    """
    from . import check as check_mod
    from . import store

    cfg = settings(db)
    for view in check_mod.describe_roles(store.open_db(cfg.db_path, must_exist=True), cfg):
        render_champs(view)


# ---------------------------------------------------------------- demo


@app.command()
@friendly
def demo(
    folder: Annotated[Path, typer.Option("--dossier", help="Dossier où écrire la base et les classeurs.")] = Path(
        "itn7-demo"),
    quiet: QuietOption = False,
) -> None:
    """Montre tout le travail sans jeton ni réseau, sur des données de démonstration.

    Un faux serveur Démarche Numérique démarre sur cette machine (127.0.0.1) avec quelques
    centaines de dossiers réalistes ; la vraie synchronisation tourne contre lui, puis les
    contrôles et les classeurs des trois sessions. Rien ne sort de la machine.

    Exemple : [bold]itn7 demo[/]
    """
    import secrets

    from . import check as check_mod
    from . import export as export_mod
    from . import refdata, store
    from .fakeds import Dataset, FakeDS, TokenSpec
    from .fakeds.demo import write_refdata_csv

    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "itn7-demo.db"
    for old in folder.glob("itn7-demo.db*"):
        old.unlink()
    dataset = Dataset.generate(seed=2021, counts={"general": 300, "labo": 60})
    token = secrets.token_urlsafe(32)
    with FakeDS(dataset, tokens={token: TokenSpec(write=True)}) as server:
        if not quiet:
            err.print(f"Faux serveur Démarche Numérique démarré sur {server.url}")
        cfg = config_mod.Settings(token=config_mod.Secret(token), api_url=server.url,
                                  demarches=dict(dataset.numbers), db_path=db_path, files_dir=folder / "fichiers")
        run_sync(cfg, dict(dataset.numbers), full=False, quiet=quiet)
    database = store.open_db(db_path)
    refdata.import_csv(database, write_refdata_csv(folder / "donnees-de-reference"))
    summary = check_mod.run(database, cfg)
    if not quiet:
        render_check_summary(summary)
    # Links in the workbooks point at the real service, not at the fake server that is now stopped.
    workbook_settings = config_mod.Settings(db_path=db_path)
    for session in range(1, len(cfg.sessions) + 1):
        result = export_mod.export_session(database, workbook_settings, session,
                                           folder / export_mod.default_path(session).name)
        out.print(f"Classeur du comité, session {session} : [bold]{result.path}[/]")
    show_decisions_loop(database, workbook_settings, folder, quiet=quiet)
    out.print(f"\n[bold green]Démonstration prête[/] : base [bold]{db_path}[/].")
    out.print("À essayer ensuite (le faux serveur est arrêté : [bold]itn7 sync[/] demande un vrai jeton) :")
    for line in (f"ITN7_DB={db_path} itn7 check --session 2 --status ineligible",
                 f"ITN7_DB={db_path} itn7 export --session 1 --demarche labo",
                 f"ITN7_DB={db_path} itn7 check --format json > controles.json",
                 f"ITN7_DB={db_path} itn7 champs",
                 f"ITN7_DB={db_path} itn7 decisions",
                 f"ITN7_DB={db_path} itn7 decisions apply --session 1",
                 f"sqlite3 {db_path} 'SELECT * FROM v_dossiers LIMIT 5'"):
        out.print(f"  [cyan]{line}[/]")


def show_decisions_loop(database: Any, cfg: config_mod.Settings, folder: Path, *, quiet: bool) -> None:
    """The end of the demo: a committee fills session 1's workbook, itn7 imports it and shows, as a dry
    run, what `itn7 decisions apply --apply` would send to Démarche Numérique."""
    import shutil
    from collections import Counter

    from . import export as export_mod
    from .decisions import apply as apply_mod
    from .decisions.workbook import import_workbook
    from .fakeds.committee import fill_decisions

    decided = folder / "exemple-decisions-comite-session-1.xlsx"
    shutil.copy(folder / export_mod.default_path(1).name, decided)
    fill_decisions(decided)
    result = import_workbook(database, cfg, decided, partial=True)
    out.print(f"\nDécisions du comité (exemple) : [bold]{decided}[/] — {result.recorded} enregistrée(s), "
              f"{len(result.problems)} refusée(s) par les contrôles de l'import.")
    planned = apply_mod.plan(database, 1, cfg)
    to_do = [p for p in planned if p.status == apply_mod.TO_DO]
    if not quiet and to_do:
        render_decisions_plan(to_do[:15], title="Session 1 : ce que « itn7 decisions apply --apply » enverrait "
                                                "(simulation, 15 premiers dossiers)")
    counts = Counter(p.status for p in planned)
    out.print(f"Simulation : {counts[apply_mod.TO_DO]} dossier(s) à traiter dans Démarche Numérique, "
              f"{counts[apply_mod.NOTHING]} ajourné(s), {counts[apply_mod.BLOCKED]} déjà décidé(s) autrement dans "
              "Démarche Numérique (signalés, jamais modifiés) ; rien n'a été envoyé.")


def render_check_summary(summary: Any) -> None:
    """Counts per status and per session of a check run, on stderr."""
    from .labels import STATUSES

    err.print(f"Contrôle : {summary.checked} dossier(s) contrôlé(s) sur {summary.total}.")
    err.print("Par statut : " + " · ".join(f"{STATUSES[s]} {summary.by_status.get(s, 0)}" for s in STATUS_STYLES))
    sessions = sorted(summary.by_session.items(), key=lambda i: (i[0] is None, i[0] or 0))
    err.print("Par session : " + " · ".join(f"{'hors session' if k is None else f'session {k}'} {v}"
                                            for k, v in sessions))


# ---------------------------------------------------------------- export


@app.command("export")
@friendly
def export_command(
    session: Annotated[int, typer.Option("--session", "-s", help="Session du comité (1, 2, 3 ; 0 : toutes).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Classeur à écrire.", show_default="itn7-comite-session-N-AAAA-MM-JJ.xlsx")] = None,
    demarche: DemarcheOption = None,
    files: Annotated[bool, typer.Option("--files", help="Rassembler aussi les pièces jointes de la session à côté "
                                        "du classeur (colonne « Pièces »), depuis « itn7 sync --files ».")] = False,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Écrit le classeur Excel du comité d'une session, depuis la base locale (sans réseau).

    Feuilles : Synthèse, Dossiers, une feuille par département, Dépenses, Contrôles. Des contrôles
    absents ou antérieurs à la dernière synchronisation sont d'abord relancés.

    Exemples : [bold]itn7 export --session 2[/] · [bold]itn7 export -s 3 -o comite-s3.xlsx --demarche labo[/] ·
    [bold]itn7 export -s 2 --files[/]
    """
    from . import export as export_mod
    from . import store

    cfg = settings(db)
    key = check_demarche_key(demarche)
    export_mod.session_closing(cfg, session)
    database = store.open_db(cfg.db_path, must_exist=True)
    rechecked = export_mod.refresh_checks(database, cfg)
    if rechecked and not quiet:
        err.print(rechecked)
    path = output or export_mod.default_path(session, key)
    pieces = export_mod.gather_pieces(database, cfg, session, path, key) if files else None
    result = export_mod.export_session(database, cfg, session, path, demarche=key, pieces=pieces)
    if pieces is not None and not quiet:
        err.print(f"Pièces jointes de {len(pieces)} dossier(s) rassemblées dans {export_mod.pieces_folder(path)}.")
    if not quiet:
        counts = " · ".join(f"{label} {result.by_status.get(status, 0)}" for status, label in
                            (("eligible", "éligibles"), ("a_verifier", "à vérifier"), ("ineligible", "inéligibles")))
        which = "de toutes les sessions" if session == export_mod.ALL_SESSIONS else f"de la session {session}"
        err.print(f"Classeur {which} : {result.dossiers} dossier(s) ({counts}).")
    typer.echo(str(result.path))


# ---------------------------------------------------------------- annotate, instructeurs

ApplyOption = Annotated[bool, typer.Option(
    "--apply", help="Écrire vraiment dans Démarche Numérique ; sans cette option, rien n'est écrit.")]


def render_annotate_plan(planned: list[Any]) -> None:
    """Per dossier: the verdict that would be written, the annotation now, and whether it changes."""
    from rich.markup import escape

    table = Table(title="Annotation « Contrôle d'éligibilité automatique » : simulation, rien n'est écrit")
    for name in ("Démarche", "N°", "À écrire", "Annotation actuelle", "Change"):
        table.add_column(name, overflow="fold")
    for p in planned:
        change = (f"[red]impossible[/] : {escape(p.problem)}" if p.problem else
                  "[yellow]oui[/]" if p.changed else "[dim]non[/]")
        table.add_row(p.demarche, str(p.number), escape(p.verdict), escape(p.current or "") or "[dim]vide[/]",
                      change)
    out.print(table)


def warn_instructeur_rights(database: Any, cfg: config_mod.Settings, outside: Callable[[str], int]) -> None:
    """On stderr, what would make DS refuse an --apply of annotate or decisions: no instructeur configured, or
    `outside(instructeur id)` dossiers to write in a groupe the instructeur is not in (as of the last sync)."""
    from .annotate import resolve_instructeur

    if not cfg.instructeur_id:
        err.print("[yellow]ITN7_INSTRUCTEUR_ID n'est pas renseigné[/] : il faut pour --apply "
                  "(voir [bold]itn7 instructeurs[/]).")
        return
    try:
        count = outside(resolve_instructeur(database, cfg.instructeur_id))
    except config_mod.ConfigError as exc:
        err.print(f"[yellow]Attention :[/] {exc}", soft_wrap=True)
        return
    if count:
        err.print(f"[yellow]Attention :[/] {count} dossier(s) à écrire sont dans un groupe dont l'instructeur "
                  "configuré n'est pas membre (dernière synchronisation) : Démarche Numérique les refusera.")


def report_annotate_plan(database: Any, cfg: config_mod.Settings, planned: list[Any]) -> None:
    """The counts of a dry run, and what would stop --apply, on stderr."""
    from . import annotate as annotate_mod

    changes = sum(1 for p in planned if p.changed and not p.problem)
    problems = sum(1 for p in planned if p.problem)
    err.print(f"Simulation : {changes} annotation(s) à écrire, {len(planned) - changes - problems} déjà à jour, "
              f"{problems} impossible(s). Rien n'a été écrit : ajoutez [bold]--apply[/] pour écrire.")
    warn_instructeur_rights(database, cfg, lambda instructeur: annotate_mod.groupes_without(
        database, instructeur, planned))


@app.command("annotate")
@friendly
def annotate_command(
    session: SessionFilterOption = None,
    demarche: DemarcheOption = None,
    apply_: ApplyOption = False,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Reporte le verdict du contrôle dans l'annotation privée « Contrôle d'éligibilité automatique ».

    Sans [bold]--apply[/], rien n'est écrit : la commande montre, par dossier, le texte qui serait écrit
    (statut, date du contrôle, motifs) et s'il change l'annotation. Avec [bold]--apply[/], seules les
    annotations différentes sont écrites (la date seule ne compte pas), au nom de l'instructeur
    ITN7_INSTRUCTEUR_ID (voir [bold]itn7 instructeurs[/]). L'état des dossiers ne change jamais et aucun
    message n'est envoyé aux demandeurs.

    Exemples : [bold]itn7 annotate[/] · [bold]itn7 annotate --session 2[/] · [bold]itn7 annotate --apply[/]
    """
    from collections import Counter

    from rich.markup import escape

    from . import annotate as annotate_mod
    from . import check as check_mod
    from . import store

    cfg = settings(db)
    database = store.open_db(cfg.db_path, must_exist=True)
    rechecked = check_mod.run(database, cfg).checked  # verdicts of the last sync, not of an older one
    if rechecked and not quiet:
        err.print(f"{rechecked} dossier(s) contrôlé(s) avant l'annotation.")
    planned = annotate_mod.plan(database, cfg, session=session, demarche=check_demarche_key(demarche))
    if not apply_:
        render_annotate_plan(planned)
        if not quiet:
            report_annotate_plan(database, cfg, planned)
        return
    counts: Counter[str] = Counter()
    for outcome in annotate_mod.apply_settings(database, cfg, planned):
        counts[outcome.result] += 1
        if outcome.result == "ecrit":
            out.print(f"n° {outcome.planned.number} : écrit « {escape(outcome.message)} »")
        else:
            err.print(f"[red]n° {outcome.planned.number} : {escape(outcome.message)}[/]", soft_wrap=True)
    if not quiet:
        unchanged = sum(1 for p in planned if not p.changed and not p.problem)
        err.print(f"{counts['ecrit']} annotation(s) écrite(s), {unchanged} déjà à jour, "
                  f"{counts['erreur']} en erreur.")
    if counts["erreur"]:
        raise typer.Exit(1)


@app.command("instructeurs")
@friendly
def instructeurs_command(db: DbOption = None) -> None:
    """Liste les instructeurs de chaque groupe (identifiant, courriel), d'après la dernière synchronisation.

    Pour [bold]itn7 annotate --apply[/], choisissez un instructeur membre des groupes des dossiers à
    annoter et mettez son identifiant (ou son courriel) dans ITN7_INSTRUCTEUR_ID.

    Exemple : [bold]itn7 instructeurs[/]
    """
    from . import annotate as annotate_mod
    from . import check as check_mod
    from . import store

    cfg = settings(db)
    database = store.open_db(cfg.db_path, must_exist=True)
    check_mod.ensure_synced(database)
    table = Table(title="Instructeurs par groupe")
    for name in ("Démarche", "Groupe", "Identifiant", "Courriel"):
        table.add_column(name, overflow="fold")
    for row in annotate_mod.instructeurs(database):
        mark = " [green](ITN7_INSTRUCTEUR_ID)[/]" if row["id"] and row["id"] == cfg.instructeur_id else ""
        table.add_row(row["demarche"], f"{row['groupe_number']} · {row['groupe']}", (row["id"] or "—") + mark,
                      row["email"] or "[dim]aucun instructeur[/]")
    out.print(table)


# ---------------------------------------------------------------- données personnelles

donnees_app = typer.Typer(help="Données personnelles : effacement local des dossiers supprimés dans Démarche "
                          "Numérique, hors durée de conservation ou sur demande.", no_args_is_help=True)
app.add_typer(donnees_app, name="donnees")


def store_open(cfg: config_mod.Settings, *, must_exist: bool = False) -> Any:
    """The database of these settings."""
    from . import store

    return store.open_db(cfg.db_path, must_exist=must_exist)


def render_purge_line(report: Any) -> None:
    """The purge's line in the sync summary."""
    if report is None:
        err.print("[bold]Données personnelles[/] : effacement reporté, une autre commande utilise la base.")
        return
    following = min((s.due for s in report.later), default=None)
    later = f" ; prochain effacement le {following:%d/%m/%Y}" if following else ""
    err.print(f"[bold]Données personnelles[/] : {len(report.erased)} dossier(s) effacé(s) localement, "
              f"{report.files} pièce(s) jointe(s) supprimée(s){later} (détail : [bold]itn7 donnees purge[/]).")


def render_purge_plan(report: Any, moment: Any) -> None:
    """The dossiers the purge erases now, then the next ones, with their reason and date."""
    from datetime import timedelta

    from . import donnees, labels

    horizon = moment + timedelta(days=90)
    shown = report.erased + [s for s in report.later if s.due <= horizon]
    verb = "effacé(s)" if report.applied else "à effacer maintenant"
    table = Table(title="Effacement des données personnelles" + ("" if report.applied else " : simulation"))
    for name in ("Démarche", "N°", "Motif", "Depuis le", "Effacement"):
        table.add_column(name, overflow="fold")
    for s in shown:
        when = ("effacé" if report.applied else "maintenant") if s in report.erased else f"le {s.due:%d/%m/%Y}"
        table.add_row(labels.demarche(s.demarche_key, short=True), str(s.number), donnees.REASONS[s.reason],
                      f"{s.since:%d/%m/%Y}", when)
    if shown:
        out.print(table)
    following = min((s.due for s in report.later), default=None)
    err.print(f"{len(report.erased)} dossier(s) {verb}, {len(report.later)} plus tard"
              + (f" (le prochain le {following:%d/%m/%Y})" if following else "")
              + (f", {report.files} pièce(s) jointe(s) supprimée(s)." if report.applied else
                 ". Rien n'a été effacé : ajoutez [bold]--apply[/] pour effacer."))


@donnees_app.command("purge")
@friendly
def donnees_purge(apply_: Annotated[bool, typer.Option("--apply", help="Effacer vraiment ; sans cette option, "
                                                       "la commande montre seulement ce qui serait effacé.")] = False,
                  db: DbOption = None) -> None:
    """Efface localement les données des dossiers supprimés dans Démarche Numérique ou hors conservation.

    Sont effacés les dossiers supprimés ou disparus depuis plus de [bold]delai_effacement_jours[/]
    (section [bold]\\[donnees][/] d'itn7.toml, 30 par défaut) et ceux dont la durée de conservation est échue.
    Un dossier effacé garde seulement son numéro, sa démarche, son état et la date et le motif de sa
    suppression ; ses champs, annotations, contrôles et pièces jointes téléchargées disparaissent.
    Les dossiers masqués, encore restaurables, sont gardés. La purge tourne aussi à la fin de [bold]itn7 sync[/].

    Exemples : [bold]itn7 donnees purge[/] · [bold]itn7 donnees purge --apply[/]
    """
    from datetime import UTC, datetime

    from . import donnees

    cfg = settings(db)
    moment = datetime.now(UTC)
    database = store_open(cfg, must_exist=True)
    if apply_:
        with donnees.sync_locks(cfg):
            report = donnees.run(database, cfg, apply=True, moment=moment)
    else:
        report = donnees.run(database, cfg, moment=moment)
    render_purge_plan(report, moment)


@donnees_app.command("efface")
@friendly
def donnees_efface(
    dossier: Annotated[int, typer.Option("--dossier", help="Numéro du dossier à effacer.")],
    oui: Annotated[bool, typer.Option("--oui", help="Ne pas demander de confirmation (scripts).")] = False,
    db: DbOption = None,
) -> None:
    """Efface tout de suite les données personnelles d'un dossier (droit à l'effacement), quel que soit son état.

    Le dossier garde seulement son numéro, sa démarche, son état et la date de l'effacement ; s'il revient
    dans une synchronisation, il est effacé de nouveau. Cela n'efface rien dans Démarche Numérique.

    Exemples : [bold]itn7 donnees efface --dossier 4711[/] · [bold]itn7 donnees efface --dossier 4711 --oui[/]
    """
    from . import donnees, labels

    cfg = settings(db)
    database = store_open(cfg, must_exist=True)
    found = donnees.describe(database, dossier)
    if found is None:
        raise StoreError(f"Dossier n° {dossier} absent de la base locale : rien à effacer.")
    if not oui:
        err.print(f"Dossier n° {dossier} ({labels.demarche(found['demarche_key'])}, "
                  f"{labels.STATES.get(found['state'] or '', found['state'] or 'état inconnu')}) : ses champs, "
                  "annotations, contrôles et pièces jointes téléchargées seront effacés de cette machine.")
        typed = typer.prompt("Tapez le numéro du dossier pour confirmer", default="", show_default=False,
                             err=True)
        if typed.strip() != str(dossier):
            err.print("Numéro différent : rien n'a été effacé.")
            raise typer.Exit(1)
    with donnees.sync_locks(cfg):
        files = donnees.erase_on_request(database, cfg, dossier)
    err.print(f"Dossier n° {dossier} effacé localement ({files} pièce(s) jointe(s) supprimée(s)).")


# ---------------------------------------------------------------- decisions

decisions_app = typer.Typer(
    help="Les décisions du comité, du classeur vers Démarche Numérique : [bold]itn7 decisions[/] montre "
         "l'enveloppe, [bold]import[/] lit le classeur, [bold]apply[/] envoie les décisions.",
    no_args_is_help=False, invoke_without_command=True)
app.add_typer(decisions_app, name="decisions")


def _euros(amount: float) -> str:
    return f"{amount:,.0f} €".replace(",", "\u202f")


@decisions_app.callback()
@friendly
def decisions_summary(ctx: typer.Context, db: DbOption = None) -> None:
    """Montre, par session et en cumul, les montants sollicités, proposés et attribués face à l'enveloppe.

    Exemples : [bold]itn7 decisions[/] · [bold]itn7 decisions import classeur.xlsx[/] ·
    [bold]itn7 decisions apply[/]
    """
    if ctx.invoked_subcommand is not None:
        return
    from . import store
    from .export.data import session_totals

    cfg = settings(db)
    database = store.open_db(cfg.db_path, must_exist=True)
    store.ensure_synced(database)
    totals = session_totals(database, cfg, len(cfg.sessions) + 1)
    table = Table(title=f"Enveloppe régionale : {_euros(cfg.enveloppe)}")
    for name in ("Session", "Dossiers", "Décidés", "Sollicité", "Proposé", "Attribué", "Reste de l'enveloppe"):
        table.add_column(name, justify="left" if name == "Session" else "right")
    attributed = requested = proposed = 0.0
    for number, t in sorted(totals.items()):
        attributed += t.attributed
        requested += t.requested
        proposed += t.proposed
        table.add_row(f"Session {number}", str(t.dossiers), str(t.decided), _euros(t.requested), _euros(t.proposed),
                      _euros(t.attributed), _euros(cfg.enveloppe - attributed))
    table.add_row("[bold]Cumul[/]", str(sum(t.dossiers for t in totals.values())),
                  str(sum(t.decided for t in totals.values())), _euros(requested), _euros(proposed),
                  f"[bold]{_euros(attributed)}[/]", f"[bold]{_euros(cfg.enveloppe - attributed)}[/]")
    out.print(table)


@decisions_app.command("import")
@friendly
def decisions_import(
    workbook: Annotated[Path, typer.Argument(metavar="CLASSEUR",
                                             help="Classeur du comité (.xlsx produit par itn7 export), rempli.")],
    partial: Annotated[bool, typer.Option("--partiel", help="Enregistrer les lignes sans erreur même si "
                                          "d'autres en ont.")] = False,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Lit les colonnes « Décision du comité », « Montant attribué » et « Motivation » du classeur.

    Tout est vérifié (dossier connu et de la session, montant, plafond, motivation, dossier non
    modifié depuis l'export, enveloppe) ; chaque erreur nomme la feuille, la ligne et le dossier.
    Un classeur avec des erreurs n'enregistre rien, sauf avec [bold]--partiel[/]. Réimporter le même
    classeur ne change rien. Rien n'est envoyé à Démarche Numérique : voir [bold]itn7 decisions apply[/].

    Exemples : [bold]itn7 decisions import itn7-comite-session-2-2026-11-28.xlsx[/] ·
    [bold]itn7 decisions import classeur.xlsx --partiel[/]
    """
    from rich.markup import escape

    from . import store
    from .decisions.workbook import import_workbook

    cfg = settings(db)
    database = store.open_db(cfg.db_path, must_exist=True)
    store.ensure_synced(database)
    result = import_workbook(database, cfg, workbook, partial=partial)
    shown = 50
    for problem in result.problems[:shown]:
        err.print(f"[red]{escape(str(problem))}[/]", soft_wrap=True)
    if len(result.problems) > shown:
        err.print(f"[red]… et {len(result.problems) - shown} autre(s) erreur(s).[/]")
    if not quiet:
        for note in result.notes:
            err.print(f"[yellow]{escape(str(note))}[/]", soft_wrap=True)
    if result.problems and not result.recorded and not result.unchanged:
        err.print(f"{len(result.problems)} erreur(s) : rien n'est enregistré. Corrigez le classeur"
                  + ("" if partial else " (ou relancez avec --partiel pour garder les lignes sans erreur)") + ".")
        raise typer.Exit(1)
    if not quiet:
        err.print(f"Session {result.session} : {result.recorded} décision(s) enregistrée(s), {result.unchanged} "
                  f"inchangée(s), {result.empty} dossier(s) sans décision, {len(result.problems)} erreur(s). "
                  f"Attribué : {_euros(result.attributed)} (autres sessions {_euros(result.earlier)}, "
                  f"enveloppe {_euros(result.enveloppe)}).")
    if result.problems:
        raise typer.Exit(1)


PLAIN_ROWS = 200


def render_decisions_plan(planned: list[Any], *, title: str) -> None:
    """Per decision: the dossier, the decision, and what would be sent to DS (or why nothing)."""
    from rich.markup import escape

    from . import labels

    if len(planned) > PLAIN_ROWS:  # a table of thousands of rows takes rich seconds: one plain line each
        lines = [title, "Démarche\tN°\tDécision\tMontant\tÉtat DS\tÀ faire dans Démarche Numérique"]
        lines += ["\t".join((labels.demarche(p.demarche, short=True), str(p.number), p.label,
                             _euros(p.amount) if p.amount else "", labels.STATES.get(p.state, p.state), p.describe()))
                  for p in planned]
        out.file.write("\n".join(lines) + "\n")  # plain text: rich would spend seconds laying it out
        return
    table = Table(title=title)
    for name in ("Démarche", "N°", "Décision", "Montant", "État DS", "À faire dans Démarche Numérique"):
        table.add_column(name, overflow="fold")
    styles = {"a_faire": "yellow", "deja_fait": "dim", "rien": "dim", "impossible": "red"}
    for p in planned:
        table.add_row(labels.demarche(p.demarche, short=True), str(p.number), p.label,
                      _euros(p.amount) if p.amount else "", labels.STATES.get(p.state, p.state),
                      f"[{styles[p.status]}]{escape(p.describe())}[/]")
    out.print(table)


def warn_decisions_rights(database: Any, cfg: config_mod.Settings, planned: list[Any]) -> None:
    """What would stop --apply before any request: no instructeur, or one outside the dossiers' groupes."""
    from .decisions import apply as apply_mod

    warn_instructeur_rights(database, cfg, lambda instructeur: apply_mod.outside_groupes(
        database, instructeur, planned))


@decisions_app.command("apply")
@friendly
def decisions_apply(
    session: SessionFilterOption = None,
    apply_: ApplyOption = False,
    yes: Annotated[bool, typer.Option("--oui", help="Ne pas demander de confirmation (scripts).")] = False,
    silent: Annotated[bool, typer.Option("--sans-notification", help="Démarche Numérique n'envoie pas de "
                                         "courriel aux demandeurs (disableNotification).")] = False,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Envoie les décisions enregistrées à Démarche Numérique ; sans [bold]--apply[/], montre seulement quoi.

    Retenu : passer en instruction si besoin, puis accepter avec la motivation. Refusé : refuser.
    Classé sans suite : classer sans suite. Ajourné : rien. Chaque dossier est relu juste avant :
    un dossier modifié depuis l'export ou déjà décidé est signalé et laissé tel quel. Chaque
    mutation envoyée est journalisée avec la réponse de Démarche Numérique ; relancer n'envoie rien
    de plus. Par défaut, Démarche Numérique envoie un courriel à chaque demandeur.

    Exemples : [bold]itn7 decisions apply[/] · [bold]itn7 decisions apply --session 2 --apply[/] ·
    [bold]itn7 decisions apply --apply --sans-notification --oui[/]
    """
    from collections import Counter

    from rich.markup import escape

    from . import store
    from .decisions import apply as apply_mod

    cfg = settings(db)
    database = store.open_db(cfg.db_path, must_exist=True)
    store.ensure_synced(database)
    planned = apply_mod.plan(database, session, cfg)
    to_do = apply_mod.notified(planned)
    if not apply_:
        render_decisions_plan(planned, title="Décisions du comité : simulation, rien n'est envoyé")
        if not quiet:
            told = "aucun courriel (--sans-notification)" if silent else f"{to_do} demandeur(s) recevront un courriel"
            err.print(f"Simulation : {to_do} dossier(s) à traiter dans Démarche Numérique ({told}). "
                      "Rien n'a été envoyé : ajoutez [bold]--apply[/] pour envoyer.")
            warn_decisions_rights(database, cfg, planned)
        return
    if to_do and not yes:
        notice = ("sans courriel aux demandeurs" if silent else
                  f"[bold]{to_do} demandeur(s) recevront un courriel[/] de Démarche Numérique")
        err.print(f"{to_do} dossier(s) vont changer d'état dans Démarche Numérique, {notice}.")
        typed = typer.prompt(f"Tapez {to_do} pour confirmer", default="", show_default=False, err=True)
        if typed.strip() != str(to_do):
            err.print("Confirmation non reçue : rien n'a été envoyé.")
            raise typer.Exit(1)
    counts: Counter[str] = Counter()
    for outcome in apply_mod.apply_settings(database, cfg, planned, silent=silent):
        counts[outcome.result] += 1
        line = f"n° {outcome.planned.number} ({outcome.planned.label}) : {escape(outcome.message)}"
        if outcome.result == "erreur":
            err.print(f"[red]{line}[/]", soft_wrap=True)
        else:
            out.print(line)
    if not quiet:
        err.print(f"{counts['envoye']} dossier(s) traité(s) dans Démarche Numérique, "
                  f"{counts['deja_fait'] + sum(1 for p in planned if p.status == 'deja_fait')} déjà à jour, "
                  f"{counts['erreur']} en erreur.")
    if counts["erreur"]:
        raise typer.Exit(1)

class _NoticeHandler(logging.Handler):
    """The library's notices (a database's modes tightened…) as one French line on the stderr console."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]Attention :[/] {escape(record.getMessage())}", soft_wrap=True)


def main() -> None:
    notices = logging.getLogger("itn7cli")
    notices.addHandler(_NoticeHandler(logging.WARNING))
    notices.propagate = False
    app()
