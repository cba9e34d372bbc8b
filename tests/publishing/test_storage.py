"""ObjectStore against a real SeaweedFS: round trips, idempotency, integrity, and the error classes."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pytest

from pipeline.errors import InputError, PermanentError, TransientError
from pipeline.storage.objects import (
    BucketMissingError,
    ChecksumMismatch,
    IntegrityError,
    ObjectMissingError,
    ObjectStore,
    ObjectTooLarge,
    StoragePermissionError,
    object_key,
)
from tests.fixtures.storage import S3ServerHandle

pytestmark = pytest.mark.s3

JOB = "5b0c2c9e-3f51-4c2a-9a0e-1f2d3c4b5a69"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_object_key_is_deterministic_and_refuses_bad_parts() -> None:
    assert object_key(JOB, "video.mp4") == f"jobs/{JOB}/video.mp4"
    assert object_key(JOB.upper(), "video.mp4") == f"jobs/{JOB}/video.mp4"
    with pytest.raises(ValueError, match="`job_id` must be a UUID"):
        object_key("../etc", "video.mp4")
    with pytest.raises(ValueError, match="plain file name"):
        object_key(JOB, "../video.mp4")


def test_ensure_buckets_creates_versioned_locked_published_bucket(object_store: ObjectStore) -> None:
    infos = object_store.ensure_buckets()  # second call: idempotent
    assert {info.name for info in infos.values()} == set(object_store.buckets.values())
    assert infos["published"].versioned and infos["published"].object_lock
    assert infos["quarantine"].versioned
    assert not infos["inputs"].object_lock


def test_upload_download_and_metadata_round_trip(object_store: ObjectStore, tmp_path: Path) -> None:
    data = b"\x00\x01video bytes" * 1000
    src = write(tmp_path / "video.mp4", data)
    key = object_key(JOB, "video.mp4")
    stored = object_store.put_file(
        "published", key, src, metadata={"job-id": JOB, "consent-version": "3", "model-sha256": "ab" * 32}
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.version_id
    info = object_store.stat("published", key)
    assert info.metadata["job-id"] == JOB
    assert info.metadata["consent-version"] == "3"
    assert info.metadata["model-sha256"] == "ab" * 32
    assert info.metadata["sha256"] == stored.sha256
    dest = tmp_path / "out" / "copy.mp4"
    got = object_store.get_file("published", key, dest)
    assert dest.read_bytes() == data
    assert got.version_id == stored.version_id


def test_republish_same_bytes_adds_no_version(object_store: ObjectStore, tmp_path: Path) -> None:
    src = write(tmp_path / "a.mp4", b"same bytes")
    key = object_key(JOB, "video.mp4")
    first = object_store.put_file("published", key, src, metadata={"job-id": JOB})
    second = object_store.put_file("published", key, src, metadata={"job-id": JOB})
    assert second.version_id == first.version_id
    assert object_store.versions("published", key) == [(first.version_id, False)]
    changed = object_store.put_file("published", key, write(tmp_path / "b.mp4", b"new bytes"))
    assert changed.version_id != first.version_id
    assert len(object_store.versions("published", key)) == 2


def test_sha_mismatch_is_refused_before_upload(object_store: ObjectStore, tmp_path: Path) -> None:
    src = write(tmp_path / "video.mp4", b"rendered bytes")
    key = object_key(JOB, "video.mp4")
    with pytest.raises(ChecksumMismatch, match="expected 000000000000") as info:
        object_store.put_file("published", key, src, expected_sha256="0" * 64)
    assert isinstance(info.value, InputError)
    assert object_store.versions("published", key) == []


def test_download_refuses_bytes_that_do_not_match_recorded_sha(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    key = object_key(JOB, "video.mp4")
    bucket = object_store.bucket_name("published")
    # Someone writes around our API with a wrong checksum in the metadata.
    object_store.client.put_object(bucket, key, io.BytesIO(b"tampered"), 8, metadata={"sha256": "1" * 64})
    dest = tmp_path / "dl" / "video.mp4"
    with pytest.raises(IntegrityError, match="download refused"):
        object_store.get_file("published", key, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_object_over_size_limit_is_refused(s3_server: S3ServerHandle, tmp_path: Path) -> None:
    store = s3_server.store(max_object_bytes=1000)
    store.ensure_buckets()
    src = write(tmp_path / "big.mp4", b"x" * 1001)
    key = object_key(JOB, "big.mp4")
    with pytest.raises(ObjectTooLarge, match="1001 bytes, over the object size limit of 1000 bytes"):
        store.put_file("quarantine", key, src)
    assert not store.exists("quarantine", key)
    store.put_file("quarantine", key, write(tmp_path / "ok.mp4", b"x" * 1000))
    assert store.exists("quarantine", key)


def test_missing_bucket_is_a_permanent_error(s3_server: S3ServerHandle, tmp_path: Path) -> None:
    store = s3_server.store()  # buckets never created
    src = write(tmp_path / "a.mp4", b"abc")
    with pytest.raises(BucketMissingError, match=f"bucket '{store.bucket_name('inputs')}' does not exist"):
        store.put_file("inputs", object_key(JOB, "a.mp4"), src)
    with pytest.raises(BucketMissingError):
        store.check_bucket("published")
    assert issubclass(BucketMissingError, PermanentError)
    assert not store.client.bucket_exists(store.bucket_name("inputs"))


def test_wrong_credentials_are_a_permanent_error(
    s3_server: S3ServerHandle, object_store: ObjectStore, tmp_path: Path
) -> None:
    bad = ObjectStore(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key="not-the-secret",
        bucket_prefix=object_store.bucket_prefix,
    )
    key = object_key(JOB, "a.mp4")
    with pytest.raises(StoragePermissionError, match="check the access key") as info:
        bad.put_file("inputs", key, write(tmp_path / "a.mp4", b"abc"))
    assert "not-the-secret" not in str(info.value)
    assert not isinstance(info.value, TransientError)
    assert not object_store.exists("inputs", key)


def test_unknown_bucket_role_is_refused(object_store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="`bucket` must be one of"):
        object_store.bucket_name("other-bucket")


def test_takedown_deletes_every_version(object_store: ObjectStore, tmp_path: Path) -> None:
    key = object_key(JOB, "video.mp4")
    object_store.put_file("published", key, write(tmp_path / "a.mp4", b"one"))
    object_store.put_file("published", key, write(tmp_path / "b.mp4", b"two"))
    result = object_store.takedown("published", key)
    assert len(result.deleted_versions) == 2 and result.held_versions == ()
    assert result.publicly_gone
    assert object_store.versions("published", key) == []
    with pytest.raises(ObjectMissingError, match="not found"):
        object_store.get_file("published", key, tmp_path / "x.mp4")


def test_takedown_with_retention_hides_but_keeps_evidence(object_store: ObjectStore, tmp_path: Path) -> None:
    key = object_key(JOB, "video.mp4")
    stored = object_store.put_file("published", key, write(tmp_path / "a.mp4", b"evidence"))
    result = object_store.takedown("published", key, retain=True)
    assert result.held_versions == (stored.version_id,)
    assert result.delete_marker is not None
    assert not object_store.exists("published", key)
    # The held version cannot be deleted, not even by us, until the hold is lifted.
    with pytest.raises(StoragePermissionError):
        object_store.delete("published", key)
    kept = object_store.get_file("published", key, tmp_path / "kept.mp4", version_id=stored.version_id)
    assert kept.sha256 == stored.sha256
    object_store.set_legal_hold("published", key, version_id=stored.version_id, on=False)
    assert object_store.delete("published", key) >= 1
    assert object_store.versions("published", key) == []


def test_bucket_prefix_must_make_valid_names(s3_server: S3ServerHandle) -> None:
    with pytest.raises(ValueError, match="invalid bucket name"):
        s3_server.store(bucket_prefix="Bad_Prefix")
    assert uuid.UUID(JOB)
