"""The `audit` bucket: signed checkpoints of the audit log, kept outside the database, write-once.

The bucket (`<prefix>-audit`) is versioned and made with object lock where the server offers it
(SeaweedFS does); every checkpoint is stored under retention in COMPLIANCE mode, so neither the log's
operator nor an administrator of the database can delete or shorten it before the retention ends. A
later PUT on the same key only adds a version, and readers list every version, so a replaced
checkpoint is seen next to the original. Keys are `checkpoints/<tree size, 20 digits>.txt`: they list
in tree order, and a checkpoint of a size already stored is not written again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from minio.commonconfig import COMPLIANCE, ENABLED
from minio.error import S3Error
from minio.retention import Retention
from minio.versioningconfig import VersioningConfig

from pipeline.storage.objects import SHA256_META, ObjectMissingError, ObjectStore

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoints/"
MAX_CHECKPOINT_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckpointObject:
    """One stored version of a checkpoint: where it is, and its text."""

    key: str
    version_id: str | None
    text: str

    @property
    def label(self) -> str:
        """How reports name it: key and version."""
        return f"{self.key}@{self.version_id}" if self.version_id and self.version_id != "null" else self.key


def checkpoint_key(size: int) -> str:
    """The object key of the checkpoint of a tree of `size` leaves."""
    return f"{CHECKPOINT_PREFIX}{size:020d}.txt"


class CheckpointStore(ObjectStore):
    """An `ObjectStore` on the same endpoint whose job is the audit bucket (the other buckets untouched)."""

    @property
    def audit_bucket(self) -> str:
        """`<prefix>-audit`."""
        return f"{self.bucket_prefix}-audit"

    def ensure_audit_bucket(self) -> bool:
        """Create the bucket (object lock where offered, else versioning); returns whether it is locked."""
        name = self.audit_bucket
        with self._errors("ensure bucket", name):
            if not self.client.bucket_exists(name):
                try:
                    self.client.make_bucket(name, object_lock=True)
                except S3Error as exc:
                    if exc.code == "BucketAlreadyOwnedByYou":
                        pass
                    else:
                        logger.warning("object lock refused for %s (%s); versioning only", name, exc.code)
                        self.client.make_bucket(name)
            if self.client.get_bucket_versioning(name).status != ENABLED:
                self.client.set_bucket_versioning(name, VersioningConfig(ENABLED))
            return self._has_object_lock(name)

    def put_checkpoint(self, size: int, text: str, *, retain_days: int) -> CheckpointObject | None:
        """Store a checkpoint note under its size's key, locked for `retain_days` (compliance mode).

        Returns None without writing when that key already holds this exact text (a retry, or a second
        writer that signed the same tree head).
        """
        name, key = self.audit_bucket, checkpoint_key(size)
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        with contextlib.suppress(ObjectMissingError):
            if self._stat_audit(key).get(SHA256_META) == digest:
                return None
        locked = self.ensure_audit_bucket()
        retention = None
        if locked:
            until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=retain_days)
            retention = Retention(COMPLIANCE, until)
        with self._errors("write checkpoint", name, key):
            result = self.client.put_object(
                name,
                key,
                io.BytesIO(data),
                len(data),
                content_type="text/plain",
                metadata={SHA256_META: digest},
                retention=retention,
            )
        logger.info(
            "stored checkpoint %s/%s (size %d)%s", name, key, size, " under compliance lock" if locked else ""
        )
        return CheckpointObject(key, result.version_id, text)

    def _stat_audit(self, key: str) -> dict[str, str]:
        from pipeline.storage.objects import _user_metadata

        name = self.audit_bucket
        with self._errors("stat", name, key):
            info = self.client.stat_object(name, key)
        return _user_metadata(info.metadata)

    def checkpoints(self) -> Iterator[CheckpointObject]:
        """Every version of every checkpoint object (replaced ones too), in key order.

        Raises BucketMissingError when no checkpoint was ever written (the bucket does not exist).
        """
        name = self.audit_bucket
        with self._errors("list checkpoints", name):
            listed = [
                (obj.object_name, obj.version_id)
                for obj in self.client.list_objects(
                    name, prefix=CHECKPOINT_PREFIX, recursive=True, include_version=True
                )
                if not obj.is_delete_marker
            ]
        for key, version_id in sorted(listed, key=lambda item: (item[0] or "", item[1] or "")):
            yield CheckpointObject(str(key), version_id, self._read(str(key), version_id))

    def _read(self, key: str, version_id: str | None) -> str:
        name = self.audit_bucket
        with self._errors("read checkpoint", name, key):
            response = self.client.get_object(name, key, version_id=version_id)
            try:
                data = response.read(MAX_CHECKPOINT_BYTES + 1)
            finally:
                response.close()
                response.release_conn()
        return data[:MAX_CHECKPOINT_BYTES].decode("utf-8", errors="replace")
