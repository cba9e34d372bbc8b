"""Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint): format, interoperability, refusals."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.audit.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    ensure_dev_signer,
    key_id,
    load_signer,
    open_checkpoint,
    sign_checkpoint,
)

# The example of golang.org/x/mod/sumdb/note (the reference implementation of signed notes).
GO_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_a_note_signed_by_the_reference_implementation_verifies() -> None:
    verifier = NoteVerifier.parse(GO_KEY)
    assert verifier.key_string() == GO_KEY
    assert verifier.open(GO_NOTE).startswith("If you think cryptography")
    with pytest.raises(NoteError, match="does not verify"):
        verifier.open(GO_NOTE.replace("problem,", "problem;"))


def test_key_id_and_signature_line_follow_the_spec() -> None:
    signer = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    public = signer.verifier.public
    assert key_id("example.com/log", public) == hashlib.sha256(b"example.com/log\n\x01" + public).digest()[:4]
    note = sign_checkpoint(signer, 12, b"\x01" * 32)
    text, line = note.split("\n\n")
    assert text == "example.com/log\n12\n" + base64.b64encode(b"\x01" * 32).decode()
    dash, name, sig = line.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "example.com/log")
    assert base64.b64decode(sig)[:4] == signer.verifier.id
    assert open_checkpoint(signer.verifier, note) == Checkpoint("example.com/log", 12, b"\x01" * 32)


def test_verifier_keys_round_trip_whatever_their_base64() -> None:
    for _ in range(200):  # base64 of a key often holds '+', which also separates the fields
        verifier = NoteSigner("log", Ed25519PrivateKey.generate()).verifier
        assert NoteVerifier.parse(verifier.key_string()).public == verifier.public


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log\n12\n", "needs origin, size and root hash lines"),
        ("log\n012\n" + base64.b64encode(b"\x00" * 32).decode() + "\n", "is not a decimal number"),
        ("log\n12\n" + base64.b64encode(b"\x00" * 31).decode() + "\n", "is 31 bytes, not 32"),
        ("log\n12\n%%%\n", "is not base64"),
        (" log\n12\n" + base64.b64encode(b"\x00" * 32).decode() + "\n", "empty or padded origin"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(text)


def test_forged_and_foreign_notes_are_refused() -> None:
    ours = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    theirs = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    other_log = NoteSigner("other.org/log", Ed25519PrivateKey.generate())
    note = sign_checkpoint(ours, 3, b"\x02" * 32)
    with pytest.raises(
        NoteError, match=r"not signed by key example.com/log \([0-9a-f]{8}\): signed by example.com/log"
    ):
        open_checkpoint(ours.verifier, sign_checkpoint(theirs, 3, b"\x02" * 32))
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(ours.verifier, note.replace("\n3\n", "\n4\n"))
    with pytest.raises(NoteError, match="no blank line"):
        open_checkpoint(ours.verifier, note.replace("\n\n", "\n"))
    with pytest.raises(NoteError, match="is for log 'example.com/log', not 'other.org/log'"):
        open_checkpoint(
            NoteVerifier(other_log.name, other_log.verifier.public),
            other_log.sign(Checkpoint("example.com/log", 3, b"\x02" * 32).text()),
        )
    with pytest.raises(NoteError, match="does not match its name and key"):
        NoteVerifier.parse(ours.verifier.key_string().replace(ours.verifier.id.hex(), "00000000"))
    with pytest.raises(NoteError, match="without spaces"):
        NoteSigner("bad name", Ed25519PrivateKey.generate())


def test_development_key_is_made_once_private_and_shared_by_racers(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "audit-signing"
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda: keys.append(ensure_dev_signer(folder, "log").verifier.key_string()))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys) == 6
    (path,) = folder.iterdir()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_signer(path, "log").verifier.key_string() == keys[0]
    (tmp_path / "not-a-key.pem").write_text("hello")
    with pytest.raises(NoteError, match="is not an unencrypted PEM private key"):
        load_signer(tmp_path / "not-a-key.pem", "log")
    with pytest.raises(NoteError, match="cannot read the audit signing key"):
        load_signer(tmp_path / "missing.pem", "log")
