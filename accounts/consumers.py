"""Websockets of an organization: one base class that every consumer derives from.

``OrganizationConsumer.connect`` runs the same access check as pages
(accounts.access.organization_access: membership, role, how this session
was signed in, second factor, single sign-on, idle timeout), and the
connection is re-checked:

- when something that decides access changes: a membership is changed or
  removed, the person's sessions or sign-ins are ended, they sign out
  (``access_recheck_user``, sent on commit to the person's access group);
- on a timer (``WEBSOCKET_ACCESS_RECHECK_SECONDS``), which also catches a
  session that simply expired.

A re-check that fails closes the socket with 4403. At connect, a refusal
closes with 4401 (not signed in), 4404 (no such organization of yours) or
4403 (this session's sign-in does not open it, or the role does not allow).

[!!] Subclasses implement ``joined()``/``left()`` and their handlers; they
must not override ``connect``, ``disconnect`` or ``websocket_receive``
(enforced), and they read and write only through selectors and services
scoped to ``self.organization``.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import import_module

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from accounts.access import AccessDenied, organization_access
from accounts.events import org_group_name

logger = logging.getLogger(__name__)

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

_SEALED = ("connect", "disconnect", "websocket_receive", "websocket_disconnect", "dispatch")


def user_access_group(user_id) -> str:
    return f"user-{user_id}.access"


def _send_recheck(user_id) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_access_group(user_id), {"type": "access.recheck"})
    except Exception:  # a failed notice leaves the timer to catch the change
        logger.exception("could not ask the websockets of user %s to re-check their access", user_id)


def access_recheck_user(user_id) -> None:
    """Ask every open websocket of this person to run the access check again (after commit)."""
    transaction.on_commit(lambda: _send_recheck(user_id))


def _fresh_session(scope):
    """The session as the store holds it now (it may have been ended since the socket opened)."""
    session = scope.get("session")
    key = getattr(session, "session_key", None)
    if not key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    return store if store.exists(key) else None


@database_sync_to_async
def _check(scope, slug, permission, *, fresh: bool):
    if fresh:
        session = _fresh_session(scope)
        user = scope.get("user")
        if session is None or user is None or str(session.get("_auth_user_id")) != str(getattr(user, "pk", None)):
            raise AccessDenied(AccessDenied.SESSION_EXPIRED, "Your session has ended.")
        user.refresh_from_db(fields=["is_active"])
        scope = {**scope, "session": session}
    return organization_access(scope, slug, permission=permission)


async def _dispatch(consumer, message, dispatch):
    """Channels' dispatch, without its sweep of stale database connections before a websocket's own messages.

    [!!] That sweep is a thread hop per message: a call's media stream sends 50 a second, and it was a
    quarter of a core at ten calls. Handlers reach the database only through ``database_sync_to_async``,
    which sweeps around each use itself; group messages (access re-checks) keep Channels' sweep.
    """
    if message.get("type") == "websocket.receive":
        await consumer.websocket_receive(message)
    else:
        await dispatch(message)


def _forget_receive_buffer(consumer) -> None:
    """Drop the channel layer's queue for a consumer that has ended.

    [!!] channels_redis keeps a queue per channel it receives on and deletes it only when a receive is
    cancelled while waiting for the lock or a message; the receive that holds the lock (a lone consumer's
    always does) is cancelled inside its Redis read and leaves its queue, about 2 KB, for the life of the
    process: one per call and per portal socket. Messages still queued for the channel are addressed to a
    consumer that no longer exists.
    """
    buffers = getattr(getattr(consumer, "channel_layer", None), "receive_buffer", None)
    name = getattr(consumer, "channel_name", None)
    if isinstance(buffers, dict) and name:
        buffers.pop(name, None)


class OrganizationConsumer(AsyncJsonWebsocketConsumer):
    """Base of every websocket consumer under ``/ws/o/<org_slug>/...``.

    Sets ``self.organization`` and ``self.membership`` before ``joined()``.
    """

    permission_required: str = "organization.view"
    organization = None
    membership = None
    _timer: asyncio.Task | None = None
    _groups: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise ImproperlyConfigured(
                    f"{cls.__name__} must not override {name}(); the access check runs there. Implement joined()/left()."
                )

    @property
    def org_slug(self) -> str:
        return self.scope["url_route"]["kwargs"]["org_slug"]

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            _forget_receive_buffer(self)

    async def dispatch(self, message):
        await _dispatch(self, message, super().dispatch)

    async def connect(self):
        try:
            membership = await _check(self.scope, self.org_slug, self.permission_required, fresh=False)
        except AccessDenied as denial:
            code = {
                AccessDenied.NOT_SIGNED_IN: CLOSE_NOT_SIGNED_IN,
                AccessDenied.SESSION_EXPIRED: CLOSE_NOT_SIGNED_IN,
                AccessDenied.NOT_FOUND: CLOSE_NOT_FOUND,
            }.get(denial.reason, CLOSE_FORBIDDEN)
            await self.close(code=code)
            return
        self.membership = membership
        self.organization = membership.organization
        self._groups = (user_access_group(self.scope["user"].pk),)
        for group in self._groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self._timer = asyncio.ensure_future(self._recheck_periodically())
        await self.joined()

    async def disconnect(self, code):
        if self._timer is not None:
            self._timer.cancel()
        for group in self._groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.organization is not None:
            await self.left()

    async def join_group(self, topic: str) -> str:
        """Listen to the organization's group ``org-<id>.<topic>`` (chosen here, never by the client)."""
        group = org_group_name(self.organization.id, topic)
        await self.channel_layer.group_add(group, self.channel_name)
        self._groups = (*self._groups, group)
        return group

    # --- the re-check -------------------------------------------------------------------

    async def access_recheck(self, message):
        await self._recheck()

    async def _recheck(self) -> bool:
        if self.organization is None:
            return False
        try:
            membership = await _check(self.scope, self.org_slug, self.permission_required, fresh=True)
        except AccessDenied:
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        self.membership = membership
        return True

    async def _recheck_periodically(self):
        interval = settings.WEBSOCKET_ACCESS_RECHECK_SECONDS
        try:
            while True:
                await asyncio.sleep(interval)
                if not await self._recheck():
                    return
        except asyncio.CancelledError:
            pass

    # --- for subclasses -----------------------------------------------------------------

    async def joined(self):
        """The socket is open and the access check passed."""

    async def left(self):
        """The socket closed (after a successful join)."""


class OrganizationEventsConsumer(OrganizationConsumer):
    """``/ws/o/<org_slug>/events/``: the organization's live events, for its members.

    [!!] The group is chosen from the route after the access check; a client
    can send nothing that changes which group it hears.
    """

    async def joined(self):
        await self.join_group("events")
        await self.send_json({"event": "subscribed", "organization": self.organization.slug})

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"event": "pong"})

    async def org_event(self, message):
        await self.send_json({"event": message["event"], "payload": message["payload"], "at": message["at"]})


# --- streams a provider opens (no person, no cookie, no Origin) ---------------------------------


class ProviderStreamConsumer(AsyncWebsocketConsumer):
    """Base of a websocket that a provider opens for one object, authenticated by a token, not a session.

    The one narrow exception to "every consumer derives from
    OrganizationConsumer": Twilio's media streams connect with no cookie and
    no Origin, and carry their credential (a single-use token bound to one
    call, issued in the TwiML we answered with) in their first messages, not
    in the handshake. So:

    - the route is not under ``/ws/o/<slug>/`` and skips the Origin and
      session middleware (jagcall/asgi.py mounts jagcall.routing's
      ``provider_stream_urlpatterns`` outside them);
    - [!!] the socket is accepted, and until ``authenticate()`` returns True
      every message goes to it and nothing else runs; a refusal (False), a
      message it cannot read, or no success within
      PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS closes the socket with 4403 and
      calls ``refused(reason)`` (which records the security event);
    - only then ``started()`` and the subclass's ``streaming()`` run; the
      object the token opened fixes the organization (``self.organization``).

    Subclasses implement ``authenticate``, ``refused``, ``started``,
    ``streaming`` and ``ended``; they must not override ``connect``,
    ``receive`` or ``disconnect`` (enforced). The websocket walk
    (accounts/tests/test_websocket_access.py) checks that every route of
    ``provider_stream_urlpatterns`` derives from this class and refuses a
    socket that presents no valid token.
    """

    organization = None
    authenticated = False
    _deadline: asyncio.Task | None = None
    _SEALED_STREAM = ("connect", "receive", "disconnect", "websocket_receive", "websocket_disconnect", "dispatch")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in cls._SEALED_STREAM:
            if name in cls.__dict__:
                raise ImproperlyConfigured(
                    f"{cls.__name__} must not override {name}(); the token check runs there. "
                    "Implement authenticate()/started()/streaming()/ended()."
                )

    async def __call__(self, scope, receive, send):
        """The server's messages, one after another, and no channel layer.

        [!!] Channels' consumer also listens on a channel of the channel layer, and for that waits on two
        tasks at once, making a new task for every message it receives: a call's stream sends fifty a
        second, each one a task, a wait on two and more turns of the event loop. Nothing addresses a
        provider's stream through the channel layer (it joins no group, and its channel is never given
        out), so it reads the server's messages in order, as Channels does when there is no layer.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message):
        await _dispatch(self, message, super().dispatch)

    async def connect(self):
        await self.accept()
        self._deadline = asyncio.ensure_future(self._refuse_when_late())

    async def _refuse_when_late(self):
        try:
            await asyncio.sleep(settings.PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS)
        except asyncio.CancelledError:
            return
        if not self.authenticated:
            await self._refuse("timeout")

    async def _refuse(self, reason: str):
        if self._deadline is not None and self._deadline is not asyncio.current_task():
            self._deadline.cancel()
        try:
            await self.refused(reason)
        except Exception:  # recording a refusal must not keep the socket open
            logger.exception("could not record the refusal of a provider stream (%s)", reason)
        await self.close(code=CLOSE_FORBIDDEN)

    async def receive(self, text_data=None, bytes_data=None):
        if self.authenticated:
            await self.streaming(text_data=text_data, bytes_data=bytes_data)
            return
        try:
            verdict = await self.authenticate(text_data=text_data, bytes_data=bytes_data)
        except Exception:  # [!!] fail closed: a message the check cannot read opens nothing
            logger.warning("provider stream: authentication raised; refusing", exc_info=True)
            verdict = False
        if verdict is None:
            return  # not yet (e.g. Twilio's "connected" comes before its "start")
        if verdict is not True:
            await self._refuse(getattr(self, "refusal_reason", "") or "invalid")
            return
        self.authenticated = True
        if self._deadline is not None:
            self._deadline.cancel()
        await self.started()

    async def disconnect(self, code):
        if self._deadline is not None:
            self._deadline.cancel()
        if self.authenticated:
            await self.ended(code)

    # --- for subclasses -----------------------------------------------------------------

    async def authenticate(self, *, text_data=None, bytes_data=None) -> bool | None:
        """True: the token holds (set ``self.organization``); None: wait for the next message; False: refuse
        (set ``self.refusal_reason``)."""
        return False

    async def refused(self, reason: str):
        """The socket is being closed with 4403 (record a security event here)."""

    async def started(self):
        """The token held; the stream is open."""

    async def streaming(self, *, text_data=None, bytes_data=None):
        """A message after authentication."""

    async def ended(self, code):
        """The socket closed after a successful authentication."""
