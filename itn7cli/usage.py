"""Typer's own texts in French: its help screens' fixed strings, the help option, and the usage errors
(unknown command or option, missing or bad value). `install` puts them in place.

Typer writes the errors in English, with classes that click has too. Each is recognised by its class name
and attributes (`NoSuchOption.possibilities`, `BadParameter.param`…), or by its English wording for
the few plain `UsageError`s; an error not recognised is shown as Typer wrote it. The French text
goes into Typer's own error panel, so the usage line and « Aide : … » stay above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

from typer import rich_utils

# The help screens' fixed strings are module settings of Typer's, read when a screen is drawn.
STRINGS = {
    "DEFAULT_STRING": "[par défaut : {}]", "ENVVAR_STRING": "[variable : {}]", "REQUIRED_LONG_STRING": "[obligatoire]",
    "ARGUMENTS_PANEL_TITLE": "Arguments", "OPTIONS_PANEL_TITLE": "Options", "COMMANDS_PANEL_TITLE": "Commandes",
    "ERRORS_PANEL_TITLE": "Erreur", "ABORTED_TEXT": "Abandon.", "DEPRECATED_STRING": "(obsolète) ",
    "RICH_HELP": "Aide : [blue]'{command_path} {help_option}'[/].",
}
HELP_OPTION = "Affiche cette aide."
F = TypeVar("F", bound=Callable[..., Any])

# English wordings of Typer 0.29 (tested) and of click 8 (as its source reads): pattern → French.
_USAGE = (
    (re.compile(r"No such command '(.*?)'\.(?: Did you mean (.*)\?)?$", re.S),
     lambda m: f"Commande inconnue : {m[1]}." + (f" Vouliez-vous dire {_names(m[2])} ?" if m[2] else "")),
    (re.compile(r"Got unexpected extra arguments? ?(?:\(s\))? \((.*)\)$", re.S),
     lambda m: f"Argument en trop : {m[1]}."),
    (re.compile(r"Option '(.*?)' requires (?:an argument|\d+ arguments)\.$"),
     lambda m: f"L'option {m[1]} attend une valeur."),
    (re.compile(r"Option '(.*?)' does not take a value\.$"), lambda m: f"L'option {m[1]} ne prend pas de valeur."),
)
# Why a value was refused: Typer's (pydantic's) wordings, then click's.
_VALUE = (
    (re.compile(r"Input should be a valid integer"), lambda m: "un nombre entier est attendu"),
    (re.compile(r"Input should be a valid number"), lambda m: "un nombre est attendu"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), lambda m: f"au moins {m[1]}"),
    (re.compile(r"Input should be less than or equal to (\S+)"), lambda m: f"au plus {m[1]}"),
    (re.compile(r"'(.*)' is not a valid integer"), lambda m: f"« {m[1]} » n'est pas un nombre entier"),
    (re.compile(r"'(.*)' is not a valid float"), lambda m: f"« {m[1]} » n'est pas un nombre"),
    (re.compile(r"(\S+) is not in the range (.*)\.$"), lambda m: f"{m[1]} est hors de l'intervalle {m[2]}"),
)


def _names(text: str) -> str:
    return text.replace("'", "")


def _translated(table: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...], text: str) -> str | None:
    for pattern, french in table:
        if found := pattern.search(text):
            return french(found)
    return None


def _param_name(param: Any) -> str:
    if getattr(param, "param_type_name", None) == "argument":
        return str(getattr(param, "metavar", None) or param.name).upper()
    return " / ".join(getattr(param, "opts", None) or [str(param.name)])


def french(error: Any) -> str | None:
    """The French message of a usage error, None when it is not one this module knows."""
    kind = {cls.__name__ for cls in type(error).__mro__}
    message = str(getattr(error, "message", "") or "")
    param = getattr(error, "param", None)
    if "NoSuchOption" in kind:
        close = getattr(error, "possibilities", None)
        hint = f" Vouliez-vous dire {' ou '.join(close)} ?" if close else ""
        return f"Option inconnue : {error.option_name}.{hint}"
    if "MissingParameter" in kind and param is not None:
        what = "l'argument" if param.param_type_name == "argument" else "l'option"
        return f"Il manque {what} {_param_name(param)}."
    if "BadParameter" in kind and param is not None:
        why = _translated(_VALUE, message)
        return f"Valeur refusée pour {_param_name(param)} : {why}." if why else None
    return _translated(_USAGE, message)


def install() -> None:
    """Typer's screens and errors in French, from now on (once is enough; again changes nothing)."""
    for name, text in STRINGS.items():
        setattr(rich_utils, name, text)
    if not getattr(rich_utils.rich_format_error, "french", False):
        rich_utils.rich_format_error = _errors_in_french(rich_utils.rich_format_error)
        rich_utils.rich_format_help = _help_in_french(rich_utils.rich_format_help)


def _help_in_french(draw: F) -> F:
    """`rich_utils.rich_format_help`, the help option described in French (Typer makes it per command)."""

    def draw_in_french(*, obj: Any, ctx: Any, **options: Any) -> Any:
        help_option = obj.get_help_option(ctx)
        if help_option is not None:
            help_option.help = HELP_OPTION
        return draw(obj=obj, ctx=ctx, **options)

    return cast(F, draw_in_french)


def _errors_in_french(show: F) -> F:
    """`rich_utils.rich_format_error`, a known usage error shown in French."""

    def show_in_french(error: Any) -> None:
        message = french(error)
        if message is None:
            return show(error)
        plain = next((cls for cls in type(error).__mro__ if cls.__name__ == "UsageError"), None)
        return show(plain(message, getattr(error, "ctx", None)) if plain is not None else error)

    show_in_french.french = True  # type: ignore[attr-defined]
    return cast(F, show_in_french)
