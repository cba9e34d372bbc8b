"""Migration 0016 on a database that already holds rows: the `assets` rebuild keeps them and their jobs."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from governance import batches, users
from governance.database import make_engine, make_session_factory
from governance.enums import AssetKind
from governance.migrate import alembic_config, current_revision, upgrade
from governance.schema import Asset, Job
from governance.subjects import add_subject
from governance.uow import unit_of_work


def test_upgrade_keeps_assets_referenced_by_jobs_then_downgrades(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0001")
    engine = make_engine(empty_db_url)
    sf = make_session_factory(engine)
    try:
        with unit_of_work(sf) as session:
            officer = users.add_user(
                session, email="c@example.org", roles=["compliance"], actor="system:test"
            )
            operator = users.add_user(session, email="o@example.org", roles=["operator"], actor="system:test")
            subject = add_subject(session, reference="S-1", display_name="S", created_by=officer.id)
            made = [
                batches.register_asset(
                    session,
                    kind=kind,
                    bucket="inputs",
                    object_key=f"{kind}.bin",
                    sha256=digit * 64,
                    size_bytes=1,
                    actor="o@example.org",
                    subject_id=subject.id,
                ).id
                for kind, digit in ((AssetKind.portrait, "1"), (AssetKind.driving_video, "2"))
            ]
            batches.create_batch(
                session,
                name="b",
                requested_by=operator.id,
                jobs=[
                    batches.NewJob(
                        subject_id=subject.id,
                        portrait_asset_id=made[0],
                        driving_asset_id=made[1],
                        purpose="advertising",
                        channel="web",
                        territory="DE",
                    )
                ],
            )
        engine.dispose()
        upgrade(empty_db_url)
        assert current_revision(empty_db_url) == "0016"
        with unit_of_work(sf) as session:
            assert sorted(session.scalars(select(Asset.id))) == sorted(made)
            assert session.scalar(select(func.count()).select_from(Job)) == 1
            batches.register_asset(
                session,
                kind=AssetKind.training_clip,
                bucket="inputs",
                object_key="t.pt",
                sha256="3" * 64,
                size_bytes=1,
                actor="o@example.org",
                subject_id=subject.id,
            )
        engine.dispose()
        command.downgrade(alembic_config(empty_db_url), "0001")
        with sf() as session:
            assert sorted(session.scalars(select(Asset.id))) == sorted(made)
        with (
            pytest.raises(IntegrityError, match="(?i)check"),
            unit_of_work(sf) as session,
        ):  # the old CHECK again
            batches.register_asset(
                session,
                kind=AssetKind.training_clip,
                bucket="inputs",
                object_key="t.pt",
                sha256="3" * 64,
                size_bytes=1,
                actor="o@example.org",
            )
        if empty_db_url.startswith("sqlite"):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        engine.dispose()
