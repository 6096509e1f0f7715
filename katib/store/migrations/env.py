"""Alembic environment: runs on the connection (and transaction) katib.store hands over."""

from __future__ import annotations

from alembic import context

from katib.store.migrate import VERSION_TABLE
from katib.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the store's migrations with katib.store.migrate.upgrade(engine) or "
        "Store(url), which pass a database connection to alembic"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
