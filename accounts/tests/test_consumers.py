"""The organization events websocket over the real Redis channel layer and real sessions.

Nothing here replaces CHANNEL_LAYERS: events go through channels_redis, published
by the services themselves when their transaction commits.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client

from accounts import services
from accounts.models import Membership
from jagcall.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_channel_layer")]

ORIGIN = (b"origin", b"http://127.0.0.1")
QUIET = 0.5  # seconds to wait for a message that must not come


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    morsel = client.cookies[settings.SESSION_COOKIE_NAME]
    return f"{settings.SESSION_COOKIE_NAME}={morsel.value}".encode()


async def _communicator(slug: str, user=None) -> WebsocketCommunicator:
    headers = [ORIGIN]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(_session_cookie)(user)))
    return WebsocketCommunicator(application, f"/ws/o/{slug}/events/", headers=headers)


async def _subscribed(slug: str, user) -> WebsocketCommunicator:
    communicator = await _communicator(slug, user)
    connected, _ = await communicator.connect(timeout=5)
    assert connected, f"{user.email} could not subscribe to {slug}"
    assert await communicator.receive_json_from(timeout=5) == {"event": "subscribed", "organization": slug}
    return communicator


@database_sync_to_async
def _change_role(organization, actor, user, role):
    membership = Membership.objects.for_org(organization).get(user=user)
    return services.membership_role_change(organization=organization, actor=actor, membership=membership, role=role)


@database_sync_to_async
def _rename(organization, actor, name):
    return services.organization_update(organization=organization, actor=actor, name=name)


async def test_a_member_receives_the_events_of_their_organization(organization, owner, member):
    communicator = await _subscribed(organization.slug, member)
    try:
        await _change_role(organization, owner, member, "admin")

        message = await communicator.receive_json_from(timeout=5)
        assert message["event"] == "member.role_changed"
        assert message["payload"] == {"email": member.email, "role": "admin"}
        assert message["at"]

        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"event": "pong"}
        assert await communicator.receive_nothing(timeout=QUIET)
    finally:
        await communicator.disconnect()


class _Abort(Exception):
    pass


@database_sync_to_async
def _change_role_then_roll_back(organization, actor, user, role):
    with transaction.atomic():
        membership = Membership.objects.for_org(organization).get(user=user)
        services.membership_role_change(organization=organization, actor=actor, membership=membership, role=role)
        raise _Abort


async def test_a_rolled_back_change_is_never_announced(organization, owner, member):
    communicator = await _subscribed(organization.slug, member)
    try:
        with pytest.raises(_Abort):
            await _change_role_then_roll_back(organization, owner, member, "admin")

        assert await communicator.receive_nothing(timeout=QUIET)

        # The same change, committed this time, is announced.
        await _change_role(organization, owner, member, "admin")
        assert (await communicator.receive_json_from(timeout=5))["payload"] == {"email": member.email, "role": "admin"}
    finally:
        await communicator.disconnect()


async def test_a_user_of_another_organization_is_refused_and_hears_nothing(
    organization, owner, member, other_organization, other_owner
):
    witness = await _subscribed(organization.slug, owner)
    intruder = await _communicator(organization.slug, other_owner)
    try:
        connected, code = await intruder.connect(timeout=5)
        assert connected is False
        assert code == 4404

        await _change_role(organization, owner, member, "admin")

        # The event really went out (a member hears it) ...
        assert (await witness.receive_json_from(timeout=5))["event"] == "member.role_changed"
        # ... and the refused socket got nothing: not the event, not a subscription notice.
        assert await intruder.receive_nothing(timeout=QUIET)
    finally:
        await witness.disconnect()
        await intruder.disconnect()


async def test_an_unknown_organization_is_refused_like_a_foreign_one(member):
    communicator = await _communicator("no-such-org", member)
    try:
        assert await communicator.connect(timeout=5) == (False, 4404)
    finally:
        await communicator.disconnect()


async def test_an_anonymous_connection_is_refused(organization, owner, member):
    witness = await _subscribed(organization.slug, owner)
    anonymous = await _communicator(organization.slug)
    try:
        assert await anonymous.connect(timeout=5) == (False, 4401)

        await _change_role(organization, owner, member, "admin")

        assert (await witness.receive_json_from(timeout=5))["event"] == "member.role_changed"
        assert await anonymous.receive_nothing(timeout=QUIET)
    finally:
        await witness.disconnect()
        await anonymous.disconnect()


async def test_a_forged_session_cookie_is_anonymous(organization, member):
    communicator = WebsocketCommunicator(
        application,
        f"/ws/o/{organization.slug}/events/",
        headers=[ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}=forged0123456789abcdef".encode())],
    )
    try:
        assert await communicator.connect(timeout=5) == (False, 4401)
    finally:
        await communicator.disconnect()


async def test_a_foreign_origin_is_refused_even_with_a_valid_session(organization, member):
    cookie = await sync_to_async(_session_cookie)(member)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/o/{organization.slug}/events/",
        headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)],
    )
    try:
        connected, _ = await communicator.connect(timeout=5)
        assert connected is False
    finally:
        await communicator.disconnect()


async def test_members_hear_only_their_own_organization(
    organization, owner, member, other_organization, other_owner
):
    ours = await _subscribed(organization.slug, member)
    theirs = await _subscribed(other_organization.slug, other_owner)
    try:
        await _rename(other_organization, other_owner, "Globex Renamed")

        message = await theirs.receive_json_from(timeout=5)
        assert message["event"] == "organization.updated"
        assert message["payload"] == {"name": "Globex Renamed"}
        assert await ours.receive_nothing(timeout=QUIET)

        await _rename(organization, owner, "Acme Renamed")

        message = await ours.receive_json_from(timeout=5)
        assert message["event"] == "organization.updated"
        assert message["payload"] == {"name": "Acme Renamed"}
        assert await theirs.receive_nothing(timeout=QUIET)
    finally:
        await ours.disconnect()
        await theirs.disconnect()


async def test_a_closed_socket_leaves_no_receive_buffer_behind(organization, member, redis_channel_layer):
    """channels_redis keeps a queue per channel it is asked to receive on, and drops it only when a receive
    is cancelled while waiting; a consumer whose receive is cancelled while it holds the layer's receive
    lock (a lone consumer always does) would leave its queue for the life of the process."""
    before = set(redis_channel_layer.receive_buffer)
    for _ in range(3):
        communicator = await _subscribed(organization.slug, member)
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"event": "pong"}
        await communicator.disconnect()

    assert set(redis_channel_layer.receive_buffer) - before == set()
