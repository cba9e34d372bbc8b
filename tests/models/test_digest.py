"""`models.digest.sha256_file` is the plain SHA-256 of a file's bytes, and importing it loads no torch."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path


def test_the_digest_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    from models.digest import sha256_file

    data = bytes(range(256)) * 40_000  # 10 MB: more than one read of the file
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == sha256_file(path)
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_importing_it_loads_no_torch() -> None:
    code = "import sys, models.digest; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
