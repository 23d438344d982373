"""Every websocket route runs the one access check, at connect and after (real Redis layer, real sessions).

The walk reads the project's websocket routes (jagcall.routing), so a route
added later is covered without touching this file: its consumer must derive
from accounts.consumers.OrganizationConsumer, and a stranger, a removed
member and a session without the second factor its organization requires
are refused at connect or cut off (4403) while connected. An object id in a route (e.g. an
agent's) is filled with an object of the organization (``<app>/tests/tenancy.py``); a route
whose right members lack is walked with an admin, and a demotion to member cuts it off.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver

from accounts import services
from accounts.consumers import OrganizationConsumer
from accounts.models import Membership
from accounts.permissions import has_permission
from accounts.tests.factories import enable_totp
from conftest import record_sign_in
from jagcall.asgi import application
from jagcall.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_channel_layer")]

ORIGIN = (b"origin", b"http://127.0.0.1")


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


ROUTES = list(_routes(websocket_urlpatterns))
# The right each route's consumer requires: a route that members may not open is walked with an admin.
PERMISSION = {
    route: getattr(consumer.consumer_class, "permission_required", "organization.view") for route, consumer in ROUTES
}


def _person(route, member, admin_user):
    """Someone whose role opens ``route``: a member, else an admin."""
    return member if has_permission("member", PERMISSION[route]) else admin_user


def _path(route: str, slug: str) -> str:
    """The route for the organization ``slug``; any object id in it (e.g. ``<uuid:agent_id>``) is an object of
    that organization, made as its app registers in ``<app>/tests/tenancy.py`` (OBJECT_KWARGS)."""
    import re

    from accounts.models import Organization
    from accounts.tests.urlwalk import tenancy_cases

    assert "<slug:org_slug>" in route, f"websocket route {route} is not under /ws/o/<org_slug>/"
    path = route.replace("<slug:org_slug>", slug)
    kwargs = re.findall(r"<\w+:(\w+)>", path)
    if kwargs:
        object_kwargs, _ = tenancy_cases()
        organization = Organization.objects.get(slug=slug)
        for name in kwargs:
            path = re.sub(rf"<\w+:{name}>", str(object_kwargs[name](organization)), path)
    return "/" + path


def _cookie(user, *, second_factor=None) -> bytes:
    client = Client()
    client.force_login(user)
    if second_factor is not None:
        session = client.session
        record_sign_in(session, user, second_factor=second_factor)
        session.save()
    morsel = client.cookies[settings.SESSION_COOKIE_NAME]
    return f"{settings.SESSION_COOKIE_NAME}={morsel.value}".encode()


async def _connect(route, slug, user=None, **cookie):
    headers = [ORIGIN]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(_cookie)(user, **cookie)))
    path = await database_sync_to_async(_path)(route, slug)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def _closed_with(communicator, code: int) -> bool:
    message = await communicator.receive_output(timeout=5)
    while message["type"] == "websocket.send":  # events sent before the close
        message = await communicator.receive_output(timeout=5)
    return message == {"type": "websocket.close", "code": code}


def test_there_are_websocket_routes_to_walk():
    assert ROUTES, "jagcall.routing has no websocket routes"


@pytest.mark.parametrize(("route", "consumer"), ROUTES, ids=[r for r, _ in ROUTES])
def test_every_websocket_consumer_derives_from_the_organization_base(route, consumer):
    consumer_class = getattr(consumer, "consumer_class", None)
    assert consumer_class is not None and issubclass(consumer_class, OrganizationConsumer), (
        f"{route}: its consumer must derive from accounts.consumers.OrganizationConsumer"
    )


@pytest.mark.parametrize("route", [r for r, _ in ROUTES])
async def test_a_stranger_and_an_anonymous_visitor_are_refused(route, organization, other_owner):
    _, connected, code = await _connect(route, organization.slug, other_owner)
    assert (connected, code) == (False, 4404)
    _, connected, code = await _connect(route, organization.slug)
    assert (connected, code) == (False, 4401)


@pytest.mark.parametrize("route", [r for r, _ in ROUTES])
async def test_a_removed_member_is_cut_off_at_once(route, organization, owner, member, admin_user):
    member = _person(route, member, admin_user)
    communicator, connected, _ = await _connect(route, organization.slug, member)
    assert connected
    try:
        membership = await database_sync_to_async(Membership.objects.for_org(organization).get)(user=member)
        await database_sync_to_async(services.membership_remove)(organization=organization, actor=owner, membership=membership)
        assert await _closed_with(communicator, 4403)
    finally:
        await communicator.disconnect()
    # And it cannot come back.
    _, connected, code = await _connect(route, organization.slug, member)
    assert (connected, code) == (False, 4404)


@pytest.mark.parametrize("route", [r for r, _ in ROUTES])
async def test_a_session_without_the_required_second_factor_is_refused_and_cut_off(
    route, organization, owner, member, admin_user
):
    member = _person(route, member, admin_user)
    await database_sync_to_async(enable_totp)(member)
    await database_sync_to_async(enable_totp)(owner)
    # Connected while the organization did not require it...
    communicator, connected, _ = await _connect(route, organization.slug, member, second_factor=False)
    assert connected
    try:
        await database_sync_to_async(services.organization_require_two_factor)(
            organization=organization, actor=owner, required=True
        )
        # ...cut off when it starts to, since this session never passed the factor.
        assert await _closed_with(communicator, 4403)
    finally:
        await communicator.disconnect()
    _, connected, code = await _connect(route, organization.slug, member, second_factor=False)
    assert (connected, code) == (False, 4403)
    # A session that passed it connects.
    communicator, connected, _ = await _connect(route, organization.slug, member, second_factor=True)
    assert connected
    await communicator.disconnect()


@pytest.mark.parametrize("route", [r for r, _ in ROUTES])
async def test_a_demotion_is_rechecked(route, organization, owner, admin_user):
    communicator, connected, _ = await _connect(route, organization.slug, admin_user)
    assert connected
    try:
        membership = await database_sync_to_async(Membership.objects.for_org(organization).get)(user=admin_user)
        await database_sync_to_async(services.membership_role_change)(
            organization=organization, actor=owner, membership=membership, role="member"
        )
        if not has_permission("member", PERMISSION[route]):
            # The route's right is not a member's: the re-check closes it.
            assert await _closed_with(communicator, 4403)
            return
        # organization.view is still allowed to members: the socket stays open, and it was re-checked.
        message = await communicator.receive_json_from(timeout=5)
        assert message.get("event") in {"subscribed", "member.role_changed"}
    finally:
        await communicator.disconnect()


async def _socket_of_a_browser(organization, user):
    """A signed-in test browser and a websocket opened with its session cookie."""
    client = await sync_to_async(Client)()
    await sync_to_async(client.force_login)(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    path = _path(ROUTES[0][0], organization.slug)
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, (b"cookie", cookie)])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return client, communicator


async def test_an_ended_session_is_cut_off_by_the_timer(organization, member, settings):
    settings.WEBSOCKET_ACCESS_RECHECK_SECONDS = 0.2
    client, communicator = await _socket_of_a_browser(organization, member)
    try:
        # The session disappears from the store (expired, or ended elsewhere) without any notice.
        session = await sync_to_async(lambda: client.session)()
        await sync_to_async(session.delete)()
        assert await _closed_with(communicator, 4403)
    finally:
        await communicator.disconnect()


async def test_signing_out_closes_the_sessions_sockets(organization, member):
    client, communicator = await _socket_of_a_browser(organization, member)
    try:
        await sync_to_async(client.post)("/auth/logout/")
        assert await _closed_with(communicator, 4403)
    finally:
        await communicator.disconnect()


# --- the one exception: streams a provider opens with a token (no cookie, no Origin) ---------------

from accounts.consumers import ProviderStreamConsumer  # noqa: E402
from jagcall.routing import provider_stream_urlpatterns  # noqa: E402

PROVIDER_ROUTES = list(_routes(provider_stream_urlpatterns))
_CONVERTER = {"uuid": "0b6b3f8e-8a43-4d39-9d0a-6a2f8a6f1c11", "int": "1", "slug": "x", "str": "x", "path": "x"}


def _provider_path(route: str) -> str:
    import re

    return "/" + re.sub(r"<(\w+):\w+>", lambda m: _CONVERTER[m.group(1)], route)


@pytest.mark.parametrize(("route", "consumer"), PROVIDER_ROUTES, ids=[r for r, _ in PROVIDER_ROUTES])
def test_every_provider_stream_derives_from_the_token_base_outside_organization_routes(route, consumer):
    consumer_class = getattr(consumer, "consumer_class", None)
    assert consumer_class is not None and issubclass(consumer_class, ProviderStreamConsumer), (
        f"{route}: a socket without a session must derive from accounts.consumers.ProviderStreamConsumer"
    )
    assert not issubclass(consumer_class, OrganizationConsumer)
    assert "org_slug" not in route, f"{route}: a token-authenticated stream is not an organization's member route"


@pytest.mark.parametrize("route", [r for r, _ in PROVIDER_ROUTES])
async def test_a_provider_stream_without_a_valid_token_is_closed(route, settings):
    settings.PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS = 0.3
    # Something it cannot read: closed at once.
    communicator = WebsocketCommunicator(application, _provider_path(route))
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_to(text_data="not a stream message")
    assert await _closed_with(communicator, 4403)
    await communicator.disconnect()
    # Nothing at all: closed when the time to present a token runs out.
    communicator = WebsocketCommunicator(application, _provider_path(route))
    await communicator.connect(timeout=5)
    assert await _closed_with(communicator, 4403)
    await communicator.disconnect()
