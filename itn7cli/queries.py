"""Loads the GraphQL documents of `queries/`, each with only the fragments it uses."""

import threading
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


_loading = threading.Lock()


@cache
def _documents() -> dict[str, DocumentNode]:
    """Every operation of `queries/`, each with the fragments it uses: the fragments are parsed once,
    each file once."""
    fragments = parse((queries_dir() / "fragments.graphql").read_text(encoding="utf-8")).definitions
    out: dict[str, DocumentNode] = {}
    for path in operation_files():
        whole = DocumentNode(definitions=(*parse(path.read_text(encoding="utf-8")).definitions, *fragments))
        out.update(separate_operations(whole))
    return out


def document(operation: str) -> DocumentNode:
    """The parsed document holding `operation`, with its fragments."""
    with _loading:  # the sync's threads ask at once: one of them parses, the others wait for it
        return _documents()[operation]


_texts: dict[str, str] = {}


def text(operation: str) -> str:
    """The document of `operation` as the text sent over the wire, printed once per process."""
    with _loading:
        if operation not in _texts:
            _texts[operation] = print_ast(_documents()[operation])
        return _texts[operation]


def operation_files() -> list[Path]:
    """Every operation document (all but the fragments file)."""
    return [p for p in sorted(queries_dir().glob("*.graphql")) if p.name != "fragments.graphql"]
