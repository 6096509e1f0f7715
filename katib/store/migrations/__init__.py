"""Alembic migrations of the store; run by ``katib.store.migrate``, not by the alembic CLI."""
