"""Simulated mode is said on every page: portal, sign-in and back office; never otherwise."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jagcall.kernel.context_processors import SIMULATED_NOTICE


def _pages(organization):
    return {
        "sign in": reverse("account_login"),
        "dashboard": reverse("accounts:dashboard", args=[organization.slug]),
        "team": reverse("accounts:team", args=[organization.slug]),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("simulated", [True, False])
def test_every_portal_page_says_when_calls_are_simulated(simulated, settings, owner_client, organization):
    settings.SIMULATED_PROVIDERS = simulated
    for name, url in _pages(organization).items():
        response = owner_client.get(url, follow=True)
        assert response.status_code == 200, name
        assert (SIMULATED_NOTICE in response.content.decode()) is simulated, name


@pytest.mark.django_db
def test_the_sign_in_page_says_it_to_visitors_too(settings, client):
    settings.SIMULATED_PROVIDERS = True
    response = client.get(reverse("account_login"))
    assert SIMULATED_NOTICE in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("simulated", [True, False])
def test_the_back_office_says_it(simulated, settings, staff_client):
    settings.SIMULATED_PROVIDERS = simulated
    response = staff_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert (SIMULATED_NOTICE in response.content.decode()) is simulated
