"""Form dates: an offset that pushes a date past the year 9999 in UTC is one line, not a server error."""

from __future__ import annotations

import pytest

from console.web.errors import BadInput
from console.web.forms import parse_moment


def test_a_date_past_year_9999_in_utc_is_refused_by_name() -> None:
    with pytest.raises(BadInput, match=r"^valid until '9999-12-31T23:00:00-05:00' is out of range: in UTC"):
        parse_moment("9999-12-31T23:00:00-05:00", "valid until")
    assert parse_moment("9999-12-31T23:00:00", "valid until") is not None  # still representable
