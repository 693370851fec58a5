"""Attachments: safe names and layout (`names`), one verified download (`download`), the worker pool
(`pool`) and the `sync --files` run (`run`). The committee's copy of a session's files is `export.pieces`."""

from .download import DEFAULT_MAX_BYTES, download_verified, md5_base64, sweep
from .names import (
    FOLDER_BYTES,
    NAME_BYTES,
    RESERVED,
    FileRef,
    demarche_folder,
    dossier_files,
    inside,
    safe_component,
)
from .pool import RETRY, DownloadPool, LinkRenewer, Outcome
from .run import STATUSES, FilesProgress, FilesSummary, sync_with_files

__all__ = [
    "DEFAULT_MAX_BYTES", "FOLDER_BYTES", "NAME_BYTES", "RESERVED", "RETRY", "STATUSES", "DownloadPool", "FileRef",
    "FilesProgress", "FilesSummary", "LinkRenewer", "Outcome", "demarche_folder", "dossier_files",
    "download_verified", "inside", "md5_base64", "safe_component", "sweep", "sync_with_files",
]
