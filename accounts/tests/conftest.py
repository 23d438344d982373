"""Fixtures of the accounts tests."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.db import connections


@pytest.fixture
async def redis_channel_layer():
    """The real channels_redis layer, fresh for each test's event loop (its connections belong to one loop)."""
    layer = get_channel_layer()
    assert type(layer).__module__ == "channels_redis.core", type(layer)
    yield layer
    await get_channel_layer().flush()
    channel_layers.backends.clear()
    # The ORM ran in sync_to_async's worker thread; its connection would block dropping the test database.
    await sync_to_async(connections.close_all)()
