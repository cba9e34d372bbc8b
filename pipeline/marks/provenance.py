"""C2PA provenance: sign the final MP4 with what made it, and read a manifest back with a verdict.

Signing is the last step of publishing: any later ffmpeg pass (even `-c copy`) strips the manifest.
The manifest carries a `c2pa.created` action with digitalSourceType trainedAlgorithmicMedia, the model
and its sha256, the portrait and the driving video as `inputTo` ingredients with their sha256 (no
thumbnails: the subject's source photo must not travel inside the published file), the consent id and
version, and a `c2pa.soft-binding` assertion that names the invisible watermark and its payload.

Certificates: c2pa accepts only a CA-issued certificate with KeyUsage digitalSignature and EKU
emailProtection. For development `ensure_dev_identity` makes a local CA and such a certificate on
first use; production passes its own certificate chain and key to `load_identity`, which refuses an
unreadable, expired or mismatched pair with a one-line error before anything is signed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import c2pa
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.errors import InputError, PermanentError, PipelineError

logger = logging.getLogger(__name__)

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "com.likeness.generation"
SOFT_BINDING_ALG = "com.likeness.watermark.dwtdctsvd-crc24.v1"
CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE = "ca.pem", "ca.key", "signer.pem", "signer.key"
ValidationState = Literal["Trusted", "Valid", "Invalid", "absent"]


class SigningCertificateError(PermanentError):
    """The signing certificate or key cannot be used (unreadable, expired, wrong kind, not matching)."""


class ProvenanceError(PipelineError):
    """c2pa failed to sign or read a file; the message is the library's first line."""


@dataclass(frozen=True)
class SigningIdentity:
    """A usable certificate chain (leaf first) and private key, both PEM, plus the algorithm c2pa needs."""

    cert_chain_pem: bytes
    key_pem: bytes
    alg: str
    subject: str
    not_after: dt.datetime
    ca_pem: bytes | None = None


@dataclass(frozen=True)
class Ingredient:
    """An input of the render: a file name for the manifest and its content hash."""

    path: Path
    sha256: str
    role: str  # "portrait" or "driving video"


@dataclass(frozen=True)
class ProvenanceClaims:
    """What the manifest states about the video (ids and hashes only; no personal names)."""

    title: str
    job_id: str
    publication_id: str
    consent_id: str
    consent_version: int
    model_name: str
    model_sha256: str
    watermark_payload: int
    watermark_method: str
    ingredients: tuple[Ingredient, ...] = ()
    label_text: str | None = None
    generator_version: str = "0.1.0"
    model_version: str = ""  # the registered model's version (governance.models_registry); "" if unknown


@dataclass(frozen=True)
class ManifestReport:
    """A manifest read back: the verdict, our claims (if the manifest is ours) and failure codes."""

    state: ValidationState
    generation: dict[str, Any] = field(default_factory=dict)
    soft_binding: dict[str, Any] = field(default_factory=dict)
    ingredients: tuple[dict[str, Any], ...] = ()
    actions: tuple[str, ...] = ()
    signer: str | None = None
    failures: tuple[str, ...] = ()
    label: str | None = None


# -- certificates ------------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "likeness development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_dev_ca(directory: Path, *, now: dt.datetime | None = None, leaf_days: int = 365) -> None:
    """Write a fresh CA and an ES256 signing certificate it issued into `directory` (keys 0600)."""
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("likeness development CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("likeness development signer"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=leaf_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / CA_FILE, _pem(ca), 0o644)
    _write(directory / CA_KEY_FILE, _key_pem(ca_key), 0o600)
    _write(directory / CERT_FILE, _pem(leaf) + _pem(ca), 0o644)
    _write(directory / KEY_FILE, _key_pem(key), 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def ensure_dev_identity(directory: Path) -> SigningIdentity:
    """The local development identity under `directory`, made on first use (atomically).

    Two processes racing here both end up with the same files: the CA is built in a private
    temporary folder and moved into place with one rename.
    """
    directory = Path(directory)
    if not (directory / KEY_FILE).exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".signing-", dir=directory.parent))
        make_dev_ca(staging)
        try:
            staging.rename(directory)
            logger.info("made a local development CA and signing certificate in %s", directory)
        except OSError:
            for child in staging.iterdir():
                child.unlink()
            staging.rmdir()
    identity = load_identity(directory / CERT_FILE, directory / KEY_FILE)
    return SigningIdentity(
        identity.cert_chain_pem,
        identity.key_pem,
        identity.alg,
        identity.subject,
        identity.not_after,
        (directory / CA_FILE).read_bytes(),
    )


def load_identity(cert_path: Path, key_path: Path, *, now: dt.datetime | None = None) -> SigningIdentity:
    """Load and check a certificate chain and its private key before anything is signed.

    Raises:
        SigningCertificateError: unreadable file, not PEM, expired or not yet valid, self-signed,
            missing digitalSignature or emailProtection, or the key does not match the certificate.
    """
    now = now or dt.datetime.now(dt.UTC)
    cert_path, key_path = Path(cert_path), Path(key_path)
    chain_pem = _read(cert_path, "signing certificate")
    key_pem = _read(key_path, "signing key")
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise SigningCertificateError(f"signing certificate {cert_path} is not a PEM certificate") from None
    leaf = chain[0]
    if now > leaf.not_valid_after_utc:
        raise SigningCertificateError(
            f"signing certificate {cert_path} expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
        )
    if now < leaf.not_valid_before_utc:
        raise SigningCertificateError(
            f"signing certificate {cert_path} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}"
        )
    if leaf.issuer == leaf.subject:
        raise SigningCertificateError(
            f"signing certificate {cert_path} is self-signed; c2pa needs a CA-issued one"
        )
    _require_usage(leaf, cert_path)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningCertificateError(
            f"signing key {key_path} is not an unencrypted PEM private key"
        ) from None
    public = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if (
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        != public
    ):
        raise SigningCertificateError(f"signing key {key_path} does not match certificate {cert_path}")
    alg = _algorithm(key, key_path)
    subject = leaf.subject.rfc4514_string()
    return SigningIdentity(chain_pem, key_pem, alg, subject, leaf.not_valid_after_utc)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SigningCertificateError(f"cannot read {what} {path}: {exc.strerror}") from None


def _require_usage(leaf: x509.Certificate, path: Path) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise SigningCertificateError(
            f"signing certificate {path} lacks KeyUsage or ExtendedKeyUsage extensions"
        ) from None
    if not usage.digital_signature:
        raise SigningCertificateError(f"signing certificate {path} lacks KeyUsage digitalSignature")
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku:
        raise SigningCertificateError(f"signing certificate {path} lacks EKU emailProtection")


def _algorithm(key: object, path: Path) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(key.curve.name, "")
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise SigningCertificateError(f"signing key {path} must be an EC (P-256/384/521) or RSA key")


# -- signing and reading -----------------------------------------------------------------------------


def _context(trust_anchors: bytes | None = None) -> c2pa.Context:
    config: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors:
        config["verify"] = {"verify_trust": True}
        config["trust"] = {"trust_anchors": trust_anchors.decode("ascii")}
    return c2pa.Context(settings=c2pa.Settings.from_dict(config))


def payload_b64(payload: int) -> str:
    """The soft-binding value: the 32-bit payload, big-endian, base64."""
    return base64.b64encode(payload.to_bytes(4, "big")).decode("ascii")


def _manifest(claims: ProvenanceClaims) -> dict[str, Any]:
    created: dict[str, Any] = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": {"name": "likeness", "version": claims.generator_version},
        "parameters": {
            "model": claims.model_name,
            "model_version": claims.model_version,
            "model_sha256": claims.model_sha256,
        },
    }
    actions = [
        created,
        {
            "action": "c2pa.watermarked",
            "parameters": {"description": f"invisible {claims.watermark_method} mark"},
        },
    ]
    if claims.label_text:
        actions.append(
            {"action": "c2pa.edited", "parameters": {"description": f"visible label: {claims.label_text}"}}
        )
    return {
        "claim_generator_info": [{"name": "likeness", "version": claims.generator_version}],
        "title": claims.title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": actions}},
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": SOFT_BINDING_ALG,
                    "blocks": [{"scope": {}, "value": payload_b64(claims.watermark_payload)}],
                },
            },
            {
                "label": GENERATION_LABEL,
                "data": {
                    "job_id": claims.job_id,
                    "publication_id": claims.publication_id,
                    "consent_id": claims.consent_id,
                    "consent_version": claims.consent_version,
                    "model": claims.model_name,
                    "model_version": claims.model_version,
                    "model_sha256": claims.model_sha256,
                    "watermark_payload": claims.watermark_payload,
                    "watermark_method": claims.watermark_method,
                    "inputs": {ing.role: ing.sha256 for ing in claims.ingredients},
                },
            },
        ],
    }


def sign_video(src: Path, dest: Path, *, identity: SigningIdentity, claims: ProvenanceClaims) -> Path:
    """Embed a signed manifest into a copy of the MP4 `src` at `dest` (nothing left on failure)."""
    src, dest = Path(src), Path(dest)
    if not src.is_file():
        raise InputError(f"video not found: {src}")
    partial = dest.with_name(f".{dest.name}.part.mp4")
    try:
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(identity.alg.encode(), identity.cert_chain_pem, identity.key_pem, None)
        )
        with c2pa.Builder(_manifest(claims), context=_context()) as builder:
            for ingredient in claims.ingredients:
                with open(ingredient.path, "rb") as handle:
                    builder.add_ingredient(
                        {
                            "title": ingredient.path.name,
                            "relationship": "inputTo",
                            "description": ingredient.role,
                            "metadata": {"sha256": ingredient.sha256},
                        },
                        _mime(ingredient.path),
                        handle,
                    )
            with open(src, "rb") as source, open(partial, "w+b") as target:
                builder.sign(signer, "video/mp4", source, target)
    except c2pa.C2paError as exc:
        partial.unlink(missing_ok=True)
        raise ProvenanceError(f"C2PA signing of {src.name} failed: {_first_line(exc)}") from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from None
    partial.replace(dest)
    logger.info("signed %s as %s", dest.name, identity.subject)
    return dest


def _mime(path: Path) -> str:
    return {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".mp4": "video/mp4",
        ".mov": "video/quicktime",
        ".webp": "image/webp",
    }.get(path.suffix.lower(), "application/octet-stream")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def read_manifest(path: Path, *, trust_anchors: bytes | None = None) -> ManifestReport:
    """Read and validate the manifest of `path`.

    `state` is `Trusted` (signature good, chain ends at a given trust anchor), `Valid` (signature good,
    signer not trusted), `Invalid` (the file or manifest was altered, or the signature fails), or
    `absent` (no manifest: never signed, or stripped by a re-encode).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    try:
        with open(path, "rb") as handle:
            reader = c2pa.Reader.try_create(
                _mime(path) if path.suffix else "video/mp4", handle, None, _context(trust_anchors)
            )
            if reader is None:
                return ManifestReport("absent")
            with reader:
                state = reader.get_validation_state() or "Invalid"
                manifest = reader.get_active_manifest() or {}
                results = reader.get_validation_results() or {}
    except c2pa.C2paError as exc:
        logger.info("manifest of %s unreadable: %s", path.name, _first_line(exc))
        return ManifestReport("Invalid", failures=(_first_line(exc),))
    return _report(state, manifest, results)


def _report(state: str, manifest: dict[str, Any], results: dict[str, Any]) -> ManifestReport:
    assertions = {
        a.get("label", "").split(".v")[0]
        if a.get("label", "").startswith("c2pa.actions")
        else a.get("label", ""): a.get("data", {})
        for a in manifest.get("assertions", [])
    }
    actions = tuple(a.get("action", "") for a in assertions.get("c2pa.actions", {}).get("actions", []))
    failures = tuple(
        item.get("code", "") for item in (results.get("activeManifest") or {}).get("failure", [])
    )
    verdict: ValidationState = state if state in ("Trusted", "Valid", "Invalid") else "Invalid"  # type: ignore[assignment]
    signature = manifest.get("signature_info") or {}
    return ManifestReport(
        state=verdict,
        generation=dict(assertions.get(GENERATION_LABEL, {})),
        soft_binding=dict(assertions.get("c2pa.soft-binding", {})),
        ingredients=tuple(manifest.get("ingredients", [])),
        actions=actions,
        signer=signature.get("common_name") or signature.get("issuer"),
        failures=failures,
        label=manifest.get("label"),
    )


def soft_binding_payload(report: ManifestReport) -> int | None:
    """The watermark payload a manifest claims in its soft-binding assertion, if it is ours."""
    if report.soft_binding.get("alg") != SOFT_BINDING_ALG:
        return None
    blocks = report.soft_binding.get("blocks") or []
    try:
        return int.from_bytes(base64.b64decode(blocks[0]["value"]), "big")
    except (IndexError, KeyError, ValueError, TypeError):
        return None


def describe(report: ManifestReport) -> str:
    """A one-line summary for logs and the CLI."""
    return json.dumps({"state": report.state, "actions": list(report.actions), "signer": report.signer})
