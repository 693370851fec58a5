"""Bench: `itn7 check --force` of every dossier of a 10 000-dossier base.
Targets (issue 13): ≤ 1.5 s, ≤ 100 MB peak memory.

    python bench/bench_check.py [--dossiers 10000] [--keep base.db] [--runs 3]

The dossiers come from the fake DS dataset (itn7cli.fakeds), synced through the real client; the
check then runs in a fresh process, the interpreter and imports included. A check of that size
runs in worker processes (one per processor): the verdict is on the wall time the user waits,
and the CPU time of every process is printed beside it. The memory is that of the whole process
tree, sampled from outside every 20 ms: its peak PSS (a page a worker still shares with the parent
counts once) is judged, its peak RSS (counted in each process) is printed. A shared machine's
neighbours weigh on any single run: `--runs N` checks in N fresh processes and keeps the fastest
(peak memory: the largest).
"""

from __future__ import annotations

import argparse
import json
import os
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


def cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (the check's workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run(path: Path) -> None:
    from itn7cli import check, config, store

    db = store.open_db(path)
    started, cpu = time.perf_counter(), cpu_seconds()
    summary = check.run(db, config.Settings(), force=True)  # a full check, even on a reused database
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    started = time.perf_counter()
    check.run(db, config.Settings())  # nothing changed: nothing re-checked
    again = time.perf_counter() - started
    rules = Counter(f["rule"] for row in check.results(db) for f in row["findings"] if f["status"] != "eligible")
    print(json.dumps({"checked": summary.checked, "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
                      "workers": check.workers(summary.checked), "unchanged_seconds": round(again, 2),
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
    from _common import ensure_built, run_watched

    ensure_built(__file__, path, args.dossiers)
    runs = []
    for _ in range(max(args.runs, 1)):
        output, pss, rss = run_watched([sys.executable, __file__, "--phase", "run", "--db", str(path)])
        runs.append({**json.loads(output), "peak_pss_mb": pss, "peak_rss_mb": rss})
        print(json.dumps(runs[-1], ensure_ascii=False))
    figures = min(runs, key=lambda r: r["seconds"])
    pss, rss = max(r["peak_pss_mb"] for r in runs), max(r["peak_rss_mb"] for r in runs)
    verdict = "OK" if figures["seconds"] <= 1.5 and pss <= 100 else "HORS CIBLE"
    best = f", meilleure de {len(runs)} exécutions" if len(runs) > 1 else ""
    print(f"{figures['checked']} dossiers contrôlés (contrôle complet{best}, {figures['workers']} processus de "
          f"contrôle) : durée {figures['seconds']} s (CPU de tous les processus {figures['cpu_seconds']} s), "
          f"pic mémoire {pss} Mo (PSS de tous les processus ; RSS additionnés {rss} Mo) ; "
          f"cibles ≤ 1,5 s, ≤ 100 Mo : {verdict} ; relance sans changement : {figures['unchanged_seconds']} s")


if __name__ == "__main__":
    main()
