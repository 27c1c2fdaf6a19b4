"""Fixtures for integration tests: a fresh database per test, on SQLite always, on PostgreSQL when
``CMT_TEST_PG_URL`` is set (``scripts/with-postgres`` sets it; each test then gets its own schema)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cmt_slurm.store import Store


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("pg", id="pg", marks=pytest.mark.pg)]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL no other test uses; parametrised over both backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cmt.db'}"
        return
    base = os.environ.get("CMT_TEST_PG_URL")
    if not base:
        pytest.skip("PostgreSQL: CMT_TEST_PG_URL is not set (run under scripts/with-postgres)")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on a fresh database."""
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.dispose()


# The boot server as a real process (cmt server under gunicorn): see server_fixtures.py.
from server_fixtures import catalogue_dir, server, server_factory  # noqa: E402, F401
