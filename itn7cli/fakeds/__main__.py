"""Run the fake DS server standalone: `python -m itn7cli.fakeds --port 8080 --dossiers 5000 --token demo`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from .control import FAULT_KINDS, TokenSpec
from .dataset import Dataset
from .server import FakeDS


def main(argv: list[str] | None = None) -> int:
    """Parse options, serve until SIGTERM or Ctrl-C; prints URL, token and démarche numbers on stdout."""
    p = argparse.ArgumentParser(prog="python -m itn7cli.fakeds", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--dossiers", type=int, default=300, help="visible dossiers of the general démarche")
    p.add_argument("--labo", type=int, default=None, help="visible dossiers of the labo démarche (default: 20%%)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--token", default="demo", help="accepted bearer token (read + write, all démarches)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds every GraphQL answer takes, at least")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of GraphQL requests that fail (0..1)")
    p.add_argument("--fail-kinds", default=",".join(FAULT_KINDS), help="comma-separated: 429,502,503,timeout")
    p.add_argument("--rate-limit", type=int, default=400, help="requests per window per token")
    p.add_argument("--rate-window", type=int, default=60, help="length of the fixed rate-limit windows, seconds")
    p.add_argument("--files-size", type=int, default=None, help="size in bytes of every attachment")
    p.add_argument("--url-ttl", type=float, default=3600.0, help="life of signed file URLs, seconds")
    p.add_argument("--warm", action="store_true",
                   help="complete every dossier of the sync's pages once before serving, and reuse them: keeps "
                        "the fake's CPU out of client benchmarks")
    p.add_argument("--stats", default=None, help="JSON file written on exit: requests, operations, per minute")
    args = p.parse_args(argv)
    labo = args.labo if args.labo is not None else max(1, args.dossiers // 5)
    dataset = Dataset.generate(
        seed=args.seed, counts={"general": args.dossiers, "labo": labo}, files_size=args.files_size
    )
    server = FakeDS(
        dataset,
        {args.token: TokenSpec(write=True)},
        port=args.port,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        url_ttl=args.url_ttl,
        fault_seed=args.seed,
        warm=args.warm,
    )
    server.faults.latency = args.latency
    server.faults.fail_rate = args.fail_rate
    server.faults.kinds = tuple(k for k in args.fail_kinds.split(",") if k)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with server:
        if server.warmed:
            print(f"warm: {server.warmed[0]} dossiers completed in {server.warmed[1]:.1f} s", file=sys.stderr,
                  flush=True)
        print(f"url={server.url}", flush=True)
        print(f"token={args.token}", flush=True)
        print(f"general={dataset.numbers['general']} labo={dataset.numbers['labo']}", flush=True)
        while not stop.wait(0.2):
            pass
    if args.stats:
        write_stats(server, args.token, args.stats)
    return 0


def write_stats(server: FakeDS, token: str, path: str) -> None:
    """The server's counters as JSON, for a benchmark that ran it in another process."""
    stats = server.stats
    summary = {"requests": stats.requests, "operations": dict(stats.operations), "throttled": stats.throttled,
               "per_minute": {str(minute): n for minute, n in stats.per_minute(token).items()}}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(summary, out)


if __name__ == "__main__":
    sys.exit(main())
