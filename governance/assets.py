"""Assets: objects in storage the pipeline reads or writes, registered with their SHA-256."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import record as audit
from governance.audit.actions import AuditAction
from governance.enums import AssetKind
from governance.errors import NotFound, ValidationFailed
from governance.schema import Asset
from governance.subjects import check_sha256, get_subject


def get_asset(session: Session, asset_id: str) -> Asset:
    """The asset with this id, or NotFound."""
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise NotFound(f"asset {asset_id} not found")
    return asset


def find_by_sha256(session: Session, sha256: str, *, kind: AssetKind | None = None) -> list[Asset]:
    """Assets with this content hash (optionally of one kind), oldest first."""
    statement = select(Asset).where(Asset.sha256 == sha256.lower())
    if kind is not None:
        statement = statement.where(Asset.kind == kind)
    return list(session.scalars(statement.order_by(Asset.created_at)))


def register_asset(
    session: Session,
    *,
    kind: AssetKind | str,
    bucket: str,
    object_key: str,
    sha256: str,
    size_bytes: int,
    actor: str,
    media_type: str = "",
    media_info: dict[str, Any] | None = None,
    subject_id: str | None = None,
) -> Asset:
    """Record an object already stored (audited as `asset.registered`); the caller computed its SHA-256."""
    try:
        asset_kind = AssetKind(kind)
    except ValueError:
        raise ValidationFailed(
            f"unknown asset kind {kind!r} (allowed: {', '.join(k.value for k in AssetKind)})"
        ) from None
    if not bucket or not object_key:
        raise ValidationFailed("an asset needs a bucket and an object key")
    if size_bytes < 0:
        raise ValidationFailed(f"asset size {size_bytes} is negative")
    if subject_id is not None:
        get_subject(session, subject_id)
    asset = Asset(
        kind=asset_kind,
        bucket=bucket,
        object_key=object_key,
        sha256=check_sha256(sha256, "asset sha256"),
        size_bytes=size_bytes,
        media_type=media_type,
        media_info=media_info or {},
        subject_id=subject_id,
        created_by=actor,
    )
    session.add(asset)
    session.flush()
    audit.record(
        session,
        action=AuditAction.ASSET_REGISTERED,
        actor=actor,
        subject_id=subject_id,
        resource_type="asset",
        resource_id=asset.id,
        details={
            "kind": asset_kind.value,
            "bucket": bucket,
            "object_key": object_key,
            "sha256": asset.sha256,
            "size_bytes": size_bytes,
        },
    )
    return asset
