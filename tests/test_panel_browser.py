"""The gate-house panel in a real browser (issue 10, point 7): Debian's headless Chromium driven by Playwright
against a real gateway on the simulated demo site, over HTTPS on 127.0.0.1. Sign-in and lock-out; a raise refused
with the vehicle on the loop shown; a fire alarm appearing and the fire lane held down; the alarm acknowledged and
audited with the guard's id; the hold released after the panel's reset; both languages, with screenshots of the
main screen (kept in docs/ when PANEL_SCREENSHOTS names that folder)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from simulators.broker import PrivateBroker
from tests.panel_site import PINS, PanelSite, panel_site

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
# Without the background-networking flags Chromium reaches for the internet on its own.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WAIT_MS = 15000  # the longest any expectation waits for the page to show it


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium (scripts/bootstrap installs it); Playwright's own browser download is never used."""
    if not HAVE_CHROMIUM:
        pytest.skip(f"no browser: {CHROMIUM} is missing (Debian's chromium package; scripts/bootstrap installs it)")
    from playwright.async_api import async_playwright  # noqa: PLC0415

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def open_panel(browser: Any, ps: PanelSite) -> Any:
    # The panel's certificate is the test CA's, which this browser does not trust; the HTTPS client in
    # tests/test_panel.py checks it. The rest is real TLS.
    context = await browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(ps.url + "/")
    return page


async def sign_in(page: Any, guard: str, pin: str) -> None:
    await page.fill("#guard", guard)
    await page.fill("#pin", pin)
    async with page.expect_response("**/api/login"):  # the next attempt after this one's answer
        await page.click("#login-form button[type=submit]")


async def test_panel_browser_sign_in_locks_out_after_wrong_pins(
    tmp_path: Path, broker: PrivateBroker, browser: Any
) -> None:
    """Wrong PINs say so, the third (`max_attempts` here) too; from the fourth attempt on the guard is locked out,
    and the right PIN is refused too (in Chinese, the default)."""
    from playwright.async_api import expect  # noqa: PLC0415

    async with panel_site(tmp_path, broker.url) as ps:
        page = await open_panel(browser, ps)
        await expect(page.locator("#login-form")).to_contain_text("保安编号", timeout=WAIT_MS)
        for _ in range(3):
            await sign_in(page, "wang", "0000")
            await expect(page.locator("#login-error")).to_have_text("保安编号或 PIN 码错误", timeout=WAIT_MS)
            await page.fill("#guard", "")
        await sign_in(page, "wang", PINS["wang"])
        await expect(page.locator("#login-error")).to_have_text("PIN 码错误次数过多: 锁定 600 秒", timeout=WAIT_MS)
        assert await page.locator("#main").is_hidden()


async def confirm(page: Any, button: Any) -> None:
    """Press an action's button and confirm it in the dialog, as a guard does."""
    await button.click()
    await page.locator("#confirm-yes").click()


async def test_panel_browser_main_screen_refusal_fire_ack_release_both_languages(
    tmp_path: Path, broker: PrivateBroker, browser: Any
) -> None:
    """The main screen end to end, in zh-CN then English."""
    from playwright.async_api import expect  # noqa: PLC0415

    shots = Path(os.environ.get("PANEL_SCREENSHOTS", str(tmp_path)))
    async with panel_site(tmp_path, broker.url) as ps:
        ps.bollard.set_input("loop_a_occupied", True)
        page = await open_panel(browser, ps)
        await sign_in(page, "wang", PINS["wang"])
        lane = page.locator('[data-lane="lane-east"]')
        await expect(page.locator("#who")).to_have_text("当前保安: 王师傅", timeout=WAIT_MS)
        await expect(lane.locator('[data-testid="inhibits"]')).to_contain_text("地感线圈有车", timeout=WAIT_MS)

        # A raise with the van on the loop: asked, confirmed, refused by the supervisor with the reason.
        await confirm(page, lane.locator('[data-action="raise"]'))
        await expect(page.locator("#result")).to_have_text("lane-east: 升起 已拒绝 (地感线圈有车)", timeout=WAIT_MS)
        assert ps.audit("raise")[0].value == "refused"

        # A fire on the panel: the alarm appears with time and place, the fire lane is held down.
        ps.fire_panel.alarm_point(102)
        fire = page.locator(".alarm.fire")
        await expect(fire).to_contain_text("火警", timeout=WAIT_MS)
        await expect(fire).to_contain_text("Fire alarm control panel, building A")
        await expect(lane.locator('[data-testid="fire-hold"]')).to_contain_text("火警联动保持降下", timeout=WAIT_MS)
        await expect(page.locator("#mode")).to_contain_text("火警", timeout=WAIT_MS)
        (shots / "panel-zh-CN.png").parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shots / "panel-zh-CN.png"), full_page=True)

        # Acknowledged from the panel: shown with the guard's id, and audited with it.
        await confirm(page, fire.locator('[data-action="ack"]'))
        await expect(fire).to_contain_text("已由 wang 确认", timeout=WAIT_MS)
        alarm_id = await fire.get_attribute("data-alarm")
        assert ps.gw.alarms.alarms[alarm_id].acked_by == "panel:wang"
        (ack,) = ps.audit("ack")
        assert ack.detail is not None
        assert (ack.value, ack.detail["operator"]) == ("done", "wang")

        # The hold is not released while the panel is in fire; after its reset, the guard releases it here.
        release = lane.locator('[data-action="release"]')
        await confirm(page, release)
        await expect(page.locator("#result")).to_contain_text("已拒绝", timeout=WAIT_MS)

        # English, chosen on the panel: the same screen in the other language.
        await page.locator("#lang").click()
        await expect(lane.locator('[data-testid="inhibits"]')).to_contain_text(
            "a vehicle is on the loop", timeout=WAIT_MS
        )
        await expect(lane.locator('[data-testid="fire-hold"]')).to_contain_text("Fire hold-down", timeout=WAIT_MS)
        await expect(page.locator("#mode")).to_contain_text("Site mode: fire", timeout=WAIT_MS)
        await page.screenshot(path=str(shots / "panel-en.png"), full_page=True)

        ps.fire_panel.clear_point(102)
        ps.fire_panel.reset()
        await expect(page.locator("#mode")).not_to_contain_text("fire", timeout=WAIT_MS)
        await confirm(page, release)
        await expect(page.locator("#result")).to_have_text("lane-east: release fire hold done", timeout=WAIT_MS)
        await expect(lane.locator('[data-testid="fire-hold"]')).to_have_count(0, timeout=WAIT_MS)
        assert ps.gw.bollards.supervisors["lane-east"].fire_hold is False
        assert await page.locator('[data-action*="efo"]').count() == 0  # EFO is the local key switch's alone

        # STOP asks first too, like every motion command; confirmed, it goes through the supervisor.
        await lane.locator('[data-action="stop"]').click()
        await expect(page.locator("#confirm-yes")).to_be_visible(timeout=WAIT_MS)
        assert ps.audit("stop") == [], "nothing sent before the confirmation"
        await page.locator("#confirm-yes").click()
        await expect(page.locator("#result")).to_have_text("lane-east: stop done", timeout=WAIT_MS)
        assert ps.audit("stop")[0].value == "done"

        # The controller stops answering: its lane is greyed, with the age of the last data it gave.
        ps.bollard.faults.silent = True
        await expect(lane).to_have_class(re.compile(r"\bstale\b"), timeout=WAIT_MS)
        await expect(lane).to_contain_text("No fresh data for", timeout=WAIT_MS)
