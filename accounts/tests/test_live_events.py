"""Live events: published on commit, sent to the organization's websocket group by the process's publisher
thread (the real Redis channel layer), in order, without the caller waiting for Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.events import flush_live_events, org_group_name, publish_org_event

pytestmark = pytest.mark.django_db(transaction=True)


class Listener:
    def __init__(self, organization_id):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(org_group_name(organization_id), self.channel)

    def received(self, wait: float = 0.5) -> list[dict]:
        async def run():
            seen = []
            while True:
                try:
                    seen.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout=wait))
                except TimeoutError:
                    return seen

        return async_to_sync(run)()


def test_events_reach_the_group_in_the_order_they_were_published(organization):
    listener = Listener(organization.id)
    with transaction.atomic():
        for number in range(20):
            publish_org_event(organization.id, "demo.counted", {"n": number})
    assert flush_live_events(5)
    received = listener.received()
    assert [message["payload"]["n"] for message in received] == list(range(20))
    assert {message["type"] for message in received} == {"org.event"}
    assert {message["event"] for message in received} == {"demo.counted"}


def test_a_rolled_back_change_is_never_announced(organization):
    listener = Listener(organization.id)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            publish_org_event(organization.id, "demo.undone", {})
            raise RuntimeError("the write failed")
    assert flush_live_events(5)
    assert listener.received(wait=0.3) == []


def test_a_failed_send_is_logged_and_the_next_event_still_goes_out(organization, monkeypatch, caplog):
    listener = Listener(organization.id)
    layer_class = type(get_channel_layer())  # the publisher has a layer of its own, of the same class
    original = layer_class.group_send
    failures = []

    async def failing_once(self, group, message):
        if not failures:
            failures.append(message["event"])
            raise ConnectionError("Redis went away")
        return await original(self, group, message)

    monkeypatch.setattr(layer_class, "group_send", failing_once)
    with caplog.at_level(logging.ERROR, logger="accounts.events"):
        publish_org_event(organization.id, "demo.lost", {})
        publish_org_event(organization.id, "demo.kept", {})
        assert flush_live_events(5)
    assert failures == ["demo.lost"]
    assert [message["event"] for message in listener.received()] == ["demo.kept"]
    assert any("could not publish demo.lost" in record.getMessage() for record in caplog.records)
