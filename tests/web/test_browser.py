"""Each role's main path in Debian's Chromium (headless, driven by Playwright), against the console served
by uvicorn on a free loopback port, on real SQLite and the real S3 server. Screenshots go to
test-artifacts/web/ (gitignored). Playwright never downloads a browser here: it drives /usr/bin/chromium."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import expect

from tests.web.conftest import PASSWORD, WebWorld, store_job_media

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.s3,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium (run `make browser`)",
    ),
]


class LiveServer:
    """uvicorn serving an app in a thread, on a socket bound here (so the port is known and free)."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"  # Chromium keeps Secure cookies for localhost over http

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live(web_s3: WebWorld) -> Iterator[LiveServer]:
    with LiveServer(web_s3.app) as server:
        yield server


@pytest.fixture
def page_for(browser: Any, live: LiveServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Open a fresh browser context per person; CSP violations and page errors fail the test."""
    contexts: list[Any] = []
    problems: list[str] = []

    def open_as(name: str) -> Any:
        context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto("/")
        assert page.url.endswith("/sign-in?next=%2F")
        page.fill("input[name=email]", f"{name}@example.org")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live.url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert [p for p in problems if "favicon" not in p] == []


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_compliance_records_a_subject_and_grants_a_consent(
    page_for: Any, web_s3: WebWorld, sample_media: dict[str, Path], tmp_path: Path
) -> None:
    evidence = tmp_path / "release.pdf"
    evidence.write_bytes(b"%PDF-1.4\nsigned release of Grace\n")
    page = page_for("compliance")
    page.click("text=Subjects & consents")
    page.fill("input[name=reference]", "S-GRACE")
    page.fill("input[name=display_name]", "Grace <b>Example</b>")
    page.click("text=Record subject")
    assert page.locator(".flash").inner_text() == "subject S-GRACE recorded"
    assert page.locator("h1").inner_text().startswith("Grace <b>Example</b>")  # shown as text, not markup
    page.click("text=Grant a consent")
    page.check("input[name=purposes][value=advertising]")
    page.check("input[name=channels][value=web]")
    page.fill("input[name=territories]", "DE, AT")
    page.fill("input[name=valid_from]", "2026-01-01")
    page.fill("input[name=valid_until]", "2029-12-31")
    page.set_input_files("input[name=evidence]", str(evidence))
    page.set_input_files("input[name=reference_photo]", str(sample_media["portrait"]))
    shot(page, "compliance-grant-form")
    page.click("text=Grant consent")
    assert "granted (version 1)" in page.locator(".flash").inner_text()
    assert page.locator("#versions tbody tr").count() == 1
    assert "AT, DE" in page.locator("#versions").inner_text()
    shot(page, "compliance-consent-history")
    page.click("text=Grace <b>Example</b> (S-GRACE)")
    page.wait_for_load_state("load")  # images included
    assert page.evaluate("document.querySelector('#reference-photos img.thumb').naturalWidth") > 0
    page.click("text=Subjects & consents")
    page.fill("#subject-search input[name=q]", "grace")
    page.click("#subject-search button")
    expect(page.locator("#subjects tbody tr")).to_have_count(1)
    shot(page, "compliance-subject-search")


OUTPUT, DRIVING = "document.querySelector('#output-video')", "document.querySelector('#driving-video')"


def test_reviewer_watches_the_render_with_the_player_and_rejects(
    page_for: Any, web_s3: WebWorld, sample_media: dict[str, Path], live: LiveServer
) -> None:
    parts = store_job_media(web_s3, sample_media)
    job_id = web_s3.job_awaiting_review(
        portrait=parts["portrait"], driving=parts["driving"], output=parts["output"]
    )
    page = page_for("reviewer")
    page.click("text=Review")
    page.click(f"text={job_id[:8]}")
    page.wait_for_url(f"{live.url}/review/jobs/{job_id}")
    # The browser really loads the video streamed from storage through the app. (No wait_for_function: the
    # page's CSP forbids the eval it needs; the script's own markup says when it is ready.)
    expect(page.locator("#player")).to_be_visible()
    expect(page.locator("#scrub")).not_to_have_attribute("max", "0", timeout=15000)
    assert page.evaluate(f"{OUTPUT}.duration") == pytest.approx(2.0, abs=0.2)
    assert page.evaluate(f"{DRIVING}.readyState") >= 1
    assert page.evaluate("document.querySelector('#portrait').naturalWidth") > 0
    assert page.locator("#identity-plot svg line.bound").count() == 2  # worst-5% and mean review bounds
    assert "colour_drift" in page.locator("#scores").inner_text()
    # One bar drives both videos (their own controls are gone once the script runs).
    assert page.evaluate(f"{OUTPUT}.controls || {DRIVING}.controls") is False

    def at_frame(frame: int) -> None:
        expect(page.locator("#position")).to_have_text(re.compile(rf"frame {frame}$"))
        t = (frame + 0.5) / 25  # the fixture's driving video has no recorded fps: 25
        assert page.evaluate(f"[{OUTPUT}.currentTime, {DRIVING}.currentTime]") == [
            pytest.approx(t, abs=0.02),
            pytest.approx(t, abs=0.02),
        ]

    page.locator("#identity-plot circle.pt[data-frame='9']").click()  # click a plot point: seek to it
    at_frame(9)
    page.click("#next-frame")
    at_frame(10)
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    at_frame(8)
    page.keyboard.press("Shift+ArrowRight")  # one second
    at_frame(33)
    page.locator("#scrub").fill("0.5")
    expect(page.locator("#position")).to_have_text(re.compile(r"^0\.50 s"))
    assert page.evaluate(f"{DRIVING}.currentTime") == pytest.approx(0.5, abs=0.02)
    shot(page, "reviewer-player")
    # Space plays; with loop on (the default) the end starts over and keeps playing; space pauses both.
    page.locator("#scrub").fill(str(page.evaluate(f"{OUTPUT}.duration") - 0.3))
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press(" ")
    expect(page.locator("#play")).to_have_text("Pause")
    expect(page.locator("#player")).to_have_attribute("data-loops", "1", timeout=15000)
    page.keyboard.press(" ")
    expect(page.locator("#play")).to_have_text("Play")
    assert page.evaluate(f"[{OUTPUT}.paused, {DRIVING}.paused]") == [True, True]

    # R picks the verdict and puts the cursor in the reason; typing there is not taken as shortcuts.
    page.keyboard.press("r")
    assert page.is_checked("input[name=verdict][value=reject]")
    assert page.evaluate("document.activeElement.name") == "reason"
    page.click("text=Record decision")  # the reason is required: the browser refuses to submit
    assert page.url.endswith(f"/review/jobs/{job_id}")
    assert page.locator("#decision").count() == 0
    page.focus("textarea[name=reason]")
    page.keyboard.type("mouth shape breaks at frame 9 and again later")
    assert page.is_checked("input[name=verdict][value=reject]")  # the 'a's typed chose nothing
    page.click("text=Record decision")
    expect(page.locator("#decision")).to_be_visible()
    assert "now rejected" in page.locator(".flash").inner_text()
    assert "mouth shape breaks at frame 9" in page.locator("#decision").inner_text()
    shot(page, "reviewer-decided")


def test_operator_submits_a_batch_and_follows_it(
    page_for: Any, web_s3: WebWorld, sample_media: dict[str, Path]
) -> None:
    web_s3.grant()  # advertising / web / DE
    page = page_for("operator")
    page.click("text=Batches")
    page.click("text=Submit a batch")
    page.select_option("#choose-subject select[name=subject]", web_s3.subject_id)
    page.click("text=Show this subject's media and consent")
    expect(page.locator("#consent-scope")).to_contain_text("advertising")
    page.fill("input[name=name]", "launch video")
    assert page.locator("select[name=job0_subject]").input_value() == web_s3.subject_id  # preselected
    page.select_option("select[name=job0_purpose]", "advertising")
    page.select_option("select[name=job0_channel]", "web")
    page.fill("input[name=job0_territory]", "FR")  # not covered: a warning, entries kept
    page.set_input_files("input[name=job0_portrait_file]", str(sample_media["portrait"]))
    page.set_input_files("input[name=job0_driving_file]", str(sample_media["driving"]))
    page.click("text=Submit batch")
    expect(page.locator("#uncovered")).to_contain_text("territory 'FR'")
    assert page.locator("input[name=name]").input_value() == "launch video"
    assert page.locator("select[name=job0_channel]").input_value() == "web"
    shot(page, "operator-uncovered-warning")
    page.fill("input[name=job0_territory]", "DE")
    page.set_input_files("input[name=job0_portrait_file]", str(sample_media["portrait"]))
    page.set_input_files("input[name=job0_driving_file]", str(sample_media["driving"]))
    page.click("text=Submit batch")
    expect(page.locator(".flash")).to_contain_text("submitted with 1 job(s)")
    assert "submitted" in page.locator("#jobs").inner_text()
    shot(page, "operator-batch-status")


def test_auditor_searches_follows_a_job_and_checks_the_chain(
    page_for: Any, web_s3: WebWorld, live: LiveServer
) -> None:
    job_id = web_s3.job_awaiting_review()
    page = page_for("auditor")
    page.click("text=Audit log")
    page.fill("input[name=action]", "job.*")
    page.click("text=Search")
    page.wait_for_url(re.compile(r"action=job"))  # the unfiltered table is on the page until then
    text = page.locator("table.events").inner_text()
    assert "job.awaiting_review" in text and "consent.granted" not in text
    details = page.locator("table.events details").first
    details.locator("summary").click()  # details are folded until asked for
    expect(details.locator("pre.details")).to_be_visible()
    shot(page, "auditor-search")
    page.locator(f"a:has-text('{job_id[:8]}')").first.click()
    page.wait_for_url(f"{live.url}/audit/jobs/{job_id}")
    assert "consent.granted" in page.locator("table.events").inner_text()
    shot(page, "auditor-timeline")
    page.goto("/audit/chain")
    assert page.locator("#chain-status").inner_text() == "Intact"
    with page.expect_download() as download:
        page.goto("/audit")
        page.click("text=JSONL")
    assert download.value.suggested_filename.endswith(".jsonl")
    shot(page, "auditor-chain")


def test_admin_creates_a_reviewer_changes_their_roles_and_they_sign_in(
    page_for: Any, web_s3: WebWorld, live: LiveServer
) -> None:
    page = page_for("admin")
    assert page.locator("header nav a").all_inner_texts() == ["Users"]  # admins see only what they may use
    page.click("text=Users")
    form = page.locator("#create-user")
    form.locator("input[name=email]").fill("new.reviewer@example.org")
    form.locator("input[name=display_name]").fill("New Reviewer")
    form.locator("input[name=password]").fill("a long enough passphrase")
    form.locator("input[name=roles][value=reviewer]").check()
    form.locator("text=Create user").click()
    expect(page.locator(".flash")).to_have_text("user new.reviewer@example.org created")
    row = page.locator("#users tr", has_text="new.reviewer@example.org")
    row.locator("summary").click()  # the row's Manage panel
    row.locator("input[name=roles][value=auditor]").check()
    row.locator("text=Save roles").click()
    expect(page.locator(".flash")).to_have_text("user new.reviewer@example.org now holds auditor, reviewer")
    shot(page, "admin-users")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/sign-in"))  # the users page has an email field too
    page.fill("input[name=email]", "new.reviewer@example.org")
    page.fill("input[name=password]", "a long enough passphrase")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/")  # the sign-in page has no navigation links to read yet
    assert page.locator("header nav a").all_inner_texts() == [
        "Review",
        "Subjects & consents",
        "Models",
        "Batches",
        "Audit log",
    ]


def test_demo_admin_opens_the_console_with_the_printed_password(
    browser: Any, web_s3: WebWorld, live: LiveServer
) -> None:
    from flows.demo.steps import seed_admin

    email, password = seed_admin(web_s3.runtime)
    context = browser.new_context(base_url=live.url)
    try:
        page = context.new_page()
        page.goto("/")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live.url}/")
        page.click("text=Users")
        expect(page.locator("#users")).to_contain_text(email)
        shot(page, "demo-admin")
    finally:
        context.close()
