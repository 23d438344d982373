"""Live events of one organization over a websocket."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.events import org_group_name
from accounts.models import Organization, OrganizationStatus
from accounts.selectors import membership_for_user


@database_sync_to_async
def _membership(slug: str, user):
    organization = Organization.objects.filter(slug=slug, status=OrganizationStatus.ACTIVE).first()
    if organization is None:
        return None, None
    return organization, membership_for_user(organization=organization, user=user)


class OrganizationEventsConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/o/<org_slug>/events/``: members of the organization only.

    [!!] The group is chosen from the route after the membership check; a
    client can send nothing that changes which group it hears.
    """

    group_name: str | None = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        organization, membership = await _membership(self.scope["url_route"]["kwargs"]["org_slug"], user)
        if membership is None:
            await self.close(code=4404)
            return
        self.group_name = org_group_name(organization.id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json({"event": "subscribed", "organization": organization.slug})

    async def disconnect(self, code):
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"event": "pong"})

    async def org_event(self, message):
        await self.send_json({"event": message["event"], "payload": message["payload"], "at": message["at"]})
