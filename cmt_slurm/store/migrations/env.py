"""Alembic environment: runs on the connection ``Store.upgrade`` hands over, or from ``alembic.ini``."""

from __future__ import annotations

from alembic import context

from cmt_slurm.store.engine import create_engine
from cmt_slurm.store.schema import metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


conn = context.config.attributes.get("connection")
if conn is not None:
    _run(conn)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: set sqlalchemy.url in alembic.ini or use `cmt db upgrade`")
    with create_engine(url).begin() as connection:
        _run(connection)
