"""The portal's navigation in Chromium: every tab in view on a laptop screen, menus that stay open.

Served by the real ASGI application with the demo data, so the dashboard's
live panels load over htmx and the websocket as they do for people.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.management.commands.seed_demo import DEMO_PASSWORD
from tests.browser.test_team_smoke import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_every_tab_fits_and_the_account_menu_survives_a_panel_refresh(asgi_live_server, browser, shot):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    base = asgi_live_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, "owner@acme-dental.test", DEMO_PASSWORD)
        page.wait_for_url(f"{base}/o/acme-dental/")

        # An owner sees every tab; on a 1280-pixel screen none is cut off or scrolled out of view.
        nav = page.get_by_role("navigation", name="Acme Dental")
        tabs = nav.get_by_role("link")
        names = [tabs.nth(i).inner_text().strip() for i in range(tabs.count())]
        assert names == [
            "Dashboard", "Agents", "Calls", "Messages", "Knowledge", "Numbers", "Phone", "Team", "Settings",
            "Billing", "Audit log", "Do-not-call",
        ]  # fmt: skip
        nav_box = nav.bounding_box()
        for i in range(tabs.count()):
            box = tabs.nth(i).bounding_box()
            assert box["x"] + box["width"] <= nav_box["x"] + nav_box["width"] + 1, f"{names[i]} is cut off"
        assert nav.evaluate("n => n.scrollWidth <= n.clientWidth + 1"), "the tabs scroll sideways"

        # The live calls panel loads after the page (htmx); the menu opened meanwhile stays open.
        page.locator("details.user-menu > summary").click()
        page.evaluate(
            """() => new Promise((resolve) => {
                const panel = document.querySelector(".live-panel[hx-get]");
                document.addEventListener("htmx:afterSettle", () => resolve(), { once: true });
                htmx.ajax("GET", panel.getAttribute("hx-get"), { target: panel, swap: "innerHTML" });
            })"""
        )
        assert page.locator("details.user-menu").evaluate("m => m.open")
        shot(page, "navigation-account-menu")
        page.get_by_role("link", name="Connected applications").click()
        page.wait_for_url(f"{base}/account/connected-apps/")

    finally:
        context.close()
