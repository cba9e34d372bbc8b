"""The `world` fixture: users of every role, a subject, consent evidence and assets, on each backend."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from governance import batches, users
from governance.enums import AssetKind
from governance.subjects import add_subject
from governance.uow import unit_of_work
from tests.governance.helpers import World


@pytest.fixture
def world(session_factory: sessionmaker[Session], tmp_path: Path) -> World:
    evidence = tmp_path / "consent-form.pdf"
    evidence.write_bytes(b"%PDF-1.4 signed consent form of subject S-1\n")
    with unit_of_work(session_factory) as session:
        made = {
            name: users.add_user(session, email=f"{name}@example.org", roles=roles, actor="system:test").id
            for name, roles in {
                "admin": ["admin"],
                "compliance": ["compliance"],
                "operator": ["operator"],
                "reviewer": ["reviewer"],
                "reviewer_operator": ["reviewer", "operator"],
                "auditor": ["auditor"],
            }.items()
        }
        subject = add_subject(
            session, reference="S-1", display_name="Test Subject", created_by=made["compliance"]
        )
        portrait = batches.register_asset(
            session,
            kind=AssetKind.portrait,
            bucket="inputs",
            object_key="p.png",
            sha256="1" * 64,
            size_bytes=10,
            actor="operator@example.org",
            subject_id=subject.id,
        )
        driving = batches.register_asset(
            session,
            kind=AssetKind.driving_video,
            bucket="inputs",
            object_key="d.mov",
            sha256="2" * 64,
            size_bytes=20,
            actor="operator@example.org",
        )
    return World(
        sf=session_factory,
        subject=subject.id,
        portrait=portrait.id,
        driving=driving.id,
        evidence=evidence,
        evidence_sha256=hashlib.sha256(evidence.read_bytes()).hexdigest(),
        **made,
    )
