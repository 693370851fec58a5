"""Bench `sync --files` on big attachments: peak memory and throughput against a plain streaming loop.

    python bench/bench_files.py                  # ≈ 50 files × 20 MB from a fake DS in another process
    python bench/bench_files.py --size 5000000   # quicker

The fake server runs in its own process (`python -m itn7cli.fakeds`), so its CPU and memory are
not counted. Each measured side runs in a fresh child process too, so its peak RSS (VmHWM) is
its own: `itn7` downloads through `files.sync_with_files` (sync, then a few workers streaming,
hashing and renaming); the baseline lists the same dossiers, then streams every file URL to disk
one after the other with plain httpx. Targets: peak RSS ≤ 100 MB, throughput ≥ 80 % of the loop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import fake_server, peak_rss_mb  # noqa: E402


def settings(info: dict[str, str], work: Path) -> Any:
    from itn7cli import config

    return config.Settings(token=config.Secret(info["token"]), api_url=info["url"],
                           demarches={"general": int(info["general"]), "labo": None},
                           db_path=work / "itn7.db", files_dir=work / "fichiers")


def child_itn7(info: dict[str, str], work: Path) -> dict[str, Any]:
    from itn7cli import files

    cfg = settings(info, work)
    start = time.perf_counter()
    _, summary = files.sync_with_files(cfg, cfg.demarche_numbers())
    elapsed = time.perf_counter() - start
    assert summary.statuses["ok"] == summary.fichiers, summary
    return {"files": summary.telecharges, "bytes": summary.octets, "seconds": elapsed}


def child_plain(info: dict[str, str], work: Path) -> dict[str, Any]:
    import httpx

    from itn7cli import sync

    cfg = settings(info, work)
    urls: list[str] = []

    def collect(_demarche: int, nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            for champ in node.get("champs") or ():
                urls.extend(f["url"] for f in champ.get("files") or ())

    start = time.perf_counter()
    sync.sync_settings(cfg, cfg.demarche_numbers(), after_page=collect)
    total = 0
    (work / "plain").mkdir()
    with httpx.Client(timeout=60) as client:
        for i, url in enumerate(urls):
            with client.stream("GET", url) as response, (work / "plain" / str(i)).open("wb") as fh:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    total += len(chunk)
    return {"files": len(urls), "bytes": total, "seconds": time.perf_counter() - start}


def measure(kind: str, info: dict[str, str]) -> dict[str, Any]:
    """Runs one side in a fresh process and returns its figures, peak RSS included."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-files-{kind}-"))
    try:
        output = subprocess.run([sys.executable, __file__, "--child", kind, "--work", str(work),
                                 "--info", json.dumps(info)], capture_output=True, text=True, check=True, cwd=work)
        return json.loads(output.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20_000_000, help="bytes per attachment")
    parser.add_argument("--dossiers", type=int, default=16, help="dossiers of the general démarche (16 → 49 files)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side; the best is kept")
    parser.add_argument("--child", choices=("itn7", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = (child_itn7 if args.child == "itn7" else child_plain)(json.loads(args.info), args.work)
        figures["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(figures))
        return

    with fake_server("--files-size", str(args.size), "--dossiers", str(args.dossiers), "--labo", "1",
                     "--token", "bench", "--rate-limit", "100000") as server:
        info = {"url": server.url, "token": server.token, "general": str(server.numbers["general"])}
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for kind in ("plain", "itn7"):
                run = measure(kind, info)
                run["mb_s"] = run["bytes"] / 2**20 / run["seconds"]
                print(f"  {kind:5}  {run['files']} files, {run['bytes'] / 2**20:.0f} MiB in {run['seconds']:.2f} s "
                      f"= {run['mb_s']:.0f} MiB/s, peak RSS {run['peak_rss_mb']:.0f} MiB", flush=True)
                if kind not in best or run["mb_s"] > best[kind]["mb_s"]:
                    best[kind] = {**run, "peak_rss_mb": max(run["peak_rss_mb"], best.get(kind, run)["peak_rss_mb"])}
    ratio = best["itn7"]["mb_s"] / best["plain"]["mb_s"]
    rss = best["itn7"]["peak_rss_mb"]
    print(f"itn7 sync --files: {best['itn7']['mb_s']:.0f} MiB/s, {ratio:.0%} of the plain loop "
          f"({best['plain']['mb_s']:.0f} MiB/s) — target ≥ 80 % {'OK' if ratio >= 0.8 else 'MISSED'}")
    print(f"peak RSS: {rss:.0f} MiB (plain loop {best['plain']['peak_rss_mb']:.0f} MiB) — target ≤ 100 MiB "
          f"{'OK' if rss <= 100 else 'MISSED'}")


if __name__ == "__main__":
    main()
