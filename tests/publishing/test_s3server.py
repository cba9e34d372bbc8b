"""The local SeaweedFS lifecycle, and what the store reports while the server is down."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.errors import TransientError
from pipeline.storage.local_s3 import LocalS3Server, choose_ports
from pipeline.storage.objects import ObjectStore, StorageUnavailable, object_key
from tests.fixtures.storage import ACCESS_KEY, SECRET_KEY, S3ServerHandle

pytestmark = [pytest.mark.s3, pytest.mark.slow]

JOB = "0d5e8c1a-7a43-4f0e-8a51-3f6b8e2d9c10"


def test_server_is_loopback_only_with_private_credentials(s3_server: S3ServerHandle) -> None:
    state = s3_server.server.read_state()
    assert state is not None
    assert state.endpoint.startswith("127.0.0.1:")
    config = s3_server.server.root / "s3.json"
    assert os.stat(config).st_mode & 0o777 == 0o600
    identity = json.loads(config.read_text())["identities"][0]
    assert identity["credentials"][0]["accessKey"] == ACCESS_KEY
    cmdline = Path(f"/proc/{state.pid}/cmdline").read_bytes().split(b"\0")
    assert b"-ip.bind=127.0.0.1" in cmdline
    assert b"-master.telemetry=false" in cmdline
    # every service port and its grpc twin are pinned (so parallel servers never collide)
    assert set(state.ports) == {"master", "volume", "filer", "s3", "admin"}
    for service, port in state.ports.items():
        assert f"-{service}.port={port}".encode() in cmdline
        assert f"-{service}.port.grpc={port + 10000}".encode() in cmdline


def test_choose_ports_gives_distinct_pairs() -> None:
    ports = choose_ports()
    taken = [p for port in ports.values() for p in (port, port + 10000)]
    assert len(set(taken)) == len(taken)
    fixed = choose_ports(s3_port=ports["s3"])
    assert fixed["s3"] == ports["s3"]


def test_status_is_visible_from_another_instance_and_stop_works(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    first = LocalS3Server(root, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    assert first.status().running is False
    state = first.start()
    try:
        other = LocalS3Server(root, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        status = other.status()
        assert status.running and status.pid == state.pid and status.endpoint == state.endpoint
        assert other.start().pid == state.pid  # `up` twice does not start a second server
    finally:
        assert LocalS3Server(root, access_key=ACCESS_KEY, secret_key=SECRET_KEY).stop() is True
    after = first.status()
    assert after.running is False and after.reason.startswith("not started")
    assert not (root / "server.json").exists()
    assert not Path(f"/proc/{state.pid}").exists()


def test_stale_state_file_is_reported_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "s3"
    root.mkdir()
    (root / "server.json").write_text(
        json.dumps(
            {"pid": 999_999_9, "endpoint": "127.0.0.1:1", "ports": {}, "data_dir": str(root), "started_at": 0}
        )
    )
    status = LocalS3Server(root, access_key=ACCESS_KEY, secret_key=SECRET_KEY).status()
    assert status.running is False
    assert "stale state" in status.reason


def test_server_down_is_transient_and_retry_after_restart_succeeds(tmp_path: Path) -> None:
    port = choose_ports()["s3"]
    server = LocalS3Server(tmp_path / "s3", access_key=ACCESS_KEY, secret_key=SECRET_KEY, s3_port=port)
    server.start()
    try:
        store = ObjectStore(
            f"127.0.0.1:{port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY, bucket_prefix="downtest"
        )
        store.ensure_buckets()
        src = tmp_path / "video.mp4"
        src.write_bytes(b"published bytes")
        key = object_key(JOB, "video.mp4")
        server.kill()  # a crash, mid-test
        with pytest.raises(
            StorageUnavailable, match=f"object storage at 127.0.0.1:{port} unreachable"
        ) as info:
            store.put_file("published", key, src, metadata={"job-id": JOB})
        assert isinstance(info.value, TransientError)
        server.start()
        stored = store.put_file("published", key, src, metadata={"job-id": JOB})
        assert store.stat("published", key).sha256 == stored.sha256
        assert store.stat("published", key).metadata["job-id"] == JOB
    finally:
        server.stop(grace=30.0)
