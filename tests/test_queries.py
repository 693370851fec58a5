"""Every document of queries/ is valid against the real DS schema, and ships with the package."""

from __future__ import annotations

import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from gql import Client, gql
from graphql import build_schema, parse, validate

from itn7cli import queries


def operation_names() -> list[str]:
    names = []
    for path in queries.operation_files():
        for definition in parse(path.read_text(encoding="utf-8")).definitions:
            names.append(definition.name.value)  # type: ignore[attr-defined]
    return names


def test_each_query_file_holds_one_named_operation() -> None:
    files = queries.operation_files()
    assert len(operation_names()) == len(files) >= 5


@pytest.mark.parametrize("operation", operation_names())
def test_query_document_is_valid_against_the_real_ds_schema(operation: str, real_schema_text: str) -> None:
    schema = build_schema(real_schema_text)
    document = queries.document(operation)
    assert validate(schema, document) == []
    # gql's own validation, as a client configured with the schema would run it.
    Client(schema=schema).validate(gql(queries.text(operation)))


def test_threads_asking_at_once_parse_each_file_once_and_print_each_document_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    printed: list[int] = []
    real_parse, real_print = queries.parse, queries.print_ast

    def counted(text: str) -> object:
        calls.append(1)
        return real_parse(text)

    def counted_print(document: object) -> str:
        printed.append(1)
        return real_print(document)  # type: ignore[arg-type]

    monkeypatch.setattr(queries, "parse", counted)
    monkeypatch.setattr(queries, "print_ast", counted_print)
    queries._documents.cache_clear()
    queries._texts.clear()
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        queries.document("getDossiers")
        queries.text("getDossiers")

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queries.document("getChanges")
    assert len(calls) == len(queries.operation_files()) + 1  # each file, and the fragments, once
    assert len(printed) == 1
    queries._documents.cache_clear()  # the next test parses with the real function


def test_the_dossier_document_names_every_champ_type_the_server_would_otherwise_downgrade() -> None:
    text = queries.text("getDossiers")
    for typename in ("DropDownListChamp", "YesNoChamp", "DatetimeChamp", "AddressChamp", "CommuneChamp",
                     "DepartementChamp", "RegionChamp", "PaysChamp", "HeaderSectionChamp", "ExplicationChamp",
                     "PersonneMoraleIncomplete"):
        assert f"on {typename}" in text, typename


def test_an_installed_wheel_finds_its_queries(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(root)], check=True)
    wheel = next(tmp_path.glob("itn7cli-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {f"itn7cli/queries/{p.name}" for p in (root / "queries").glob("*.graphql")}
    assert expected <= names
    # Imported from the unpacked wheel alone, the loader finds the documents inside the package.
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    code = "from itn7cli import queries; print(queries.queries_dir()); print(len(queries.text('getDossiers')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(unpacked)}, check=True)
    assert str(unpacked / "itn7cli" / "queries") in result.stdout
