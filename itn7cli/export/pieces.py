"""The committee's copy of a session's files: the verified attachments of its dossiers, beside the workbook."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from ..config import Settings
from ..files.download import size_of
from ..files.names import inside
from ..store import Database, downloads


def session_dossiers(db: Database, settings: Settings, session: int, demarche: str | None) -> list[int]:
    """The live dossiers of `session` (of one démarche, by key, if given): the check's verdict wins;
    unchecked dossiers get the same rule it applies."""
    from ..rules.engine import session_for

    return [number for number, date_depot, checked_session, checked in downloads.session_candidates(db, demarche)
            if (found := checked_session if checked else session_for(date_depot, settings.sessions)) == session
            or (session == 0 and found is not None)]


def _place(source: Path, target: Path, link: bool) -> None:
    if target.exists():
        if target.samefile(source):
            return
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, target)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copyfile(source, target)


def gather_session(db: Database, settings: Settings, session: int, dest: Path,
                   demarche: str | None = None, *, link: bool = True) -> dict[int, Path]:
    """Puts the session's verified files into `dest` (hard links when possible, else copies), in the
    same tree as the files directory; returns {dossier number: its folder relative to `dest`} for the
    dossiers that have at least one verified file."""
    root = settings.files_dir.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    folders: dict[int, Path] = {}
    for number in session_dossiers(db, settings, session, demarche):
        for path, size in downloads.verified(db, number):
            source = inside(root, path)
            if size_of(source) != size:
                continue  # deleted or altered since it was verified: the next sync --files fetches it again
            _place(source, inside(dest, path), link)
            folders.setdefault(number, Path(*PurePosixPath(path).parts[:2]))
    return folders
