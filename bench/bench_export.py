"""Bench: `itn7 export` on a 10 000-dossier base: the workbook of its largest session (≈ 4 000 dossiers)
and the workbook of every session (`--session 0`). Targets (issue 13): ≤ 3 s and ≤ 8 s, ≤ 100 MB.

    python bench/bench_export.py [--dossiers 10000] [--keep base.db] [--runs 3]

The dossiers come from the fake DS dataset (itn7cli.fakeds), synced through the real client and
checked; sessions are the check's. Each workbook is written in a fresh process: its peak memory is
that process's peak RSS (VmHWM), the interpreter and imports included. Not ru_maxrss: on Linux a child
inherits its parent's, so it reported this script's own peak (≈ 94 MB) whatever the export used. Wall
time and CPU time are both printed: on a shared machine the wall time measures the neighbours as much
as the export, and so does a single run; `--runs N` writes each workbook in N fresh processes and keeps
the fastest (peak memory: the largest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"session": 3.0, "all": 8.0}  # seconds
PEAK_MB = 100


def build(path: Path, count: int) -> None:
    """Syncs a fake DS dataset into a new database as `itn7 sync` would, and checks it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import build_synced_db

    from itn7cli import check, config, store

    build_synced_db(path, count)
    check.run(store.open_db(path), config.Settings())


def largest_session(path: Path) -> tuple[int, int]:
    """(session, dossiers) of the session with the most checked dossiers."""
    from itn7cli import check, store

    counts: dict[int, int] = {}
    for row in check.results(store.open_db(path)):
        if row["session"] is not None:
            counts[row["session"]] = counts.get(row["session"], 0) + 1
    session = max(counts, key=counts.__getitem__)
    return session, counts[session]


def run(path: Path, session: int, output: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import peak_rss_mb

    from itn7cli import config, export, store

    db = store.open_db(path)
    started, cpu = time.perf_counter(), time.process_time()
    result = export.export_session(db, config.Settings(), session, output)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = peak_rss_mb()
    print(json.dumps({"session": session, "dossiers": result.dossiers, "seconds": round(elapsed, 2),
                      "cpu_seconds": round(cpu, 2), "peak_mb": round(peak_mb, 1), "bytes": output.stat().st_size}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="keep (or reuse) this database file")
    parser.add_argument("--runs", type=int, default=1, help="fresh processes per workbook; the fastest is kept")
    parser.add_argument("--phase", choices=["build", "run"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--session", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        return build(args.db, args.dossiers)
    if args.phase == "run":
        return run(args.db, args.session, args.output)
    folder = Path(tempfile.mkdtemp())
    path = args.keep or folder / "bench.db"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import ensure_built

    ensure_built(__file__, path, args.dossiers)
    session, _ = largest_session(path)
    for kind, number in (("session", session), ("all", 0)):
        runs = []
        for _ in range(max(args.runs, 1)):
            result = subprocess.run([sys.executable, __file__, "--phase", "run", "--db", str(path), "--session",
                                     str(number), "--output", str(folder / f"bench-{kind}.xlsx")],
                                    check=True, capture_output=True, text=True)
            runs.append(json.loads(result.stdout))
            print(result.stdout.strip())
        figures = min(runs, key=lambda r: r["seconds"])
        peak_mb = max(r["peak_mb"] for r in runs)
        ok = figures["seconds"] <= TARGETS[kind] and peak_mb <= PEAK_MB
        which = f"la session {number}" if number else "toutes les sessions"
        best = f", meilleur de {len(runs)} processus" if len(runs) > 1 else ""
        print(f"classeur de {which} : {figures['dossiers']} dossiers dans le classeur, écrit en {figures['seconds']} s "
              f"({figures['cpu_seconds']} s CPU{best}), pic mémoire {peak_mb} Mo (RSS du processus), "
              f"{figures['bytes'] / 2**20:.1f} Mo (cibles ≤ {TARGETS[kind]:g} s, ≤ {PEAK_MB} Mo) : "
              f"{'OK' if ok else 'HORS CIBLE'}")

if __name__ == "__main__":
    main()
