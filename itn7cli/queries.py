"""Loads the GraphQL documents of `queries/`, each with only the fragments it uses."""

from functools import cache
from pathlib import Path

from graphql import DocumentNode, parse, print_ast
from graphql.utilities import separate_operations


def queries_dir() -> Path:
    """The folder holding the .graphql files: inside the wheel, or at the repository root."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "queries", here.parent / "queries"):
        if (candidate / "fragments.graphql").is_file():
            return candidate
    raise FileNotFoundError("queries/fragments.graphql introuvable : installation incomplète")


@cache
def document(operation: str) -> DocumentNode:
    """The parsed document of `queries/<file>.graphql` holding `operation`, with its fragments."""
    folder = queries_dir()
    fragments = (folder / "fragments.graphql").read_text(encoding="utf-8")
    for path in sorted(folder.glob("*.graphql")):
        if path.name == "fragments.graphql":
            continue
        full = parse(path.read_text(encoding="utf-8") + "\n" + fragments)
        operations = separate_operations(full)
        if operation in operations:
            return operations[operation]
    raise KeyError(operation)


@cache
def text(operation: str) -> str:
    """The document of `operation` as the text sent over the wire."""
    return print_ast(document(operation))


def operation_files() -> list[Path]:
    """Every operation document (all but the fragments file)."""
    return [p for p in sorted(queries_dir().glob("*.graphql")) if p.name != "fragments.graphql"]
