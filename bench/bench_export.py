"""Bench: `itn7 export` of 10 000 dossiers. Targets: ≤ 10 s wall time, ≤ 200 MB peak memory.

    python bench/bench_export.py [--dossiers 10000] [--keep base.db]

The dossiers come from the fake DS dataset (itn7cli.fakeds), synced through the real client and
checked; every dossier is then put in session 1 so that one workbook holds all of them. The
export runs in a fresh process: its peak memory is that process's peak RSS (ru_maxrss), the
interpreter and imports included.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(path: Path, count: int) -> None:
    """Syncs a fake DS dataset into a new database as `itn7 sync` would, checks it, puts all in session 1."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import build_synced_db

    from itn7cli import check, config, store

    build_synced_db(path, count)
    db = store.open_db(path)
    check.run(db, config.Settings())
    with db.atomic():
        db.execute("UPDATE checks SET session = 1")


def run(path: Path, output: Path) -> None:
    from itn7cli import config, export, store

    db = store.open_db(path)
    started, cpu = time.perf_counter(), time.process_time()
    result = export.export_session(db, config.Settings(), 1, output)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"dossiers": result.dossiers, "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
                      "peak_mb": round(peak_mb, 1), "bytes": output.stat().st_size}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="keep (or reuse) this database file")
    parser.add_argument("--phase", choices=["build", "run"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        return build(args.db, args.dossiers)
    if args.phase == "run":
        return run(args.db, args.output)
    folder = Path(tempfile.mkdtemp())
    path = args.keep or folder / "bench.db"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import ensure_built

    ensure_built(__file__, path, args.dossiers)
    result = subprocess.run([sys.executable, __file__, "--phase", "run", "--db", str(path), "--output",
                             str(folder / "bench.xlsx")], check=True, capture_output=True, text=True)
    figures = json.loads(result.stdout)
    print(result.stdout.strip())
    verdict = "OK" if figures["seconds"] <= 10 and figures["peak_mb"] <= 200 else "HORS CIBLE"
    print(f"{figures['dossiers']} dossiers exportés en {figures['seconds']} s ({figures['cpu_seconds']} s CPU), "
          f"pic mémoire {figures['peak_mb']} Mo (RSS du processus), classeur de {figures['bytes'] / 2**20:.1f} Mo "
          f"(cibles ≤ 10 s, ≤ 200 Mo) : {verdict}")


if __name__ == "__main__":
    main()
