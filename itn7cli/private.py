"""Files that hold applicants' personal data are readable by their owner only, whatever the umask.

The database and its side files, lock files, the attachments folder and what it holds are created
through these helpers. The committee workbook is not: it is shared on purpose.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Creates `path` (and missing parents) as a folder only its owner can enter; returns it."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask, and an existing folder keeps its own
    return path


def private_file(path: Path) -> Path:
    """Creates `path` empty with owner-only modes if it does not exist yet (never truncates); returns it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    return path


def open_private(path: Path, mode: str = "wb"):  # type: ignore[no-untyped-def]
    """`open(path, mode)` for a new file created with owner-only modes (the umask cannot widen them)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), mode)


def tighten(paths: list[Path]) -> list[Path]:
    """Removes group and other access from those of `paths` that exist and have it; returns them.

    A file another account owns cannot be changed and is left as it is.
    """
    tightened = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                os.chmod(path, mode & ~0o077)
                tightened.append(path)
        except FileNotFoundError:
            continue
        except PermissionError:
            if path.stat().st_uid == os.geteuid():
                raise
    return tightened
