"""Signed checkpoints of the audit tree, in the C2SP `tlog-checkpoint` and `signed-note` formats.

A checkpoint is three lines (origin, tree size in decimal, root hash in base64) signed with Ed25519 as a
signed note: the text, a blank line, then one line per signature, `— <key name> <base64(key id ||
signature)>`, where the key id is the first four bytes of SHA-256(key name || 0x0A || 0x01 || public
key). A verifier key is written `<name>+<key id hex>+<base64(0x01 || public key)>`, the form other
tools for these formats read. The signing key is a PEM file (settings in production; a development
key under var/ made on first use); it is never stored in the database, and verifying needs only the
public verifier key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from governance.audit.tree import HASH_SIZE

ED25519_ALG = b"\x01"
DEV_KEY_FILE = "audit-ed25519.pem"
_NAME = re.compile(r"^[^\s+]+$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_DASH = "\u2014"


class NoteError(ValueError):
    """A checkpoint or note is malformed, unsigned, signed by another key, or its signature is bad."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log (origin), how many leaves, and the root hash over them."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The note text (what is signed): origin, size and base64 root, each ending in a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint's note text strictly (extension lines after the root are allowed, ignored)."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError(
                "checkpoint text needs origin, size and root hash lines, each ending in a newline"
            )
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or origin != origin.strip():
            raise NoteError("checkpoint has an empty or padded origin line")
        if not _SIZE.match(size):
            raise NoteError(f"checkpoint size {size!r} is not a decimal number")
        try:
            raw = base64.b64decode(root, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError("checkpoint root hash is not base64") from None
        if len(raw) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash is {len(raw)} bytes, not {HASH_SIZE}")
        return cls(origin, int(size), raw)


def key_id(name: str, public: bytes) -> bytes:
    """The four-byte key hash signed-note puts before each signature."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_ALG + public).digest()[:4]


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


class NoteVerifier:
    """Checks signatures of one Ed25519 key, known by name and public key."""

    def __init__(self, name: str, public: bytes) -> None:
        self.name = _check_name(name)
        if len(public) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")
        self.public = public
        self.id = key_id(name, public)
        self._key = Ed25519PublicKey.from_public_bytes(public)

    @classmethod
    def parse(cls, text: str) -> NoteVerifier:
        """From the `<name>+<key id hex>+<base64(0x01 || key)>` form; the id must match the key."""
        parts = text.strip().split("+", 2)  # the base64 key may itself hold "+"
        if len(parts) != 3:
            raise NoteError("a verifier key is written NAME+KEYID+BASE64KEY")
        name, hex_id, encoded = parts
        try:
            raw, given_id = base64.b64decode(encoded, validate=True), bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise NoteError("the verifier key's id or key is not hex/base64") from None
        if not raw.startswith(ED25519_ALG) or len(raw) != 33:
            raise NoteError("the verifier key is not an Ed25519 key")
        verifier = cls(name, raw[1:])
        if verifier.id != given_id:
            raise NoteError(f"the verifier key's id {hex_id} does not match its name and key")
        return verifier

    def key_string(self) -> str:
        """This key in verifier-key form (give it to auditors)."""
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(ED25519_ALG + self.public).decode('ascii')}"

    def open(self, note: str) -> str:
        """The signed text of `note` if this key signed it; `NoteError` naming why not otherwise."""
        text, signatures = split_note(note)
        others: list[str] = []
        for name, sig_id, signature in signatures:
            if name == self.name and sig_id == self.id:
                try:
                    self._key.verify(signature, text.encode("utf-8"))
                except InvalidSignature:
                    raise NoteError(f"the signature by key {self.name} does not verify (altered?)") from None
                return text
            others.append(f"{name} ({sig_id.hex()})")
        raise NoteError(f"not signed by key {self.name} ({self.id.hex()}): signed by {', '.join(others)}")


class NoteSigner:
    """Signs notes with one Ed25519 private key under a key name (the log's origin)."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        self.name = _check_name(name)
        self._key = key
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier = NoteVerifier(name, public)

    def sign(self, text: str) -> str:
        """`text` as a signed note (one signature line)."""
        _check_text(text)
        signature = self._key.sign(text.encode("utf-8"))
        line = base64.b64encode(self.verifier.id + signature).decode("ascii")
        return f"{text}\n{_DASH} {self.name} {line}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end in a newline and hold no blank line")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise NoteError("note text holds control characters")


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """(text, [(key name, key id, signature)]) of a signed note; `NoteError` if it is not one."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    signatures: list[tuple[str, bytes, bytes]] = []
    for line in block[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise NoteError("a signature line is not '— NAME SIGNATURE'")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            raise NoteError("a signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        signatures.append((parts[1], raw[:4], raw[4:]))
    if not signatures:
        raise NoteError("the note carries no signature")
    return text, signatures


def sign_checkpoint(signer: NoteSigner, size: int, root: bytes) -> str:
    """A signed checkpoint note for the tree (`size`, `root`) whose origin is the signer's key name."""
    return signer.sign(Checkpoint(signer.name, size, root).text())


def open_checkpoint(verifier: NoteVerifier, note: str) -> Checkpoint:
    """The checkpoint in `note`, if `verifier`'s key signed it and its origin is the key's name."""
    checkpoint = Checkpoint.parse(verifier.open(note))
    if checkpoint.origin != verifier.name:
        raise NoteError(f"checkpoint is for log {checkpoint.origin!r}, not {verifier.name!r}")
    return checkpoint


# -- keys --------------------------------------------------------------------------------------------------


def load_signer(path: Path, name: str) -> NoteSigner:
    """The Ed25519 private key in PEM file `path` (unencrypted PKCS#8), signing as `name`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise NoteError(f"cannot read the audit signing key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise NoteError(f"audit signing key {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise NoteError(f"audit signing key {path} is not an Ed25519 key")
    return NoteSigner(name, key)


def ensure_dev_signer(directory: Path, name: str) -> NoteSigner:
    """The development signing key under `directory`, made on first use (0600, atomically).

    Two processes racing here end up with the same key: each writes a private temporary file and
    hard-links it into place; the loser's link fails and it reads the winner's file.
    """
    directory = Path(directory)
    path = directory / DEV_KEY_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd, tmp = tempfile.mkstemp(prefix=".audit-key-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return load_signer(path, name)
