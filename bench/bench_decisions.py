"""Bench: `itn7 decisions import` and the dry run of `itn7 decisions apply` on 10 000 decisions.
Targets: each ≤ 3 s wall time and ≤ 200 MB peak memory.

    python bench/bench_decisions.py [--dossiers 10000] [--keep base.db]

The database is bench_export's (fake DS dataset synced through the real client, checked, every
dossier in session 1); its workbook is exported, then every row of « Dossiers » is given a decision
(Retenu 100 €, Refusé or Ajourné in turn) with openpyxl. The import, then the dry run (plan and the
table the command prints, sent to /dev/null), each run in a fresh process: peak memory is that
process's peak RSS (VmHWM), the interpreter and imports included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(path: Path, count: int) -> None:
    """bench_export's database, its session workbook, and a decision on every row."""
    sys.path.insert(0, str(HERE))
    from bench_export import build as build_db
    from openpyxl import load_workbook

    from itn7cli import config, export, store

    build_db(path, count)
    db = store.open_db(path)
    workbook = path.with_suffix(".xlsx")
    export.export_session(db, config.Settings(), 1, workbook)
    wb = load_workbook(workbook)
    ws = wb["Dossiers"]
    header = [c.value for c in ws[1]]
    at = {name: header.index(name) for name in ("Décision du comité", "Montant attribué (€)", "Motivation")}
    choices = (("Retenu", 100, "Retenu par le comité."), ("Refusé", None, "Hors du champ de l'appel."),
               ("Ajourné", None, None))
    for index, row in enumerate(ws.iter_rows(min_row=2)):
        for column, value in zip(("Décision du comité", "Montant attribué (€)", "Motivation"), choices[index % 3],
                                 strict=True):
            row[at[column]].value = value
    wb.save(workbook)


def run(path: Path, phase: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import peak_rss_mb

    from itn7cli import config, store

    db = store.open_db(path)
    if phase == "import":  # a first import every time: every decision is recorded, none found unchanged
        with db.atomic():
            db.execute("DELETE FROM decisions")
    started, cpu = time.perf_counter(), time.process_time()
    if phase == "import":
        from itn7cli.decisions.workbook import import_workbook

        result = import_workbook(db, config.Settings(), path.with_suffix(".xlsx"))
        count, problems = len(result.entries), len(result.problems)
    else:
        from itn7cli import cli
        from itn7cli.decisions import apply as apply_mod

        planned = apply_mod.plan(db)
        with open("/dev/null", "w", encoding="utf-8") as sink:
            cli.out.file = sink
            cli.render_decisions_plan(planned, title="simulation")
        count, problems = len(planned), 0
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = peak_rss_mb()
    print(json.dumps({"phase": phase, "decisions": count, "problems": problems, "seconds": round(elapsed, 2),
                      "cpu_seconds": round(cpu, 2), "peak_mb": round(peak_mb, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="keep (or reuse) this database file")
    parser.add_argument("--phase", choices=["build", "import", "dry-run"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        return build(args.db, args.dossiers)
    if args.phase:
        return run(args.db, args.phase)
    path = args.keep or Path(tempfile.mkdtemp()) / "bench.db"
    sys.path.insert(0, str(HERE))
    from _common import ensure_built

    ensure_built(__file__, path, args.dossiers)
    for phase in ("import", "dry-run"):
        result = subprocess.run([sys.executable, __file__, "--phase", phase, "--db", str(path)], check=True,
                                capture_output=True, text=True)
        figures = json.loads(result.stdout)
        print(result.stdout.strip())
        verdict = "OK" if figures["seconds"] <= 3 and figures["peak_mb"] <= 200 else "HORS CIBLE"
        print(f"{phase} : {figures['decisions']} décisions en {figures['seconds']} s ({figures['cpu_seconds']} s "
              f"CPU), pic mémoire {figures['peak_mb']} Mo (cibles ≤ 3 s, ≤ 200 Mo) : {verdict}")


if __name__ == "__main__":
    main()
