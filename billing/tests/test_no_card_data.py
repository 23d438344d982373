"""C21 / C30: no card data anywhere. Cards are typed only on Stripe's hosted pages (Checkout, the Customer Portal).

These tests fail as soon as a card-like field appears in the database schema, a form, a template, the API's
schema, or as soon as a PAN-like number (13 to 19 digits passing the Luhn check) is stored in any text column.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection

# Names a card field would have: the number (PAN), the security code, the expiry, the track data.
CARD_NAME = re.compile(
    r"(^|_)(card_?(number|num|no)|cc_?(number|num)|pan|primary_account_number|cvc|cvv2?|card_?cid|csc|"
    r"security_code|card_?(code|expiry|expiration|exp)|exp(iry|iration)?_(month|year|date)|track_?[12])($|_)",
    re.IGNORECASE,
)
# Autocomplete tokens (HTML) and input names that ask a browser for card details.
CARD_AUTOCOMPLETE = re.compile(r'autocomplete\s*=\s*["\']?\s*cc-(number|csc|exp|exp-month|exp-year|name|type)', re.I)
CARD_INPUT_NAME = re.compile(r'name\s*=\s*["\'](card[_-]?number|cardnumber|cc[_-]?num(ber)?|cvc|cvv|card[_-]?cvc|exp[_-]?(month|year))["\']', re.I)
# Issuers' numbers start with 2 to 6 (Mastercard, Amex, Visa, Discover...); runs inside hex or base64 text and
# epoch milliseconds (which start with 1) are not card numbers.
PAN_LIKE = re.compile(r"(?<![0-9A-Za-z])[2-6](?:[ -]?\d){12,18}(?![0-9A-Za-z])")
ROOT = Path(settings.BASE_DIR)
OUR_APPS = {"accounts", "billing", "compliance", "integrations", "knowledge", "messaging", "telephony", "webhooks",
            "crypto", "oauth", "api"}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    total, double = 0, False
    for char in reversed(digits):
        value = int(char)
        if double:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
        double = not double
    return total % 10 == 0


def pan_like(text: str) -> list[str]:
    """Runs of 13-19 digits (spaces or dashes between them allowed) that pass the Luhn check."""
    found = []
    for match in PAN_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits):
            found.append(digits)
    return found


def test_the_detectors_catch_what_they_must():
    assert CARD_NAME.search("card_number") and CARD_NAME.search("cvc") and CARD_NAME.search("exp_month")
    assert not CARD_NAME.search("phone_number") and not CARD_NAME.search("expires_at") and not CARD_NAME.search("panel")
    assert pan_like("paid with 4242 4242 4242 4242 today") == ["4242424242424242"]
    assert pan_like("+14155550100") == [] and pan_like("4242424242424241") == []
    assert CARD_AUTOCOMPLETE.search('<input autocomplete="cc-number">')
    assert CARD_INPUT_NAME.search('<input name="card_number">')


def test_no_model_of_the_project_has_a_card_field():
    offenders = [
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        if model._meta.app_label in OUR_APPS or model.__module__.split(".")[0] in OUR_APPS
        for field in model._meta.get_fields()
        if getattr(field, "concrete", False) and CARD_NAME.search(field.name)
    ]
    assert offenders == []


@pytest.mark.django_db
def test_no_database_column_is_named_like_card_data():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        )
        columns = cursor.fetchall()
    assert len(columns) > 100  # the whole schema was read
    assert [f"{table}.{column}" for table, column in columns if CARD_NAME.search(column)] == []


def _forms():
    from django import forms

    seen, queue = set(), list(forms.Form.__subclasses__()) + list(forms.ModelForm.__subclasses__())
    while queue:
        cls = queue.pop()
        if cls in seen:
            continue
        seen.add(cls)
        queue.extend(cls.__subclasses__())
    return [cls for cls in seen if cls.__module__.split(".")[0] in OUR_APPS]


def test_no_form_asks_for_card_details():
    import importlib
    import pkgutil

    # Forms are found once their modules are imported: import every module of every app but tests and migrations.
    for app in ("accounts", "billing", "compliance", "integrations", "knowledge", "messaging", "telephony"):
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, f"{app}."):
            if not {"tests", "migrations", "management"} & set(module.name.split(".")):
                importlib.import_module(module.name)
    forms = _forms()
    assert len(forms) > 10
    offenders = [
        f"{form.__module__}.{form.__name__}.{name}"
        for form in forms
        for name in getattr(form, "base_fields", {})
        if CARD_NAME.search(name)
    ]
    assert offenders == []


def test_no_template_has_a_card_input():
    templates = [p for p in ROOT.glob("**/templates/**/*.html") if ".venv" not in p.parts]
    assert len(templates) > 30
    offenders = []
    for template in templates:
        text = template.read_text(encoding="utf-8")
        if CARD_AUTOCOMPLETE.search(text) or CARD_INPUT_NAME.search(text):
            offenders.append(str(template.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.django_db
def test_the_api_schema_has_no_card_property(client):
    response = client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    offenders = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                if CARD_NAME.search(key):
                    offenders.append(f"{path}.{key}")
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(schema.get("components", {}), "components")
    for route, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if CARD_NAME.search(parameter.get("name", "")):
                    offenders.append(f"{route}?{parameter['name']}")
    assert offenders == []


@pytest.mark.django_db
def test_no_text_column_holds_a_pan_like_number(organization, owner):
    """A scan of every text column of every table (after demo-like data is written) finds no card number."""
    from billing.models import UsageEvent
    from billing.services.usage import usage_record
    from django.utils import timezone

    usage_record(organization=organization, kind="call_minutes", quantity=3, source="call:scan", occurred_at=timezone.now())
    assert UsageEvent.objects.for_org(organization).exists()
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND data_type IN ('text', 'character varying', 'jsonb')"
        )
        for table, column in cursor.fetchall():
            cursor.execute(f'SELECT "{column}"::text FROM "{table}" WHERE "{column}"::text ~ %s', [r"[2-6][0-9 -]{11,}[0-9]"])
            for (value,) in cursor.fetchall():
                if pan_like(value):
                    found.append(f"{table}.{column}")
    assert found == []
