"""The live API against its own OpenAPI schema, with generated requests (schemathesis).

The real ASGI application serves on a loopback port (``asgi_live_server``);
the schema is loaded from /api/v1/schema/ as a client would load it, and
every operation is called with generated requests, a bounded number per
operation, as an API key holding every scope. Every answer must be no 5xx,
use a documented status code and content type, and match the documented
body and headers.

Then the destructive calls, on real ids: changing and removing the only
owner, removing a member, revoking a key and, last, the calling key itself.
They answer 2xx or 4xx in the documented shapes, never 5xx.

The examples are derandomized, so a run is reproducible.
"""

from __future__ import annotations

import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.api_keys.services import api_key_create
from accounts.models import ApiKey, Membership
from accounts.permissions import Role
from accounts.scopes import ALL_SCOPES
from accounts.tests.factories import MembershipFactory, UserFactory
from jagcall.tests.test_api_schema import assert_no_outside_reference

# Static files reach the live server through WhiteNoise, whose file iterators are synchronous.
pytestmark = pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Derandomized: the same examples each run. 12 per operation covers each one's parameters and bodies; with
# the operations billing and telephony added, 25 took the run to the edge of its budget on a busy machine.
EXAMPLES_PER_OPERATION = 12
EXAMPLES_ON_REAL_IDS = 8
# Every run must finish well within this; the whole test takes about half of it.
BUDGET_SECONDS = 120


def _settings(max_examples: int):
    return hypothesis_settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        print_blob=False,
    )


@pytest.fixture
def tenant(organization, owner):
    """An organization whose only owner created the calling key (all scopes), plus a member and a spare key."""
    member = MembershipFactory(organization=organization, user=UserFactory(email="member@acme.test"), role=Role.MEMBER)
    api_key, raw_key = api_key_create(
        organization=organization, actor=owner, name="Schema test",
        scopes=sorted(ALL_SCOPES),
    )
    spare, _ = api_key_create(
        organization=organization, actor=owner, name="Spare", scopes=["members:read"]
    )
    return {
        "organization": organization,
        "owner": Membership.objects.unscoped("test: inspects rows directly").get(organization=organization, user=owner),
        "member": member,
        "api_key": api_key,
        "raw_key": raw_key,
        "spare": spare,
    }


def test_live_api_conforms_to_its_schema(asgi_live_server, settings, tenant):
    started = time.monotonic()
    # 30 writes a minute would stop the run after a few examples; the limiter itself is tested elsewhere.
    settings.API_RATE_LIMIT_READS = settings.API_RATE_LIMIT_WRITES = 1_000_000
    base = asgi_live_server
    session = requests.Session()
    auth = {"Authorization": f"Bearer {tenant['raw_key']}"}

    # The docs page, over HTTP too: only our own static assets, all served.
    docs = session.get(f"{base}/api/docs/", timeout=10)
    assert docs.status_code == 200
    for url in assert_no_outside_reference(docs.text):
        assert session.get(f"{base}{url}", timeout=10).status_code == 200, url

    schema = schemathesis.openapi.from_url(f"{base}/api/v1/schema/?format=json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13, [op.label for op in operations]

    def exercise(operation, max_examples: int, **fixed):
        @_settings(max_examples)
        @given(case=operation.as_strategy(**fixed))
        def run(case):
            case.call_and_validate(base_url=base, session=session, headers=auth, checks=CHECKS)

        run()

    # Generated requests everywhere (ids are random, so nothing real is deleted); writes last.
    order = {"GET": 0, "POST": 1, "PATCH": 2, "PUT": 2, "DELETE": 3}
    for operation in sorted(operations, key=lambda op: (order[op.method.upper()], op.path)):
        exercise(operation, EXAMPLES_PER_OPERATION)

    # Real ids: the spare key, a member, and the only owner (who created the calling key).
    by_label = {f"{op.method.upper()} {op.path}": op for op in operations}
    real = [
        ("GET /api/v1/api-keys/{api_key_id}", {"api_key_id": str(tenant["spare"].id)}),
        ("DELETE /api/v1/api-keys/{api_key_id}", {"api_key_id": str(tenant["spare"].id)}),
        ("PATCH /api/v1/members/{membership_id}", {"membership_id": str(tenant["owner"].id)}),
        ("DELETE /api/v1/members/{membership_id}", {"membership_id": str(tenant["owner"].id)}),
        ("PATCH /api/v1/members/{membership_id}", {"membership_id": str(tenant["member"].id)}),
        ("DELETE /api/v1/members/{membership_id}", {"membership_id": str(tenant["member"].id)}),
    ]
    for label, path_parameters in real:
        exercise(by_label[label], EXAMPLES_ON_REAL_IDS, path_parameters=path_parameters)

    owner = tenant["owner"]
    owner.refresh_from_db()
    assert owner.role == Role.OWNER, "the only owner was demoted"
    assert not Membership.objects.unscoped("test: inspects rows directly").filter(pk=tenant["member"].pk).exists(), "removing a member should have worked"
    assert ApiKey.objects.unscoped("test: inspects rows directly").get(pk=tenant["spare"].pk).revoked_at is not None

    # Last: the calling key revokes itself; from then on it is refused in the documented shape.
    exercise(by_label["DELETE /api/v1/api-keys/{api_key_id}"], 1, path_parameters={"api_key_id": str(tenant["api_key"].id)})
    assert ApiKey.objects.unscoped("test: inspects rows directly").get(pk=tenant["api_key"].pk).revoked_at is not None
    exercise(by_label["GET /api/v1/me"], 3)
    refused = session.get(f"{base}/api/v1/me", headers=auth, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "api_key_revoked"

    elapsed = time.monotonic() - started
    print(f"schemathesis run: {len(operations)} operations in {elapsed:.1f} s")
    assert elapsed < BUDGET_SECONDS
