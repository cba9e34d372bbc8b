"""The review page's motion plot: driver vs output mouth and yaw, the bounds, click-to-seek both videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.web.motion_plot import motion_context
from governance.policy import load_policy
from tests.governance.helpers import good_scores
from tests.web.conftest import WebWorld, store_job_media
from tests.web.test_browser import CHROMIUM, browser, live, page_for  # noqa: F401 - fixtures for the browser test

FRAMES = list(range(0, 48, 3))
MOTION = {
    "motion": {
        "every": 3,
        "frame_indices": FRAMES,
        "mouth_correlation": 0.12,
        "mouth_mean_difference": 0.05,
        "yaw_correlation": 0.3,
        "yaw_mean_difference": 2.5,
        "series": {
            "mouth": {
                "driving": [0.05 + 0.02 * (i % 4) for i in range(len(FRAMES))],
                "output": [0.2] * len(FRAMES),
            },
            "yaw": {"driving": [float(i % 5) for i in range(len(FRAMES))], "output": [1.0] * len(FRAMES)},
        },
        "landmark_model": {
            "name": "dlib-68",
            "file": "shape_predictor_68_face_landmarks.dat",
            "sha256": "c" * 64,
        },
    },
    "artifacts": {"checks": {"fps": {"detail": {"fps": 25.0}}}},
}


def rules() -> dict[str, Any]:
    """The default policy's rules as a check result stores them."""
    return load_policy().evaluate(good_scores()).thresholds["rules"]


def test_the_review_page_plots_driver_and_output_with_the_bounds(web: WebWorld) -> None:
    job_id = web.job_awaiting_review(details=MOTION)
    client = web.client("reviewer")
    response = client.get(f"/review/jobs/{job_id}")
    page = response.text
    assert 'id="motion-plot" data-fps="25.000"' in page
    for series in ("mouth-driving", "mouth-output", "yaw-driving", "yaw-output"):
        assert f"series {series}" in page
    assert "bound bound-mouth" in page and "bound bound-yaw" in page  # the review bands are drawn
    assert page.count('class="seek"') == 4 * len(FRAMES) and 'data-frame="45"' in page
    assert "mouth_mean_difference" in page and "review &gt; 0.03" in page  # the bounds table beside it
    assert '<script src="/static/motion_plot.js" defer></script>' in page
    assert "script-src 'self'" in response.headers["content-security-policy"]
    script = client.get("/static/motion_plot.js")
    assert script.status_code == 200 and "currentTime" in script.text
    assert script.headers["content-type"].startswith("text/javascript")


def test_no_motion_recorded_means_no_plot(web: WebWorld) -> None:
    job_id = web.job_awaiting_review()
    page = web.client("reviewer").get(f"/review/jobs/{job_id}").text
    assert 'id="motion-plot"' not in page and "motion_plot.js" not in page


@pytest.mark.parametrize(
    "details",
    [
        None,
        {},
        {"motion": "x"},
        {"motion": {"series": {}}},
        {"motion": {**MOTION["motion"], "frame_indices": [0, 3]}},
        {"motion": {**MOTION["motion"], "series": {"mouth": {"driving": ["<b>"]}}}},
    ],
)
def test_malformed_motion_details_draw_nothing(details: Any) -> None:
    assert motion_context(details, rules())["motion_plot"] == ""


def test_the_plot_is_numbers_only() -> None:
    svg = motion_context(MOTION, rules())["motion_plot"]
    assert svg.startswith("<svg") and "<script" not in svg and "<b>" not in svg


@pytest.mark.browser
@pytest.mark.s3
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium")
def test_clicking_a_point_seeks_both_videos(
    page_for: Any,  # noqa: F811
    web_s3: WebWorld,
    sample_media: dict[str, Path],
) -> None:
    parts = store_job_media(web_s3, sample_media)
    job_id = web_s3.job_awaiting_review(
        portrait=parts["portrait"], driving=parts["driving"], output=parts["output"], details=MOTION
    )
    page = page_for("reviewer")
    page.goto(f"/review/jobs/{job_id}")
    for video in ("#output-video", "#driving-video"):
        page.wait_for_function(f"document.querySelector('{video}').readyState >= 1")
    page.click('#motion-plot circle.seek[data-frame="30"] >> nth=0', force=True)
    page.wait_for_function("document.getElementById('motion-plot').dataset.seekedFrame === '30'")
    for video in ("output-video", "driving-video"):
        seconds = page.evaluate(f"document.getElementById('{video}').currentTime")
        assert seconds == pytest.approx(30.5 / 25, abs=0.05), video
