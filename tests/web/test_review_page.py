"""The reviewer's job page over HTTP: the bounds the plot draws, the player's markup, the reference photo."""

from __future__ import annotations

import re

from console.web.plots import identity_bounds, identity_svg
from governance import subjects
from governance.uow import unit_of_work
from tests.web.conftest import WebWorld

LINES = re.compile(r'<line [^>]*class="(bound(?: applied)?)" data-bound="([0-9.]+)"')


def test_plot_draws_the_fidelity_bounds_that_flagged_the_job(web: WebWorld) -> None:
    job_id = web.job_awaiting_review(
        scores={"fidelity_worst5_distance": 0.09, "colour_drift": 1.0},
        identity={
            "distances": [0.03, 0.05, 0.095, 0.04],
            "every": 2,
            "missing_frames": [],
            "threshold": 0.055,
        },
    )
    page = web.client("reviewer").get(f"/review/jobs/{job_id}").text
    lines = LINES.findall(page)
    # worst-5% review bound 0.07 flagged the job; the mean's review bound 0.05 is drawn faint; never the
    # face model's own 0.055 threshold (which is not what the policy judged).
    assert ("bound applied", "0.0700") in lines and ("bound", "0.0500") in lines
    assert all(value != "0.0550" for _, value in lines)
    assert 'worst 5% review &gt; 0.070 (<span class="bad">flagged this job</span>)' in page
    # Points are seekable: each carries its frame number (every 2nd frame sampled).
    assert re.findall(r'class="pt" data-frame="(\d+)"', page) == ["0", "2", "4", "6"]
    assert page.count('fill="#b3261e"><title>') == 1  # only the point above the applied bound is red


def test_a_reject_bound_is_drawn_only_when_it_applied() -> None:
    rules = {
        "identity": {
            "fidelity_mean_distance": {"review_above": 0.05, "reject_above": 0.07},
            "fidelity_worst5_distance": {"review_above": 0.07, "reject_above": 0.10},
        }
    }
    rejected = identity_bounds(rules, ["fidelity_mean_distance 0.08 > reject bound 0.07"], None)
    assert [(b.score, b.value, b.applied) for b in rejected] == [
        ("fidelity_worst5_distance", 0.07, False),
        ("fidelity_mean_distance", 0.05, False),
        ("fidelity_mean_distance", 0.07, True),
    ]
    # Old check results without policy rules: the face model's threshold, as a faint reference line.
    legacy = identity_bounds({}, [], {"threshold": 0.055})
    assert [(b.score, b.value, b.applied) for b in legacy] == [("model_threshold", 0.055, False)]
    svg = identity_svg([0.01, 0.2], bounds=legacy)
    assert 'class="bound" data-bound="0.0550"' in svg and "<script" not in svg


def test_player_controls_reference_photo_and_script(web: WebWorld) -> None:
    with unit_of_work(web.sf) as db:
        reference = subjects.add_reference(
            db,
            subject_id=web.subject_id,
            bucket="inputs",
            object_key="refs/a.png",
            sha256="c" * 64,
            created_by=web.users["compliance"],
        )
        reference_id = reference.id
    job_id = web.job_awaiting_review()
    client = web.client("reviewer")
    response = client.get(f"/review/jobs/{job_id}")
    page = response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<script src="/static/review.js" defer></script>' in page
    for control in (
        'id="player" hidden',
        'id="play"',
        'id="prev-frame"',
        'id="next-frame"',
        'id="scrub"',
        'id="loop" checked',
        'data-fps="25"',
    ):
        assert control in page, control
    assert f'src="/subjects/{web.subject_id}/references/{reference_id}"' in page
    script = client.get("/static/review.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    # A reference id of another subject names nothing.
    other = client.get(f"/subjects/00000000-0000-0000-0000-000000000000/references/{reference_id}")
    assert other.status_code == 404
