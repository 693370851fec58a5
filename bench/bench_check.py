"""Bench: `itn7 check --force` of every dossier of a 10 000-dossier base.
Targets (issue 13): ≤ 1.5 s of CPU, ≤ 100 MB peak memory.

    python bench/bench_check.py [--dossiers 10000] [--keep base.db] [--runs 3]

The dossiers come from the fake DS dataset (itn7cli.fakeds), synced through the real client; the
check then runs in a fresh process so its peak memory (VmHWM) is its own, the interpreter and
imports included. The verdict is on CPU time: on a shared machine the wall time measures the
neighbours as much as the check, and so does a single run; `--runs N` checks in N fresh processes
and keeps the fastest (peak memory: the largest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def build(path: Path, count: int) -> None:
    """Syncs a fake DS dataset into a new database through the real client, as `itn7 sync` would."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import build_synced_db

    build_synced_db(path, count)


def run(path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import peak_rss_mb

    from itn7cli import check, config, store

    db = store.open_db(path)
    started, cpu = time.perf_counter(), time.process_time()
    summary = check.run(db, config.Settings(), force=True)  # a full check, even on a reused database
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    check.run(db, config.Settings())  # nothing changed: nothing re-checked
    again = time.perf_counter() - started
    peak_mb = peak_rss_mb()  # before the listing below
    rules = Counter(f["rule"] for row in check.results(db) for f in row["findings"] if f["status"] != "eligible")
    print(json.dumps({"checked": summary.checked, "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
                      "unchanged_seconds": round(again, 2),
                      "peak_mb": round(peak_mb, 1),
                      "status": dict(summary.by_status), "session": {str(k): v for k, v in summary.by_session.items()},
                      "rules": dict(rules.most_common())}, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="keep (or reuse) this database file")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes that check; the fastest is kept")
    parser.add_argument("--phase", choices=["build", "run"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        return build(args.db, args.dossiers)
    if args.phase == "run":
        return run(args.db)
    path = args.keep or Path(tempfile.mkdtemp()) / "bench.db"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import ensure_built

    ensure_built(__file__, path, args.dossiers)
    runs = []
    for _ in range(max(args.runs, 1)):
        result = subprocess.run([sys.executable, __file__, "--phase", "run", "--db", str(path)], check=True,
                                capture_output=True, text=True)
        runs.append(json.loads(result.stdout))
        print(result.stdout.strip())
    figures = min(runs, key=lambda r: r["cpu_seconds"])
    peak_mb = max(r["peak_mb"] for r in runs)
    verdict = "OK" if figures["cpu_seconds"] <= 1.5 and peak_mb <= 100 else "HORS CIBLE"
    best = f", meilleur de {len(runs)} processus" if len(runs) > 1 else ""
    print(f"{figures['checked']} dossiers contrôlés (contrôle complet{best}) : "
          f"CPU {figures['cpu_seconds']} s (durée {figures['seconds']} s), pic mémoire {peak_mb} Mo (RSS du "
          f"processus) ; cibles ≤ 1,5 s de CPU, ≤ 100 Mo : {verdict} ; "
          f"relance sans changement : {figures['unchanged_seconds']} s")


if __name__ == "__main__":
    main()
