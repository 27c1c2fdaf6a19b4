"""Opening the database: engine options per backend, migrations to head, transactions and locks.

Every write happens inside ``with store.begin() as conn:``, reads in ``with store.read() as conn:``. On
SQLite each write transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers (several gunicorn
workers) queue on the busy timeout instead of failing half-way with "database is locked", while readers
see a WAL snapshot without waiting; on PostgreSQL state changes are conditional UPDATEs and
cross-row decisions (admission) take a transaction-scoped advisory lock (:meth:`Store.lock`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ..errors import BackendError, ConfigError

MIGRATIONS = "cmt_slurm.store:migrations"
#: Seconds a writer waits for another's lock before giving up (SQLite busy timeout).
BUSY_TIMEOUT_S = 30


def _sqlite_setup(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver, so that BEGIN IMMEDIATE below is what starts one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers (Store.read) take no write lock, so in WAL mode they never wait for writers.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("cmt_read") else "BEGIN IMMEDIATE")


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


def create_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL, with our per-backend options.

    :raises ConfigError: the URL cannot be parsed or names a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"db_url: {url!r} is not a database URL",
            hint="e.g. sqlite:////var/lib/cmt/cmt.db or postgresql+psycopg://user@host/db",
        ) from None
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"db_url: cannot use {safe_url(parsed)}: {exc}",
            hint="install the driver (e.g. pip install 'cmt-slurm[pg]') or fix the URL",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_setup(engine)
    return engine


def _alembic_config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "no migrations packaged"
    return head


class Store:
    """The database. Repositories (``nodes``, ``deployments``, ...) are functions taking a connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect to ``url`` and (by default) migrate its schema to head.

        :raises ConfigError: bad URL or missing driver.
        :raises BackendError: the database cannot be reached or migrated.
        """
        store = cls(create_engine(url))
        if migrate:
            store.upgrade()
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return safe_url(self.engine.url)

    def _backend_error(self, exc: sa.exc.OperationalError) -> BackendError:
        first = (str(exc.orig or exc).strip().splitlines() or ["operational error"])[0]
        return BackendError(
            f"database {self.url}: {first}",
            hint="check that the database is reachable and not locked by a stuck process",
        )

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise self._backend_error(exc) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (one consistent snapshot); on SQLite it does not queue behind writers."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(cmt_read=True)
                with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            raise self._backend_error(exc) from exc

    def lock(self, conn: Connection, name: str) -> None:
        """Serialise a cross-row decision named ``name`` until the end of ``conn``'s transaction."""
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(name.encode())})
        # SQLite: BEGIN IMMEDIATE already holds the one write lock for the whole transaction.

    def upgrade(self, revision: str = "head") -> None:
        """Run the packaged Alembic migrations up to ``revision``, one process at a time."""
        with self.begin() as conn:
            self.lock(conn, "cmt-migrations")
            command.upgrade(_alembic_config(conn), revision)

    def current_revision(self) -> str | None:
        with self.begin() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        """Close pooled connections (call after fork, or when done)."""
        self.engine.dispose()
