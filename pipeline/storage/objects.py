"""Object storage for inputs, quarantined renders and published videos, through the minio S3 client.

Every object carries its SHA-256 in its metadata and is read back after upload; keys are deterministic
per job so a retried task overwrites (or finds) its object instead of duplicating it. Failures are
sorted for the flows' retry policy: an unreachable server is `StorageUnavailable` (transient), wrong
credentials or a missing bucket are permanent, a bad file is an `InputError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.versioningconfig import VersioningConfig

from models.digest import sha256_file
from pipeline.errors import InputError, PermanentError, PipelineError, TransientError

logger = logging.getLogger(__name__)


class _NoRetryChatter(logging.Filter):
    """Drop urllib3's "Retrying (...) after connection broken" warnings: the store's own error (e.g.
    `StorageUnavailable: object storage at ... unreachable`) says the same once, so an operator sees one
    line, not a warning per attempt beside it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Retrying (")


logging.getLogger("urllib3.connectionpool").addFilter(_NoRetryChatter())

BucketRole = Literal["inputs", "quarantine", "published"]
BUCKET_ROLES: tuple[BucketRole, ...] = ("inputs", "quarantine", "published")
SHA256_META = "sha256"
_CHUNK = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_PERMISSION_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
}
_TRANSIENT_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "RequestTimeTooSkewed",
}


class StorageError(PipelineError):
    """Base of the storage errors that are neither transient nor the caller's input."""


class StorageUnavailable(TransientError):
    """The S3 endpoint is down, unreachable or overloaded: retry later."""


class StoragePermissionError(PermanentError):
    """The credentials are wrong or lack a permission: fix the configuration, retrying will not help."""


class BucketMissingError(PermanentError):
    """A bucket the project needs does not exist (run `ensure_buckets`, or check the prefix)."""


class ObjectMissingError(PermanentError):
    """The object (or version) asked for does not exist."""


class IntegrityError(PermanentError):
    """Stored bytes do not hash to the SHA-256 recorded with them."""


class UploadCorrupted(TransientError):
    """The bytes read back after an upload differ from the file: the bad version was removed; retry."""


class ObjectTooLarge(InputError):
    """The file is over the configured object size limit."""


class ChecksumMismatch(InputError):
    """The file no longer hashes to the SHA-256 the caller expected (changed since it was recorded)."""


@dataclass(frozen=True)
class StoredObject:
    """An object as stored: where, which bytes (sha256, size), which version, with which metadata."""

    bucket: str
    key: str
    sha256: str
    size: int
    version_id: str | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BucketInfo:
    """A bucket's name and the protections the server gave it."""

    role: str
    name: str
    versioned: bool
    object_lock: bool


@dataclass(frozen=True)
class TakedownResult:
    """What a takedown did: deleted versions, versions kept under hold, and the delete marker if any."""

    bucket: str
    key: str
    deleted_versions: tuple[str, ...]
    held_versions: tuple[str, ...]
    delete_marker: str | None

    @property
    def publicly_gone(self) -> bool:
        """Whether a plain GET of the key now fails (no current version is served)."""
        return not self.held_versions or self.delete_marker is not None


def object_key(job_id: str, name: str) -> str:
    """The one key scheme: `jobs/<job uuid>/<file name>`, so a retry of the same job hits the same key.

    Raises:
        ValueError: `job_id` is not a UUID or `name` is not a plain file name.
    """
    try:
        canonical = str(uuid.UUID(job_id))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"`job_id` must be a UUID, got {job_id!r}") from None
    if not _NAME.match(name) or name in {".", ".."}:
        raise ValueError(f"`name` must be a plain file name, got {name!r}")
    return f"jobs/{canonical}/{name}"


def make_http_client(
    *, secure: bool, connect_timeout: float, read_timeout: float, retries: int
) -> urllib3.PoolManager:
    """A pool that fails fast: a down server must surface in seconds, not minio's 5-minute default."""
    retry = urllib3.Retry(
        total=retries,
        connect=retries,
        read=0,
        status=retries,
        backoff_factor=0.2,
        status_forcelist=[502, 503, 504],
        raise_on_status=False,
    )
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    if secure:
        return urllib3.PoolManager(
            timeout=timeout,
            retries=retry,
            maxsize=8,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
    return urllib3.PoolManager(timeout=timeout, retries=retry, maxsize=8)


def probe_ready(endpoint: str, access_key: str, secret_key: str) -> bool:
    """Whether an authenticated ListBuckets succeeds right now (used while a local server starts)."""
    client = Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=False,
        region="us-east-1",
        http_client=make_http_client(secure=False, connect_timeout=0.5, read_timeout=2.0, retries=0),
    )
    try:
        client.list_buckets()
    except (urllib3.exceptions.HTTPError, OSError, S3Error, ServerError, InvalidResponseError):
        return False
    return True


class ObjectStore:
    """The project's three buckets on one S3 endpoint.

    Args:
        endpoint: `host:port` of the S3 server.
        access_key: S3 access key.
        secret_key: S3 secret key (never logged).
        secure: use HTTPS (production).
        bucket_prefix: bucket names are `<prefix>-inputs`, `<prefix>-quarantine`, `<prefix>-published`.
        max_object_bytes: files larger than this are refused before any byte is sent.
        region: S3 region; fixed so the client skips a GetBucketLocation round trip.
        connect_timeout / read_timeout / retries: how fast an unreachable server is reported.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        secure: bool = False,
        bucket_prefix: str = "likeness",
        max_object_bytes: int = 2 * 1024**3,
        region: str = "us-east-1",
        connect_timeout: float = 2.0,
        read_timeout: float = 30.0,
        retries: int = 1,
    ) -> None:
        if max_object_bytes <= 0:
            raise ValueError("`max_object_bytes` must be positive")
        self.endpoint = endpoint
        self.bucket_prefix = bucket_prefix
        self.max_object_bytes = max_object_bytes
        self._access_key = access_key
        self.buckets: dict[str, str] = {role: f"{bucket_prefix}-{role}" for role in BUCKET_ROLES}
        for name in self.buckets.values():
            if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", name):
                raise ValueError(f"`bucket_prefix` gives an invalid bucket name {name!r}")
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=make_http_client(
                secure=secure, connect_timeout=connect_timeout, read_timeout=read_timeout, retries=retries
            ),
        )

    # -- error translation --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, operation: str, bucket: str | None = None, key: str | None = None) -> Iterator[None]:
        """Translate client and network failures into the pipeline's error family (one line each)."""
        where = f"{bucket}/{key}" if key else (bucket or self.endpoint)
        try:
            yield
        except S3Error as exc:
            code = exc.code or "unknown"
            if code == "NoSuchBucket":
                raise BucketMissingError(
                    f"bucket {exc.bucket_name or bucket!r} does not exist on {self.endpoint} ({operation})"
                ) from None
            if code in {"NoSuchKey", "NoSuchVersion"}:
                raise ObjectMissingError(f"object {where} not found ({operation})") from None
            if code in _PERMISSION_CODES:
                raise StoragePermissionError(
                    f"object storage refused {operation} on {where}: {code} "
                    f"(check the access key {self._access_key!r} and its secret)"
                ) from None
            if code in _TRANSIENT_CODES:
                raise StorageUnavailable(
                    f"object storage at {self.endpoint} unavailable during {operation} on {where}: {code}"
                ) from None
            raise StorageError(f"object storage error during {operation} on {where}: {code}") from None
        except (ServerError, InvalidResponseError) as exc:
            status = getattr(exc, "status_code", None) or getattr(exc, "_code", "?")
            raise StorageUnavailable(
                f"object storage at {self.endpoint} failed {operation} on {where} (HTTP {status})"
            ) from None
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
            reason = type(getattr(exc, "reason", None) or exc).__name__
            raise StorageUnavailable(
                f"object storage at {self.endpoint} unreachable during {operation} on {where} ({reason})"
            ) from None

    def bucket_name(self, bucket: str) -> str:
        """Accept a role (`published`) or one of our own bucket names; refuse anything else."""
        if bucket in self.buckets:
            return self.buckets[bucket]
        if bucket in self.buckets.values():
            return bucket
        raise ValueError(f"`bucket` must be one of {sorted(self.buckets)}, got {bucket!r}")

    # -- buckets ------------------------------------------------------------------------------------

    def ensure_buckets(self) -> dict[str, BucketInfo]:
        """Create missing buckets: `published` versioned with object lock where the server offers it.

        Idempotent; returns what each bucket actually has, so callers (and docs) can tell whether
        legal holds are enforced on this server.
        """
        infos: dict[str, BucketInfo] = {}
        for role, name in self.buckets.items():
            with self._errors("ensure bucket", name):
                exists = self.client.bucket_exists(name)
                if not exists:
                    self._create(role, name)
                versioned = self.client.get_bucket_versioning(name).status == ENABLED
                if role in ("published", "quarantine") and not versioned:
                    self.client.set_bucket_versioning(name, VersioningConfig(ENABLED))
                    versioned = True
                infos[role] = BucketInfo(role, name, versioned, self._has_object_lock(name))
        return infos

    def _create(self, role: str, name: str) -> None:
        if role == "published":
            try:
                self.client.make_bucket(name, object_lock=True)
                return
            except S3Error as exc:
                if exc.code in _PERMISSION_CODES or exc.code == "BucketAlreadyOwnedByYou":
                    raise
                logger.warning("object lock refused for %s (%s); versioning only", name, exc.code)
        self.client.make_bucket(name)

    def _has_object_lock(self, name: str) -> bool:
        try:
            self.client.get_object_lock_config(name)
        except S3Error as exc:
            if exc.code in _PERMISSION_CODES or exc.code == "NoSuchBucket":
                raise
            return False
        return True

    def check_bucket(self, bucket: str) -> None:
        """Raise `BucketMissingError` unless the bucket exists (credentials are checked on the way)."""
        name = self.bucket_name(bucket)
        with self._errors("check bucket", name):
            if not self.client.bucket_exists(name):
                raise BucketMissingError(f"bucket {name!r} does not exist on {self.endpoint}")

    # -- objects ------------------------------------------------------------------------------------

    def stat(self, bucket: str, key: str, *, version_id: str | None = None) -> StoredObject:
        """Metadata of the current (or given) version; `ObjectMissingError` if there is none."""
        name = self.bucket_name(bucket)
        with self._errors("stat", name, key):
            info = self.client.stat_object(name, key, version_id=version_id)
        metadata = _user_metadata(info.metadata)
        return StoredObject(
            name, key, metadata.get(SHA256_META, ""), int(info.size or 0), info.version_id, metadata
        )

    def exists(self, bucket: str, key: str) -> bool:
        """Whether a current version exists (a delete marker counts as absent)."""
        try:
            self.stat(bucket, key)
        except ObjectMissingError:
            return False
        return True

    def put_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        metadata: dict[str, str] | None = None,
        expected_sha256: str | None = None,
        content_type: str | None = None,
    ) -> StoredObject:
        """Upload a file under a deterministic key, verify it by reading it back, return what is stored.

        If the current object at `key` already has the same SHA-256 it is returned as is, so a retried
        task does not add a version. Metadata keys are lower-case `a-z0-9-` (e.g. `job-id`,
        `consent-version`, `model-sha256`); `sha256` is added here.

        Raises:
            ObjectTooLarge / ChecksumMismatch: the file is refused before any byte is sent.
            UploadCorrupted: the read-back differed; the bad version was removed.
            StorageUnavailable / StoragePermissionError / BucketMissingError: see the class docs.
        """
        name = self.bucket_name(bucket)
        path = Path(path)
        meta = _check_metadata(metadata or {})
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
        if size > self.max_object_bytes:
            raise ObjectTooLarge(
                f"{path.name} is {size} bytes, over the object size limit of {self.max_object_bytes} bytes"
            )
        digest = sha256_file(path)
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise ChecksumMismatch(
                f"{path.name} has sha256 {digest[:12]}…, expected "
                f"{expected_sha256.lower()[:12]}…; refusing to upload"
            )
        with contextlib.suppress(ObjectMissingError):
            current = self.stat(name, key)
            if current.sha256 == digest and current.size == size:
                logger.info("%s/%s already holds sha256 %s; not uploading again", name, key, digest[:12])
                return current
        meta[SHA256_META] = digest
        ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with self._errors("upload", name, key):
            result = self.client.fput_object(name, key, str(path), content_type=ctype, metadata=dict(meta))
        stored = StoredObject(name, key, digest, size, result.version_id, meta)
        read_back = self._hash_remote(name, key, result.version_id)
        if read_back != digest:
            self._remove_version(name, key, result.version_id)
            raise UploadCorrupted(
                f"{name}/{key} read back with sha256 {read_back[:12]}…, "
                f"uploaded {digest[:12]}…; removed the bad version"
            )
        logger.info("stored %s/%s (%d bytes, sha256 %s)", name, key, size, digest[:12])
        return stored

    def _hash_remote(self, name: str, key: str, version_id: str | None) -> str:
        digest = hashlib.sha256()
        with self._errors("verify upload", name, key):
            response = self.client.get_object(name, key, version_id=version_id)
            try:
                for chunk in response.stream(_CHUNK):
                    digest.update(chunk)
            finally:
                response.close()
                response.release_conn()
        return digest.hexdigest()

    def _remove_version(self, name: str, key: str, version_id: str | None) -> None:
        with self._errors("remove version", name, key):
            self.client.remove_object(name, key, version_id=version_id)

    def get_file(self, bucket: str, key: str, dest: Path, *, version_id: str | None = None) -> StoredObject:
        """Download to `dest` atomically and check the bytes against the stored SHA-256.

        Nothing is left at `dest` on failure (the download goes to a temporary file beside it).

        Raises:
            IntegrityError: the bytes do not match the recorded SHA-256 (or none was recorded).
        """
        info = self.stat(bucket, key, version_id=version_id)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as handle, self._errors("download", info.bucket, key):
                response = self.client.get_object(info.bucket, key, version_id=info.version_id)
                try:
                    for chunk in response.stream(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
                finally:
                    response.close()
                    response.release_conn()
            if not info.sha256 or digest.hexdigest() != info.sha256:
                raise IntegrityError(
                    f"{info.bucket}/{key} has sha256 {digest.hexdigest()[:12]}…, "
                    f"recorded {info.sha256[:12] or 'none'}…; download refused"
                )
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return info

    def versions(self, bucket: str, key: str) -> list[tuple[str | None, bool]]:
        """All versions of exactly `key` as (version_id, is_delete_marker), newest first."""
        name = self.bucket_name(bucket)
        with self._errors("list versions", name, key):
            found = [
                (obj.version_id, bool(obj.is_delete_marker))
                for obj in self.client.list_objects(name, prefix=key, include_version=True)
                if obj.object_name == key
            ]
        return found

    def delete(self, bucket: str, key: str) -> int:
        """Remove every version of `key` (and its delete markers). Returns how many were removed.

        Raises:
            StoragePermissionError: a version is under legal hold or retention.
        """
        name = self.bucket_name(bucket)
        removed = 0
        for version_id, _marker in self.versions(name, key):
            self._remove_version(name, key, version_id)
            removed += 1
        return removed

    def set_legal_hold(self, bucket: str, key: str, *, version_id: str | None, on: bool) -> None:
        """Turn a legal hold on or off (the bucket must have object lock)."""
        name = self.bucket_name(bucket)
        with self._errors("legal hold", name, key):
            if on:
                self.client.enable_object_legal_hold(name, key, version_id=version_id)
            else:
                self.client.disable_object_legal_hold(name, key, version_id=version_id)

    def takedown(self, bucket: str, key: str, *, retain: bool = False) -> TakedownResult:
        """Stop serving `key`: delete every version, or keep evidence under legal hold.

        With `retain=False` each version is deleted; versions the server refuses to delete (legal hold,
        retention) are kept and hidden behind a delete marker. With `retain=True` every version is put
        under legal hold (where the bucket has object lock) and a delete marker hides them.
        """
        name = self.bucket_name(bucket)
        deleted: list[str] = []
        held: list[str] = []
        lockable = retain and self._bucket_locked(name)
        for version_id, is_marker in self.versions(name, key):
            vid = version_id or "null"
            if is_marker:
                if not retain:
                    self._remove_version(name, key, version_id)
                continue
            if retain:
                if lockable:
                    self.set_legal_hold(name, key, version_id=version_id, on=True)
                held.append(vid)
                continue
            try:
                self._remove_version(name, key, version_id)
                deleted.append(vid)
            except StoragePermissionError:
                held.append(vid)
        marker: str | None = None
        if held:
            with self._errors("delete marker", name, key):
                self.client.remove_object(name, key)
            marker = next((v for v, m in self.versions(name, key) if m), None) or "null"
        logger.info("took down %s/%s: %d deleted, %d held", name, key, len(deleted), len(held))
        return TakedownResult(name, key, tuple(deleted), tuple(held), marker)

    def _bucket_locked(self, name: str) -> bool:
        with self._errors("object lock config", name):
            return self._has_object_lock(name)


def _user_metadata(headers: object) -> dict[str, str]:
    """The `x-amz-meta-*` headers of a stat, with the prefix removed and keys lower-cased."""
    out: dict[str, str] = {}
    items = headers.items() if hasattr(headers, "items") else []
    for header, value in items:
        lowered = str(header).lower()
        if lowered.startswith("x-amz-meta-"):
            out[lowered[len("x-amz-meta-") :]] = str(value)
    return out


def _check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Refuse metadata that S3 would mangle: lower-case ASCII keys, printable ASCII values."""
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not _META_KEY.match(key) or key == SHA256_META:
            raise ValueError(f"metadata key {key!r} must be lower-case a-z0-9- and not {SHA256_META!r}")
        text = str(value)
        if not text.isascii() or not text.isprintable() or len(text) > 512:
            raise ValueError(f"metadata value for {key!r} must be printable ASCII up to 512 characters")
        checked[key] = text
    return checked
