"""Subject references: control characters refused; NFC and trimming before the uniqueness check."""

from __future__ import annotations

import re

import pytest

from governance import subjects
from governance.errors import ValidationFailed
from governance.schema import AuditEvent, Subject
from governance.uow import unit_of_work
from tests.governance.helpers import World, count


def add(world: World, reference: str) -> Subject:
    with unit_of_work(world.sf) as session:
        return subjects.add_subject(
            session, reference=reference, display_name="Someone", created_by=world.compliance
        )


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ("S-2\n", "U+000A"),
        ("S-\n2", "U+000A"),
        ("S-2\r", "U+000D"),
        ("\tS-2", "U+0009"),
        ("S-\u200b2", "U+200B"),
        ("S-2\u2028", "U+2028"),
        ("S-2\x00", "U+0000"),
        ("S-\u202e2", "U+202E"),
    ],
)
def test_control_characters_are_refused_and_nothing_is_written(
    world: World, reference: str, code: str
) -> None:
    before = (count(world.sf, Subject), count(world.sf, AuditEvent))
    with pytest.raises(ValidationFailed, match=re.escape(f"contains the control character {code}:")):
        add(world, reference)
    assert (count(world.sf, Subject), count(world.sf, AuditEvent)) == before


def test_references_that_look_the_same_are_the_same(world: World) -> None:
    # The fixture recorded S-1; padded, it is still S-1.
    with pytest.raises(ValidationFailed, match="subject reference S-1 already exists"):
        add(world, "  S-1 ")
    stored = add(world, " S-3\u0020")
    assert stored.reference == "S-3"
    with world.sf() as session:
        assert subjects.find_subject(session, "S-3 ").id == stored.id
        event = (
            session.query(AuditEvent)
            .filter(AuditEvent.action == "subject.created", AuditEvent.resource_id == stored.id)
            .one()
        )
    assert event.details == {"reference": "S-3"}


def test_nfc_normalisation_before_the_shape_check() -> None:
    # "e" + combining acute is NFC "é": outside the allowed letters either way, and named as such.
    with pytest.raises(ValidationFailed, match="must be 1-100 letters, digits or"):
        subjects.normalise_reference("Re\u0301f-1")
    assert subjects.normalise_reference("\u00a0R-1\u00a0") == "R-1"  # NBSP is trimmed like a space
