"""gunicorn wiring: options from the settings, master-side preparation, and the WSGI entry point.

Two ways in, same behaviour:

* ``cmt server [--bind ...]`` runs gunicorn in-process (:func:`run`), settings from cmt.toml + ``CMT_*``
  + flags;
* ``gunicorn -c server/gunicorn.conf.py 'cmt_slurm.server.wsgi:app'`` (systemd, packaging), settings from
  cmt.toml + ``CMT_*``.

The master prepares once (data dir, database migrations, a fresh prometheus multiprocess directory);
each worker builds its own app after the fork, so no database connection crosses a fork.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from ..catalogue import load_catalogue
from ..config import Settings, load_settings
from ..provisioner import Provisioner
from ..store import Store

#: Seconds gunicorn waits for a silent worker before killing it; SSE streams send heartbeats well within.
WORKER_TIMEOUT = 60


def gunicorn_options(settings: Settings, *, access_log: bool = True) -> dict[str, Any]:
    """The gunicorn settings for ``settings`` (also what ``server/gunicorn.conf.py`` exports)."""
    return {
        "bind": [settings.bind],
        "workers": settings.workers,
        # Threads, not processes alone: each SSE client holds a thread for up to a stream's lifetime.
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": WORKER_TIMEOUT,
        "graceful_timeout": 10,
        "keepalive": 5,
        # No "sendfile" key on purpose: gunicorn's setting is the --no-sendfile flag, and giving it any
        # value (True included) turns sendfile off.
        "proc_name": "cmt-server",
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "forwarded_allow_ips": "127.0.0.1",
        "preload_app": False,
        # gunicorn >= 25 opens a control socket in $HOME by default, one path for every instance on
        # the host; cmt needs none (signals do: HUP reloads, TERM stops).
        "control_socket_disable": True,
    }


def metrics_dir(settings: Settings) -> Path:
    return settings.data_dir / "prometheus"


def prepare(settings: Settings) -> None:
    """Run once in gunicorn's master before any worker starts: fail early on bad settings, migrate the
    database, copy the catalogue into the images table.

    :raises ConfigError: bad database URL.
    :raises BadInput: the catalogue directory is missing or has invalid manifests.
    :raises BackendError: the database cannot be reached or migrated.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Counters from a previous run must not be summed into this one.
    mdir = metrics_dir(settings)
    shutil.rmtree(mdir, ignore_errors=True)
    mdir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mdir)
    catalogue = load_catalogue(settings.catalogue_dir)
    store = Store.open(settings.effective_db_url, migrate=True)
    try:
        Provisioner(store, catalogue, settings).sync_images("server")
    finally:
        store.dispose()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: forget a dead worker's live gauges (counters stay summed, as they should)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Late: prometheus-client must first be imported after PROMETHEUS_MULTIPROC_DIR is set.
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def build_app(settings: Settings | None = None) -> Any:
    """The Flask app for one worker (imports Flask only here, after the fork)."""
    from .app import create_app  # noqa: PLC0415 - Flask and metrics only in workers

    return create_app(settings if settings is not None else load_settings())


def run(settings: Settings, *, access_log: bool = True) -> None:
    """Run gunicorn in the foreground until it is stopped (SIGTERM / SIGINT)."""
    prepare(settings)
    options = gunicorn_options(settings, access_log=access_log)

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None and key in self.cfg.settings:  # older gunicorns lack some keys
                    self.cfg.set(key, value)
            self.cfg.set("child_exit", child_exit)

        def load(self) -> Any:
            return build_app(settings)

    _Server().run()


def __getattr__(name: str) -> Any:
    # ``cmt_slurm.server.wsgi:app`` for the gunicorn command line, built on first access (in the worker).
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
