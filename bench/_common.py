"""What the benchmarks share: the fake DS server in its own process, a synced database of N dossiers."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The tree this bench belongs to, ahead of any installed itn7cli and of the current directory: a bench,
# and every process it starts, measures its own tree's code whatever directory it is run from.
ROOT = Path(__file__).resolve().parents[1]
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM. Not ru_maxrss, which a child process
    inherits from its parent on Linux, so that a bench's child reported the bench's own peak."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on BSD


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(PSS, RSS) in MB of process `pid` and its children, from /proc: PSS shares each page between the
    processes that map it (a forked worker's pages still shared with its parent count once in all), RSS
    counts it in each. (0, 0) where /proc is not Linux's."""
    pids = [pid]
    try:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(pid):
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue  # ended meanwhile
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry.name))
    except OSError:
        return 0.0, 0.0
    pss = rss = 0
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/smaps_rollup").read_text().splitlines():
                if line.startswith(("Pss:", "Rss:")):
                    kb = int(line.split()[1])
                    pss, rss = (pss + kb, rss) if line.startswith("Pss:") else (pss, rss + kb)
        except OSError:
            continue
    return pss / 1024, rss / 1024


def run_watched(command: list[str], every: float = 0.02) -> tuple[str, float, float]:
    """Runs `command` (it must succeed) and returns (its stdout, peak PSS, peak RSS) of its process tree,
    sampled every `every` seconds from this process, so that the sampling costs the measured one nothing."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    peak_pss = peak_rss = 0.0
    while process.poll() is None:
        pss, rss = tree_memory_mb(process.pid)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(every)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, output)
    return output, round(peak_pss, 1), round(peak_rss, 1)


@dataclass
class Server:
    url: str
    token: str
    numbers: dict[str, int]


@contextmanager
def fake_server(*args: str, warm: bool = True) -> Iterator[Server]:
    """`python -m itn7cli.fakeds ARGS` until the block ends; yields its URL, token and démarche numbers.

    `warm` (`--warm`) has the fake complete every dossier once before it answers, and reuse them: the
    real DS's CPU is on other machines, the fake's must not eat the measured client's.
    """
    command = [sys.executable, "-m", "itn7cli.fakeds", *args, *(["--warm"] if warm else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
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


def build_synced_db(path: Path, count: int, seed: int = 7) -> None:
    """Syncs a fake dataset of `count` dossiers (a tenth of them labo) into a new database, as `itn7 sync` would,
    with the reference data `itn7 demo` imports (the communes and EPCI the fake applicants come from): the
    rules then read the territories as a user's check does, not the shortcut of a base without them."""
    import tempfile

    from itn7cli import config, refdata, store, sync
    from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
    from itn7cli.fakeds.demo import write_refdata_csv

    labo = count // 10
    dataset = Dataset.generate(seed=seed, counts={"general": count - labo, "labo": labo})
    with FakeDS(dataset, tokens={"bench": TokenSpec()}, rate_limit=1_000_000) as server:
        settings = config.Settings(token=config.Secret("bench"), api_url=server.url, demarches=dict(dataset.numbers),
                                   db_path=path, requests_per_minute=1_000_000)
        sync.sync_settings(settings, dict(dataset.numbers))
    with tempfile.TemporaryDirectory() as folder:
        db = store.open_db(path)
        try:
            refdata.import_csv(db, write_refdata_csv(Path(folder)))
        finally:
            db.close()


def ensure_built(script: str, path: Path, dossiers: int) -> None:
    """Runs `script --phase build` in its own process when `path` does not exist yet, and says how long it took."""
    if path.exists():
        return
    started = time.perf_counter()
    subprocess.run([sys.executable, script, "--phase", "build", "--db", str(path), "--dossiers", str(dossiers)],
                   check=True)
    print(f"base de {dossiers} dossiers construite en {time.perf_counter() - started:.1f} s", file=sys.stderr)
