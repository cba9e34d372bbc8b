"""Command lines the CLI tests share: the argument lists say what a user types, once."""

from __future__ import annotations

from pathlib import Path


def consent_grant(evidence: Path, sha256: str, *extra: str, subject: str = "S-1") -> list[str]:
    """`likeness consent grant` for the covered use (advertising, web, DE) with this evidence file."""
    return [
        "consent",
        "grant",
        "--subject",
        subject,
        "--purpose",
        "advertising",
        "--channel",
        "web",
        "--territory",
        "DE",
        "--evidence",
        str(evidence),
        "--evidence-sha256",
        sha256,
        *extra,
    ]
