"""A first pull split into streams by state and time range: what a stream keeps of a page, where it is
split, and exactly-once across splits and kills (over real HTTP against the fake DS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from itn7cli import store
from itn7cli.api import Page
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.store import syncstate
from itn7cli.sync import save, writer
from itn7cli.sync.ranges import Stream, split_point, within

from .syncutil import TOKEN, content, env_for, run_sync

ROOT = Path(__file__).resolve().parents[1]
# Two states of the general démarche hold about 300 dossiers each: enough for their streams to be split.
COUNTS = {"general": 900, "labo": 40}


def node(number: int, at: str) -> dict[str, Any]:
    return {"number": number, "dateDerniereModification": at}


def page(*nodes: dict[str, Any] | None, unreadable: tuple[dict[str, Any], ...] = (), more: bool = True) -> Page:
    out = Page.of({"nodes": list(nodes), "pageInfo": {"hasNextPage": more, "endCursor": "c"}})
    out.unreadable = [(stub, "illisible") for stub in unreadable]
    return out


def test_a_stream_keeps_what_lies_before_its_end_and_ends_there() -> None:
    full = page(node(1, "2021-05-01T11:59:59+02:00"), None, node(3, "2021-05-01T12:00:00+02:00"),
                unreadable=(node(2, "2021-05-01T11:59:59+02:00"), node(4, "2021-05-01T12:00:01+02:00")))
    kept = within(full, "2021-05-01T10:00:00+00:00")
    assert not kept.more  # the stream ends with this page
    assert [n["number"] for n in kept.nodes] == [1]
    assert [stub["number"] for stub, _ in kept.unreadable] == [2]
    assert within(full, "2021-05-01T10:00:02+00:00") is full
    assert within(full, None) is full


def test_a_split_falls_on_a_whole_second_halfway_through_what_is_left() -> None:
    stream = Stream(1, "full:accepte", "2000-01-01T00:00:00+00:00", "accepte", None,
                    until="2021-01-01T10:00:00+00:00")
    assert split_point(stream, None) is None  # nothing fetched yet: nothing known
    stream.note(page(*[node(i, f"2021-01-01T08:00:{i:02d}+00:00") for i in range(50)]))
    at, left = split_point(stream, None) or (None, 0.0)
    assert at == datetime(2021, 1, 1, 9, 0, 24, tzinfo=UTC)  # halfway from 08:00:49 to 10:00:00, cut to the second
    assert left == pytest.approx((3600 * 2 - 49) * 50 / 49)
    stream.until = "2021-01-01T08:02:00+00:00"  # about 70 dossiers left: not worth a request of its own
    assert split_point(stream, None) is None


def test_an_open_stream_is_split_up_to_its_states_newest_dossier_only() -> None:
    stream = Stream(1, "full:refuse", "2000-01-01T00:00:00+00:00", "refuse", None)
    stream.note(page(*[node(i, f"2021-01-01T08:00:{i:02d}+00:00") for i in range(50)]))
    assert split_point(stream, None) is None
    assert split_point(stream, datetime(2021, 1, 1, 8, 0, 59, tzinfo=UTC)) is None  # 10 s left: a few dossiers
    at, _ = split_point(stream, datetime(2021, 1, 1, 8, 10, 0, tzinfo=UTC)) or (None, 0.0)
    assert at == datetime(2021, 1, 1, 8, 5, 25, tzinfo=UTC)  # halfway to one second past the newest
    stream.note(page(node(60, "2021-01-01T08:00:59+00:00"), more=False))  # a last page tells no density
    assert stream.position == datetime(2021, 1, 1, 8, 0, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.generate(seed=5, counts=COUNTS)


@pytest.fixture(scope="module")
def server(dataset: Dataset) -> Any:
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}, rate_limit=100_000) as fake:
        yield fake


@pytest.fixture(scope="module")
def reference(server: FakeDS, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("reference") / "reference.db"
    splits: list[str] = []
    split = syncstate.split_stream

    def counted(db: Any, number: int, name: str, at: str, new_name: str) -> None:
        splits.append(new_name)
        split(db, number, name, at, new_name)

    syncstate.split_stream = counted  # type: ignore[assignment]
    try:
        summaries = run_sync(server, path, dataset.numbers)
    finally:
        syncstate.split_stream = split  # type: ignore[assignment]
    assert splits, "the first pull split no stream"
    assert sum(s.dossiers for s in summaries) == sum(len(dataset.visible_numbers(k)) for k in dataset.numbers)
    return content(path)


def test_a_split_first_pull_stores_every_visible_dossier_once(
        dataset: Dataset, reference: dict[str, Any]) -> None:
    numbers = [row[0] for row in reference["dossiers"]]
    assert len(numbers) == len(set(numbers))
    assert set(numbers) == {n for key in dataset.numbers for n in dataset.visible_numbers(key)}


def test_the_hand_over_leaves_before_its_pull_is_closed_and_is_saved_after_its_pages(
        server: FakeDS, dataset: Dataset, reference: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, int]] = []
    saved, fetch, close = save.Saver.page, writer.fetch_stream, syncstate.close_full

    def slow(self: save.Saver, stream: Stream, answer: Page) -> None:
        if stream.full:
            time.sleep(0.05)  # the writer falls behind the fetching threads, as on a slow disk
        saved(self, stream, answer)

    def fetching(client: Any, stream: Stream, pool: Any) -> None:
        if stream.name == "incremental":
            events.append(("asked", stream.demarche))
        fetch(client, stream, pool)

    def closed(db: Any, number: int) -> None:
        events.append(("closed", number))
        close(db, number)

    monkeypatch.setattr(save.Saver, "page", slow)
    monkeypatch.setattr(writer, "fetch_stream", fetching)
    monkeypatch.setattr(syncstate, "close_full", closed)
    run_sync(server, tmp_path / "early.db", dataset.numbers)
    for number in dataset.numbers.values():
        # The pull is closed once its last page is saved: the hand-over left while pages were waiting.
        assert events.index(("asked", number)) < events.index(("closed", number))
    assert content(tmp_path / "early.db") == reference  # and its answer was saved after them


@pytest.mark.parametrize("kind", ["state", "split", "handover", "deletions", "early"])
def test_a_sync_killed_inside_each_kind_of_stream_resumes_to_the_same_content_as_a_clean_pull(
        server: FakeDS, dataset: Dataset, reference: dict[str, Any], tmp_path: Path, kind: str) -> None:
    db_path = tmp_path / "killed.db"
    process = subprocess.run([sys.executable, "-m", "tests.killsync", kind], cwd=ROOT,
                             env={**os.environ, **env_for(server, db_path, dataset.numbers)}, capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    db = store.open_db(db_path)
    assert db.execute("SELECT count(*) FROM sync_runs WHERE finished_at IS NULL").fetchone()[0] >= 1
    db.close()
    run_sync(server, db_path, dataset.numbers)
    assert content(db_path) == reference


