"""C2PA signing with the local CA, reading with a trust anchor, and every refused certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from pipeline.errors import PermanentError
from pipeline.marks import provenance
from pipeline.marks.provenance import (
    CA_FILE,
    CERT_FILE,
    KEY_FILE,
    Ingredient,
    ProvenanceClaims,
    SigningCertificateError,
    ensure_dev_identity,
    load_identity,
    make_dev_ca,
    read_manifest,
    sign_video,
    soft_binding_payload,
)
from tests.publishing.conftest import PORTRAIT


def claims(clip: Path) -> ProvenanceClaims:
    return ProvenanceClaims(
        title="video.mp4",
        job_id="job-1",
        publication_id="pub-1",
        consent_id="consent-1",
        consent_version=2,
        model_name="mcnet-vox256",
        model_sha256="ab" * 32,
        watermark_payload=0xC0FFEE01,
        watermark_method="dwtDctSvd",
        label_text="AI-generated",
        ingredients=(
            Ingredient(PORTRAIT, "11" * 32, "portrait"),
            Ingredient(clip, "22" * 32, "driving video"),
        ),
    )


def test_dev_identity_is_made_once_and_signs_a_trusted_manifest(clip: Path, tmp_path: Path) -> None:
    signing = tmp_path / "var" / "signing"
    identity = ensure_dev_identity(signing)
    assert (signing / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert ensure_dev_identity(signing).cert_chain_pem == identity.cert_chain_pem  # reused, not remade
    leaf = x509.load_pem_x509_certificates(identity.cert_chain_pem)[0]
    assert leaf.issuer != leaf.subject
    assert (
        ExtendedKeyUsageOID.EMAIL_PROTECTION
        in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )

    signed = sign_video(clip, tmp_path / "signed.mp4", identity=identity, claims=claims(clip))
    report = read_manifest(signed, trust_anchors=(signing / CA_FILE).read_bytes())
    assert report.state == "Trusted"
    assert report.actions[0] == "c2pa.created" and "c2pa.watermarked" in report.actions
    assert report.generation["model_sha256"] == "ab" * 32
    assert report.generation["consent_version"] == 2
    assert report.generation["inputs"] == {"portrait": "11" * 32, "driving video": "22" * 32}
    assert soft_binding_payload(report) == 0xC0FFEE01
    assert {i["relationship"] for i in report.ingredients} == {"inputTo"}
    assert all("thumbnail" not in i for i in report.ingredients)  # no copy of the subject's photo
    # Without the CA as a trust anchor the signature is still valid, but not trusted.
    assert read_manifest(signed).state == "Valid"
    # The unsigned source has no manifest at all.
    assert read_manifest(clip).state == "absent"


def test_created_action_says_trained_algorithmic_media(clip: Path, tmp_path: Path) -> None:
    import c2pa

    identity = ensure_dev_identity(tmp_path / "signing")
    signed = sign_video(clip, tmp_path / "signed.mp4", identity=identity, claims=claims(clip))
    with open(signed, "rb") as handle, c2pa.Reader("video/mp4", handle) as reader:
        manifest = reader.get_active_manifest()
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"][
        "actions"
    ]
    created = next(a for a in actions if a["action"] == "c2pa.created")
    assert created["digitalSourceType"] == provenance.TRAINED_ALGORITHMIC_MEDIA


def _write_pair(
    directory: Path, *, now: dt.datetime | None = None, leaf_days: int = 365
) -> tuple[Path, Path]:
    make_dev_ca(directory, now=now, leaf_days=leaf_days)
    return directory / CERT_FILE, directory / KEY_FILE


def test_expired_certificate_is_refused(tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    cert, key = _write_pair(tmp_path / "old", now=past, leaf_days=10)
    with pytest.raises(
        SigningCertificateError, match=r"signing certificate .*signer.pem expired on \d{4}-\d\d-\d\d$"
    ):
        load_identity(cert, key)
    assert issubclass(SigningCertificateError, PermanentError)


def test_unreadable_certificate_is_refused(tmp_path: Path) -> None:
    _cert, key = _write_pair(tmp_path / "a")
    with pytest.raises(
        SigningCertificateError, match="cannot read signing certificate .*missing.pem: No such file"
    ):
        load_identity(tmp_path / "missing.pem", key)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(SigningCertificateError, match="is not a PEM certificate"):
        load_identity(garbage, key)


def test_key_not_matching_certificate_is_refused(tmp_path: Path) -> None:
    cert, _key = _write_pair(tmp_path / "a")
    _other_cert, other_key = _write_pair(tmp_path / "b")
    with pytest.raises(
        SigningCertificateError, match=r"signing key .*b/signer.key does not match certificate"
    ):
        load_identity(cert, other_key)


def test_self_signed_and_wrong_usage_certificates_are_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "self")])

    def build(issuer_self: bool, eku: list[x509.ObjectIdentifier]) -> Path:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(
                name
                if issuer_self
                else x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "some CA")])
            )
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        )
        path = tmp_path / f"cert-{issuer_self}-{len(eku)}.pem"
        path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path

    key_path = tmp_path / "key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(SigningCertificateError, match="is self-signed"):
        load_identity(build(True, [ExtendedKeyUsageOID.EMAIL_PROTECTION]), key_path)
    with pytest.raises(SigningCertificateError, match="lacks EKU emailProtection"):
        load_identity(build(False, [ExtendedKeyUsageOID.SERVER_AUTH]), key_path)


def test_failed_signing_leaves_nothing_behind(tmp_path: Path) -> None:
    identity = ensure_dev_identity(tmp_path / "signing")
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"this is not an mp4")
    with pytest.raises(provenance.ProvenanceError, match="C2PA signing of notes.mp4 failed"):
        sign_video(not_video, tmp_path / "out.mp4", identity=identity, claims=claims(not_video))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4", "signing"]
