"""Model registry: registered models, their training-data lineage, and the `training_clip` asset kind.

Revision ID: 0016
Revises: 0001
Create Date: 2026-12-02 01:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ASSET_KINDS = ('portrait', 'driving_video', 'reference', 'evidence', 'output')
NEW_ASSET_KINDS = (*OLD_ASSET_KINDS, 'training_clip')


def _asset_kind(values: Sequence[str]) -> sa.Enum:
    return sa.Enum(*values, name='asset_kind', native_enum=False, create_constraint=True, length=32)


def _set_asset_kinds(old: Sequence[str], new: Sequence[str]) -> None:
    """Swap the CHECK of `assets.kind`.

    SQLite cannot alter a CHECK, and rebuilding `assets` inside the migration's transaction breaks the
    foreign keys of `jobs` (they cannot be switched off in a transaction). So on SQLite the table's
    stored definition is edited in place, the procedure SQLite documents for changing constraints
    (https://www.sqlite.org/lang_altertable.html, "making other kinds of table schema changes"): only
    the allowed-values list of the `ck_assets_asset_kind` constraint changes, and the caller makes sure
    every row satisfies the new list.
    """
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        with op.batch_alter_table('assets', schema=None) as batch_op:
            batch_op.alter_column('kind', existing_type=_asset_kind(old), type_=_asset_kind(new),
                                  existing_nullable=False)
        return
    def values(kinds: Sequence[str]) -> str:
        return 'kind IN (' + ', '.join(f"'{kind}'" for kind in kinds) + ')'
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'assets'").scalar()
    if sql is None or sql.count(values(old)) != 1:
        raise RuntimeError("assets.kind has an unexpected CHECK constraint: refusing to migrate")
    version = bind.exec_driver_sql('PRAGMA schema_version').scalar()
    bind.exec_driver_sql('PRAGMA writable_schema = ON')
    bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'assets'",
                         (sql.replace(values(old), values(new)),))
    bind.exec_driver_sql(f'PRAGMA schema_version = {int(version) + 1}')
    bind.exec_driver_sql('PRAGMA writable_schema = OFF')


def upgrade() -> None:
    _set_asset_kinds(OLD_ASSET_KINDS, NEW_ASSET_KINDS)
    op.create_table('registered_models',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=50), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('active', 'retired', 'consent_withdrawn', name='model_status', native_enum=False,
                                create_constraint=True, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_changed_by', sa.String(length=320), nullable=True),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registered_models')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_registered_models_name_version')),
    sa.UniqueConstraint('sha256', name=op.f('uq_registered_models_sha256'))
    )
    op.create_table('model_training_clips',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('model_id', sa.String(length=36), nullable=False),
    sa.Column('asset_id', sa.String(length=36), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('consent_id', sa.String(length=36), nullable=False),
    sa.Column('consent_lineage_id', sa.String(length=36), nullable=False),
    sa.Column('split', sa.String(length=16), nullable=False),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_model_training_clips_asset_id_assets')),
    sa.ForeignKeyConstraint(['consent_id'], ['consents.id'],
                            name=op.f('fk_model_training_clips_consent_id_consents')),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'],
                            name=op.f('fk_model_training_clips_model_id_registered_models')),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'],
                            name=op.f('fk_model_training_clips_subject_id_subjects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_training_clips')),
    sa.UniqueConstraint('model_id', 'asset_id', name=op.f('uq_model_training_clips_model_id_asset_id'))
    )
    with op.batch_alter_table('model_training_clips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_training_clips_consent_id'), ['consent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_training_clips_consent_lineage_id'), ['consent_lineage_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_model_training_clips_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_training_clips_subject_id'), ['subject_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_training_clips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_training_clips_subject_id'))
        batch_op.drop_index(batch_op.f('ix_model_training_clips_model_id'))
        batch_op.drop_index(batch_op.f('ix_model_training_clips_consent_lineage_id'))
        batch_op.drop_index(batch_op.f('ix_model_training_clips_consent_id'))
    op.drop_table('model_training_clips')
    op.drop_table('registered_models')
    op.execute("DELETE FROM assets WHERE kind = 'training_clip'")
    _set_asset_kinds(NEW_ASSET_KINDS, OLD_ASSET_KINDS)
