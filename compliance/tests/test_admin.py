"""The back office: support staff read every organization's events; nobody edits them."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from compliance.models import AuditChainCheckpoint, AuditEvent
from compliance.tests.conftest import record

pytestmark = pytest.mark.django_db




def test_events_of_every_organization_are_listed_and_searchable(staff_client, organization, other_organization, rf_request):
    record(organization, action="member.invited", resource_id="res-acme", request=rf_request(ip="192.0.2.10"))
    record(other_organization, action="api_key.created", resource_id="res-globex")
    record(None, action="user.login_failed", outcome="failed")
    url = reverse("admin:compliance_auditevent_changelist")
    page = staff_client.get(url).content.decode()
    assert "Acme Dental" in page and "Globex Sales" in page and "platform" in page
    for term, expected in [("acme-dental", 1), ("Globex", 1), ("member.invited", 1), ("res-globex", 1), ("192.0.2.10", 1)]:
        result = staff_client.get(url, {"q": term}).context["cl"].result_list
        assert len(result) == expected, term
    assert len(staff_client.get(url, {"outcome__exact": "failed"}).context["cl"].result_list) == 1
    event = AuditEvent.objects.for_org(organization).first()
    detail = staff_client.get(reverse("admin:compliance_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200 and event.hash in detail.content.decode()


def test_the_date_drill_down_and_action_filter_stay_cheap(staff_client, organization):
    for action in ("member.invited", "api_key.created"):
        record(organization, action=action)
    url = reverse("admin:compliance_auditevent_changelist")
    today = AuditEvent.objects.unscoped("test: inspects rows directly").first().occurred_at
    for query in ({}, {"occurred_at__year": today.year}, {"occurred_at__year": today.year, "occurred_at__month": today.month}):
        response = staff_client.get(url, query)
        assert response.status_code == 200, query
        assert str(today.year) in response.content.decode()
    response = staff_client.get(url, {"action": "api_key.created"})
    assert [e.action for e in response.context["cl"].result_list] == ["api_key.created"]
    assert "member.invited" in response.content.decode()  # offered as a choice, from the newest events


def test_nothing_can_be_added_changed_or_deleted(staff_client, organization):
    event = record(organization)
    for model in (AuditEvent, AuditChainCheckpoint):
        model_admin = admin.site._registry[model]
        request = staff_client.get("/").wsgi_request
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
    assert staff_client.get(reverse("admin:compliance_auditevent_add")).status_code == 403
    response = staff_client.post(reverse("admin:compliance_auditevent_delete", args=[event.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.unscoped("test: inspects rows directly").filter(pk=event.pk).exists()


def test_auditlogs_own_log_is_not_in_the_back_office():
    from auditlog.models import LogEntry

    assert not admin.site.is_registered(LogEntry)
