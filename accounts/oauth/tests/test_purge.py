"""Expired codes and tokens are purged; spent refresh tokens stay while their chain lives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.oauth.models import AccessToken, Grant, RefreshToken
from accounts.oauth.services import oauth_tokens_purge_expired
from accounts.oauth.tests.factories import refresh, tokens_for

pytestmark = pytest.mark.django_db


def test_purge_keeps_live_chains_and_spent_tokens_until_the_chain_ends(client, organization, owner, app_client):
    client.force_login(owner)
    first = tokens_for(client, app_client, organization=organization)
    assert refresh(client, app_client, first["refresh_token"]).status_code == 200  # the first is now spent
    assert RefreshToken.objects.unscoped("test: reads across organizations").count() == 2
    access_tokens = AccessToken.objects.unscoped("test: reads across organizations").count()
    assert access_tokens >= 1

    # An hour and a bit later: access tokens expired, codes expired, chains alive.
    later = timezone.now() + timedelta(hours=2)
    counts = oauth_tokens_purge_expired(now=later)
    assert counts["grants"] == 1
    assert RefreshToken.objects.unscoped("test: reads across organizations").count() == 2, "a spent refresh token must stay to catch its reuse"
    assert AccessToken.objects.unscoped("test: reads across organizations").count() == access_tokens, "access tokens of a live chain stay with it"

    # After the chain's absolute end everything of it goes.
    chain_end = RefreshToken.objects.unscoped("test: reads across organizations").order_by("expires_at").first().expires_at
    oauth_tokens_purge_expired(now=chain_end + timedelta(seconds=1))
    assert RefreshToken.objects.unscoped("test: reads across organizations").count() == 0
    assert AccessToken.objects.unscoped("test: reads across organizations").count() == 0
    assert Grant.objects.unscoped("test: reads across organizations").count() == 0


def test_the_purge_runs_hourly_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["oauth-tokens-purge-expired"]
    assert entry["task"] == "accounts.oauth.tasks.oauth_tokens_purge_expired_task"
    from accounts.oauth.tasks import oauth_tokens_purge_expired_task

    assert oauth_tokens_purge_expired_task.name == entry["task"]
