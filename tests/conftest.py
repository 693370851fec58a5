"""Shared fixtures: a clean environment, the real schema when ../shared is there, the fake DS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from itn7cli.fakeds import Dataset, FakeDS, TokenSpec

from .syncutil import TOKEN

ROOT = Path(__file__).resolve().parents[1]
REAL_SCHEMA = ROOT.parent / "shared" / "ds" / "schema.graphql"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read a developer's DS_*/ITN7_* variables, .env or itn7.toml."""
    for name in list(os.environ):
        if name.startswith(("DS_", "ITN7_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def real_schema_text() -> str:
    """The real DS schema from ../shared; tests that need it say why they did not run without it."""
    if not REAL_SCHEMA.is_file():
        pytest.skip(f"{REAL_SCHEMA} absent : validation contre le vrai schéma DS non exécutée "
                    "(le dossier ../shared n'est présent qu'en CI et chez les développeurs)")
    return REAL_SCHEMA.read_text(encoding="utf-8")


@pytest.fixture
def server(dataset: Dataset) -> Iterator[FakeDS]:
    """The fake DS over the module's `dataset`, with the read-only test token; a module needing other
    tokens defines its own `server`."""
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}) as running:
        yield running
