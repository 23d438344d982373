"""The API docs page in a real browser: it renders every endpoint and fetches nothing from elsewhere."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # Static files reach the live server through WhiteNoise, whose file iterators are synchronous.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


def test_api_docs_render_from_our_own_assets_only(asgi_live_server, browser, shot):
    base = asgi_live_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    try:
        page = context.new_page()
        page.goto(f"{base}/api/docs/")
        page.locator(".opblock").first.wait_for(timeout=20_000)
        assert page.locator(".opblock-summary-path", has_text="/api/v1/api-keys").count() >= 1
        assert page.locator(".opblock-summary-path", has_text="/api/v1/members").count() >= 1
        assert page.get_by_text("JagCall API").first.is_visible()
        shot(page, "api-docs")
    finally:
        context.close()
    origin = urlsplit(base).netloc
    outside = [url for url in requested if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != origin]
    assert not outside, f"the docs page fetched from elsewhere: {outside}"
    assert any(urlsplit(url).path == "/api/v1/schema/" for url in requested), "the page did not load our schema"
