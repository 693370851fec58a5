"""Full sync of N dossiers over both démarches against the fake DS server (in another process).

Prints (a) the sync's wall time against a bare loop that downloads the same pages with the same
query document, at zero server latency; (b) for 1 500 and 5 000 dossiers with 1 s of latency per
request, the first pull's wall time against pages × 1 s (the fewest pages that hold its dossiers), with
the requests it made and the busiest calendar minute from the fake's own counters; (n) the requests
of a sync when nothing changed; (c) the peak memory (max RSS) of the syncing process for N and
10 000 dossiers; (d) how long `itn7 sync` takes to give up when the server is down; (e) how long the
fake DS takes to generate 5 100 dossiers. Targets: (a) ≤ 1.3×, (b) ≤ 0.3× and ≤ 400 requests in any
calendar minute, (n) ≤ 2 (plus one re-read per incomplete company), (c) ≤ 100 MB at 10 000,
(d) < 10 s, (e) < 5 s.

    python bench/bench_sync.py [--dossiers 5000] [--skip-bare]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Server, fake_server

from itn7cli import config, queries
from itn7cli.errors import ApiError
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.sync import EPOCH, STATES, sync_settings

SYNC_CHILD = """
import json, sys, time
from pathlib import Path
url, token, numbers, db, bench = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
sys.path.insert(0, bench)
from _common import peak_rss_mb
from itn7cli import config, sync
settings = config.Settings(token=config.Secret(token), api_url=url, demarches=numbers, db_path=Path(db))
started = time.perf_counter()
summaries = sync.sync_settings(settings, numbers)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "dossiers": sum(s.dossiers for s in summaries),
                  "pages": sum(s.pages for s in summaries),
                  "max_rss_mb": peak_rss_mb()}))
"""


def timed_sync(server: Server) -> dict[str, float]:
    """Runs a whole `sync_settings` in a fresh process on a fresh database."""
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([sys.executable, "-c", SYNC_CHILD, server.url, server.token,
                                 json.dumps(server.numbers), os.path.join(folder, "bench.db"),
                                 str(Path(__file__).resolve().parent)],
                                capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout)


def bare_loop(server: Server) -> tuple[float, int]:
    """Downloads the same pages as the sync's first pull, one after the other, and parses them."""
    document = queries.text("getDossiers")
    requests = 0
    started = time.perf_counter()
    with httpx.Client(headers={"Authorization": f"Bearer {server.token}"}, timeout=120) as client:
        for number in server.numbers.values():
            for state in STATES:
                after = None
                while True:
                    body = {"query": document, "operationName": "getDossiers",
                            "variables": {"number": number, "updatedSince": EPOCH, "state": state, "after": after}}
                    page = client.post(server.url, json=body).json()["data"]["demarche"]["dossiers"]
                    requests += 1
                    if not page["pageInfo"]["hasNextPage"]:
                        break
                    after = page["pageInfo"]["endCursor"]
    return time.perf_counter() - started, requests


def latency_run(total: int) -> None:
    """(b): a first pull of `total` dossiers with 1 s of latency; the fake counts requests per minute.

    The yardstick is the fewest pages that hold the dossiers (100 a page, per démarche): a split pull
    reads more, partly filled pages, which must not make it look faster."""
    general, labo = total * 5 // 6, total - total * 5 // 6
    pages = -(-general // 100) - (-labo // 100)
    with tempfile.TemporaryDirectory() as folder:
        stats_path = os.path.join(folder, "stats.json")
        with fake_server("--dossiers", str(general), "--labo", str(labo), "--latency", "1.0",
                         "--stats", stats_path) as server:
            slow = timed_sync(server)
        stats = json.loads(Path(stats_path).read_text(encoding="utf-8"))
    busiest = max(stats["per_minute"].values())
    verdict = "OK" if busiest <= 400 else "DÉPASSÉ"
    print(f"(b) {slow['dossiers']:.0f} dossiers, latence 1 s : sync {slow['seconds']:.1f} s pour {pages} pages "
          f"pleines → {slow['seconds'] / pages:.2f} × (pages × 1 s) (cible ≤ 0.3) ; {slow['pages']:.0f} pages lues, "
          f"{stats['requests']} requêtes, {busiest} au plus dans une minute calendaire ({verdict}, limite 400)")


def no_change_requests(total: int) -> None:
    """(n): the requests of a second sync right after a first one, nothing changed on the server."""
    labo = total // 6
    dataset = Dataset.generate(seed=7, counts={"general": total - labo, "labo": labo})
    with FakeDS(dataset, tokens={"bench": TokenSpec()}) as server, tempfile.TemporaryDirectory() as folder:
        settings = config.Settings(token=config.Secret("bench"), api_url=server.url,
                                   demarches=dict(dataset.numbers), db_path=Path(folder) / "n.db")
        sync_settings(settings, dict(dataset.numbers))
        server.stats.reset()
        sync_settings(settings, dict(dataset.numbers))
        operations = dict(server.stats.operations)
    rereads = operations.pop("rereadDossier", 0)
    print(f"(n) sync sans changement ({total} dossiers) : {sum(operations.values())} requête(s) {operations} "
          f"(cible ≤ 2), plus {rereads} relecture(s) par numéro (entreprises incomplètes)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dossiers", type=int, default=5000, help="dossiers over both démarches, for (a) and (c)")
    parser.add_argument("--skip-bare", action="store_true", help="skip (a), the zero-latency comparison")
    args = parser.parse_args()
    general, labo = args.dossiers * 5 // 6, args.dossiers - args.dossiers * 5 // 6
    common = ["--dossiers", str(general), "--labo", str(labo), "--rate-limit", "100000"]

    fast = None
    if not args.skip_bare:
        with fake_server(*common) as server:
            bare_seconds, bare_requests = bare_loop(server)
            bare_seconds = min(bare_seconds, bare_loop(server)[0])
            runs = [timed_sync(server) for _ in range(2)]
            fast = min(runs, key=lambda r: r["seconds"])
        print(f"(a) {fast['dossiers']:.0f} dossiers, latence 0 : sync {fast['seconds']:.2f} s, boucle nue "
              f"{bare_seconds:.2f} s ({bare_requests} pages) → ratio {fast['seconds'] / bare_seconds:.2f} "
              "(cible ≤ 1.3)")
        print(f"    débit : {fast['dossiers'] / fast['seconds']:.0f} dossiers/s à latence nulle")

    for total in (1500, 5000):
        latency_run(total)
    no_change_requests(1500)

    with fake_server("--dossiers", str(10000 * 5 // 6), "--labo", str(10000 - 10000 * 5 // 6),
                     "--rate-limit", "100000") as server:
        big = timed_sync(server)
    before = f"{fast['max_rss_mb']:.0f} Mo pour {fast['dossiers']:.0f} dossiers, " if fast else ""
    print(f"(c) mémoire max du processus de sync : {before}{big['max_rss_mb']:.0f} Mo pour "
          f"{big['dossiers']:.0f} dossiers (cible ≤ 100 Mo)")
    print(f"(d) serveur arrêté : abandon en {server_down_seconds():.1f} s (cible < 10 s)")
    started = time.perf_counter()
    Dataset.generate(seed=7, counts={"general": 5000, "labo": 100})
    print(f"(e) faux DS : 5 100 dossiers générés en {time.perf_counter() - started:.1f} s (cible < 5 s)")


def server_down_seconds() -> float:
    """How long a whole sync takes to fail with the API's port closed."""
    with fake_server("--dossiers", "10", "--labo", "2") as server:
        url, token, numbers = server.url, server.token, server.numbers
    with tempfile.TemporaryDirectory() as folder:
        settings = config.Settings(token=config.Secret(token), api_url=url, demarches=numbers,
                                   db_path=Path(folder) / "down.db")
        started = time.perf_counter()
        with contextlib.suppress(ApiError):
            sync_settings(settings, numbers)
        return time.perf_counter() - started


if __name__ == "__main__":
    main()
