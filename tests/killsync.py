"""`python -m tests.killsync KIND`: `itn7 sync` (settings from the environment) that kills itself with
SIGKILL at a chosen point inside one kind of stream, for the resume tests.

KIND: `state` (after the first page of a stream of one dossier state), `split` (after the first page
of a stream split from another), `handover` (after the first page of a full pull's incremental
stream), `deletions` (after the first page of deletions), `early` (once the hand-over of a full pull
has left, before the pull is closed: its pages are saved slowly, so some of them still wait).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from itn7cli import cli
from itn7cli.sync import save, writer


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(kind: str) -> None:
    page, deletions, early = save.Saver.page, save.Saver.deletions, writer.Writer._hand_over_early

    def saved(self: save.Saver, stream: Any, answer: Any) -> None:
        if kind == "early" and stream.full:
            time.sleep(0.05)  # the writer falls behind the fetching threads
        page(self, stream, answer)
        name = stream.name
        if {"state": name.startswith("full:") and "@" not in name, "split": "@" in name,
                "handover": name == "incremental" and stream.seen_run is not None, "early": False}[kind]:
            _kill()

    def hand_over_early(self: writer.Writer) -> None:
        early(self)
        if kind == "early" and self.early:
            time.sleep(0.2)  # the hand-over's request goes out, and may be answered
            _kill()

    def deletions_saved(self: save.Saver, *args: Any) -> None:
        deletions(self, *args)
        if kind == "deletions":
            _kill()

    save.Saver.page = saved  # type: ignore[method-assign]
    save.Saver.deletions = deletions_saved  # type: ignore[method-assign]
    writer.Writer._hand_over_early = hand_over_early  # type: ignore[method-assign]
    sys.argv = ["itn7", "sync", "--quiet"]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1])
