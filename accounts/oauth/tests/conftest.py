from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.oauth.tests.factories import register


@pytest.fixture
def app_client(organization):
    """A confidential application registered by the organization."""
    return register(organization)


@pytest.fixture
def public_client(organization):
    return register(organization, client_type="public", name="Acme Mobile")


@pytest.fixture
def bearer():
    """An API client sending ``Authorization: Bearer <token>``."""

    def make(token: str) -> APIClient:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return api

    return make
