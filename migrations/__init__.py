"""Alembic migrations of the governance schema (the only way it changes)."""
