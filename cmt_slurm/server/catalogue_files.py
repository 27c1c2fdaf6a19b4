"""The catalogue directory as the server sees it: reloaded when its manifests change.

Each gunicorn worker (and each boot server sharing the directory) holds its own ``Catalogue``; the
manifest files are the truth. :meth:`CatalogueFiles.refresh` compares a cheap signature of the directory
(names, sizes and mtimes of ``*.toml``) at most every ``check_interval`` seconds and reloads on a change,
so an image added through the API on one worker, or with ``cmt image add`` on the host, is seen by all.
A directory that stops loading (a broken manifest) keeps the last good catalogue and logs why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..catalogue import Catalogue, load_catalogue
from ..errors import CmtError

log = logging.getLogger("cmt_slurm.server")

Signature = tuple[tuple[str, int, int], ...]


def signature(directory: Path) -> Signature:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return ()
    out = []
    for e in entries:
        if e.name.endswith(".toml") and e.is_file():
            st = e.stat()
            out.append((e.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


class CatalogueFiles:
    def __init__(
        self,
        directory: Path,
        catalogue: Catalogue,
        on_change: Callable[[Catalogue], None],
        check_interval: float = 2.0,
    ) -> None:
        self.directory = directory
        self._catalogue = catalogue
        self._on_change = on_change
        self._interval = check_interval
        self._sig = signature(directory)
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    def refresh(self, *, force: bool = False) -> Catalogue:
        """The current catalogue, reloaded first if the directory changed since the last look."""
        now = time.monotonic()
        if not force and now - self._checked < self._interval:
            return self._catalogue
        with self._lock:
            self._checked = now
            sig = signature(self.directory)
            if sig == self._sig and not force:
                return self._catalogue
            try:
                fresh = load_catalogue(self.directory)
            except CmtError as exc:
                log.error("catalogue %s not reloaded, keeping the last good one: %s", self.directory, exc)
                self._sig = sig  # do not retry the same broken state on every request
                return self._catalogue
            self._sig = sig
            self._set(fresh)
            return fresh

    def _set(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._on_change(catalogue)
