"""Starts the fake DS server in its own process for benchmarks, so its CPU is not the client's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    url: str
    token: str
    numbers: dict[str, int]


@contextmanager
def fake_server(*args: str) -> Iterator[Server]:
    """`python -m itn7cli.fakeds ARGS` until the block ends; yields its URL, token and démarche numbers."""
    process = subprocess.Popen([sys.executable, "-m", "itn7cli.fakeds", *args], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    try:
        assert process.stdout is not None
        values: dict[str, str] = {}
        while len(values) < 4:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the fake server stopped before printing its address")
            for part in line.split():
                key, _, value = part.partition("=")
                values[key] = value
        yield Server(values["url"], values["token"], {"general": int(values["general"]), "labo": int(values["labo"])})
    finally:
        process.terminate()
        process.wait(timeout=10)
